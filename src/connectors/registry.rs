//! The model registry: the one place a `model_type` is mapped to a connector. `Connector::from_dir`,
//! `vlmc run`, `vlmc info`, the unknown-`model_type` error and the fuzz harness all read [`MODELS`].
//!
//! Adding a connector: its file (the struct, a loader, and `impl Model`: input names and `record`)
//! and one [`ModelEntry`] here.

use std::any::Any;
use std::path::Path;

pub use super::inputs::{Inputs, Output, Outputs};
use super::{
    GemmaProjector, Idefics, Idefics2Connector, InstructBlip, LlavaNext, LlavaNextVideo, LlavaOnevision, LlavaProjector, Mistral3Projector,
    Mllama, OpenFlamingo, PixelShuffleProjector, Pool2x2, QFormer, Qwen2VlMerger, TokenMerger,
};
use crate::checkpoint::infer::{self, Inferred};
use crate::checkpoint::{Config, WeightSource};
use crate::runtime::{DType, Error, Gpu, Recorder, Result, Tensor};

/// Named output tensors of one forward, in the order the model lists them.
pub type Named = Vec<(&'static str, Tensor)>;

/// A connector as the registry runs it: named inputs in, named outputs out, recorded into the
/// caller's [`Recorder`] (no submit).
pub trait Model: Any + Send + Sync + std::fmt::Debug {
    /// Names of the inputs [`Model::record`] reads (float tensors, or integers such as `image_size`).
    fn inputs(&self) -> &'static [&'static str];
    /// Records the forward. The first output is the one called `output`.
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named>;
    /// What it holds and computes, a line per part: widths, layers, tokens per image (`vlmc info`).
    fn describe(&self) -> Vec<String>;
}

/// Builds a model from its config and weights (`None` for stages without weights).
pub type Loader = fn(&Gpu, &Config, Option<&WeightSource>) -> Result<Box<dyn Model>>;

/// One registry row.
pub struct ModelEntry {
    /// The `config.json` `model_type`s this row loads.
    pub model_types: &'static [&'static str],
    /// The Rust type it builds.
    pub class: &'static str,
    /// The PyTorch reference it follows (class and file).
    pub reference: &'static str,
    /// Whether it reads weights (stages such as `pool2x2` need only `config.json`).
    pub needs_weights: bool,
    /// Whether the top-level `layer_index` (`vlmc run --layer N`) picks one of its gated layers.
    pub layered: bool,
    /// Builds the model; `ws` is `Some` whenever `needs_weights`.
    pub load: Loader,
}

fn weights<'a>(ws: Option<&'a WeightSource>, cfg: &Config) -> Result<&'a WeightSource> {
    ws.ok_or_else(|| Error::config("model_type", format!("`{}` needs weights", cfg.str("model_type").unwrap_or_default())))
}

fn llava_hf(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(LlavaProjector::load_hf(g, c, weights(w, c)?)?))
}
fn llava_original(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(LlavaProjector::load_original(g, c, weights(w, c)?)?))
}
fn llava_next(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(LlavaNext::load(g, c, weights(w, c)?)?))
}
fn llava_onevision(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(LlavaOnevision::load(g, c, weights(w, c)?)?))
}
fn llava_next_video(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(LlavaNextVideo::load(g, c, weights(w, c)?)?))
}
fn blip2(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(QFormer::load(g, c, weights(w, c)?)?))
}
fn instructblip(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(InstructBlip::load(g, c, weights(w, c)?)?))
}
fn open_flamingo(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(OpenFlamingo::load(g, c, weights(w, c)?)?))
}
fn idefics(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(Idefics::load(g, c, weights(w, c)?)?))
}
fn qwen2_vl(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(Qwen2VlMerger::load(g, c, weights(w, c)?)?))
}
fn pixel_shuffle(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(PixelShuffleProjector::load(g, c, weights(w, c)?)?))
}
fn gemma(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(GemmaProjector::load(g, c, weights(w, c)?)?))
}
fn mistral3(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(Mistral3Projector::load(g, c, weights(w, c)?)?))
}
fn mllama(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(Mllama::load(g, c, weights(w, c)?)?))
}
fn idefics2(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(Idefics2Connector::load(g, c, weights(w, c)?)?))
}
fn pool2x2(_: &Gpu, c: &Config, _: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(Pool2x2::from_config(c)?))
}
fn tome(_: &Gpu, c: &Config, _: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(TokenMerger::from_config(c)?))
}

/// Every connector this crate loads, by `model_type`. Append new rows: the fuzz corpus picks
/// connectors by their position (`internal::fuzzing::input_connectors`).
pub static MODELS: &[ModelEntry] = &[
    ModelEntry {
        model_types: &["llava"],
        class: "LlavaProjector",
        reference: "transformers LlavaMultiModalProjector (models/llava/modeling_llava.py)",
        needs_weights: true,
        layered: false,
        load: llava_hf,
    },
    ModelEntry {
        model_types: &["llava_llama", "llava_mistral", "llava_qwen"],
        class: "LlavaProjector",
        reference: "LLaVA build_vision_projector (llava/model/multimodal_projector/builder.py)",
        needs_weights: true,
        layered: false,
        load: llava_original,
    },
    ModelEntry {
        model_types: &["llava_next"],
        class: "LlavaNext",
        reference: "transformers LlavaNextModel.pack_image_features (models/llava_next/modeling_llava_next.py)",
        needs_weights: true,
        layered: false,
        load: llava_next,
    },
    ModelEntry {
        model_types: &["llava_onevision"],
        class: "LlavaOnevision",
        reference: "transformers LlavaOnevisionModel.pack_image_features (models/llava_onevision/modeling_llava_onevision.py)",
        needs_weights: true,
        layered: false,
        load: llava_onevision,
    },
    ModelEntry {
        model_types: &["llava_next_video"],
        class: "LlavaNextVideo",
        reference: "transformers LlavaNextVideoPooler (models/llava_next_video/modeling_llava_next_video.py)",
        needs_weights: true,
        layered: false,
        load: llava_next_video,
    },
    ModelEntry {
        model_types: &["blip-2"],
        class: "QFormer",
        reference: "transformers Blip2QFormerModel + language_projection (models/blip_2/modeling_blip_2.py)",
        needs_weights: true,
        layered: false,
        load: blip2,
    },
    ModelEntry {
        model_types: &["instructblip"],
        class: "InstructBlip",
        reference: "transformers InstructBlipQFormerModel + language_projection (models/instructblip/modeling_instructblip.py)",
        needs_weights: true,
        layered: false,
        load: instructblip,
    },
    ModelEntry {
        model_types: &["open_flamingo"],
        class: "OpenFlamingo",
        reference: "OpenFlamingo PerceiverResampler, GatedCrossAttentionBlock (open_flamingo/src/helpers.py)",
        needs_weights: true,
        layered: true,
        load: open_flamingo,
    },
    ModelEntry {
        model_types: &["idefics"],
        class: "Idefics",
        reference: "transformers IdeficsPerceiverResampler, IdeficsGatedCrossAttentionLayer (models/idefics/modeling_idefics.py)",
        needs_weights: true,
        layered: true,
        load: idefics,
    },
    ModelEntry {
        model_types: &["pool2x2"],
        class: "Pool2x2",
        reference: "torch AvgPool2d(2, 2) over the token grid",
        needs_weights: false,
        layered: false,
        load: pool2x2,
    },
    ModelEntry {
        model_types: &["tome"],
        class: "TokenMerger",
        reference: "ToMe bipartite_soft_matching + merge_wavg (tome/merge.py)",
        needs_weights: false,
        layered: false,
        load: tome,
    },
    ModelEntry {
        model_types: &["qwen2_vl", "qwen2_5_vl"],
        class: "Qwen2VlMerger",
        reference: "transformers PatchMerger / Qwen2_5_VLPatchMerger (models/qwen2_vl, models/qwen2_5_vl)",
        needs_weights: true,
        layered: false,
        load: qwen2_vl,
    },
    ModelEntry {
        model_types: &["internvl", "idefics3", "smolvlm"],
        class: "PixelShuffleProjector",
        reference: "transformers InternVLMultiModalProjector, Idefics3Connector (models/internvl, models/idefics3)",
        needs_weights: true,
        layered: false,
        load: pixel_shuffle,
    },
    ModelEntry {
        model_types: &["gemma3", "paligemma"],
        class: "GemmaProjector",
        reference: "transformers Gemma3MultiModalProjector, PaliGemmaMultiModalProjector (models/gemma3, models/paligemma)",
        needs_weights: true,
        layered: false,
        load: gemma,
    },
    ModelEntry {
        model_types: &["mistral3"],
        class: "Mistral3Projector",
        reference: "transformers Mistral3MultiModalProjector + Mistral3PatchMerger (models/mistral3)",
        needs_weights: true,
        layered: false,
        load: mistral3,
    },
    ModelEntry {
        model_types: &["mllama"],
        class: "Mllama",
        reference: "transformers MllamaMultiModalProjector + MllamaCrossAttentionDecoderLayer (models/mllama)",
        needs_weights: true,
        layered: true,
        load: mllama,
    },
    ModelEntry {
        model_types: &["idefics2"],
        class: "Idefics2Connector",
        reference: "transformers Idefics2Connector: Idefics2MLP + Idefics2PerceiverResampler (models/idefics2)",
        needs_weights: true,
        layered: false,
        load: idefics2,
    },
];

impl std::fmt::Debug for ModelEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelEntry({:?} → {})", self.model_types, self.class)
    }
}

/// Every `model_type` in the registry, comma separated (for error messages).
pub fn known_model_types() -> String {
    MODELS.iter().flat_map(|e| e.model_types.iter().copied()).collect::<Vec<_>>().join(", ")
}

/// The registry row for `model_type`, or [`Error::UnknownModelType`] listing the known ones.
pub fn lookup(model_type: &str) -> Result<&'static ModelEntry> {
    MODELS
        .iter()
        .find(|e| e.model_types.contains(&model_type))
        .ok_or_else(|| Error::UnknownModelType { model_type: model_type.to_string(), known: known_model_types() })
}

/// How [`Connector::from_dir_opts`] loads a folder.
#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// (dotted field, JSON value) pairs set on the config read or inferred.
    pub overrides: Vec<(String, serde_json::Value)>,
    /// The compute dtype: weights are uploaded in it, inputs must be in it, activations stay in
    /// it (accumulation is f32 either way). [`DType::F16`] needs the adapter's SHADER_F16.
    pub dtype: DType,
}

impl Default for LoadOptions {
    fn default() -> LoadOptions {
        LoadOptions { overrides: Vec::new(), dtype: DType::F32 }
    }
}

/// Any connector this crate can load, picked by `config.json`'s `model_type`.
pub struct Connector {
    model_type: String,
    dtype: DType,
    entry: &'static ModelEntry,
    model: Box<dyn Model>,
    config: Config,
    inferred: Option<Inferred>,
    /// Tensors read at load, and how many the checkpoint holds.
    weights_read: (Vec<String>, usize),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Connector({} `{}`, inputs {:?})", self.entry.class, self.model_type, self.model.inputs())
    }
}

impl Connector {
    /// Reads `config.json` and the weights in `dir`; `model_type` picks the connector. Stages
    /// without weights (`pool2x2`, `tome`) need no safetensors file. An unknown `model_type` is an
    /// error before any weight is opened.
    ///
    /// A folder without `config.json` whose weights are an OpenFlamingo `checkpoint.pt` gets a
    /// config inferred from its tensors (`checkpoint::infer`; [`Connector::inferred`] lists what
    /// was read and what was assumed).
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<Connector> {
        Self::from_dir_with(gpu, dir, &[])
    }

    /// [`Connector::from_dir`] with config overrides: (dotted field, JSON value) pairs set on the
    /// config read or inferred, e.g. `("layer_index", 1)` (`vlmc run --layer 1`: the gated layer of
    /// an `open_flamingo` or `idefics` folder; an [`Error::Config`] for a connector without gated
    /// layers) or `("gated_xattn.heads", 16)` for a checkpoint whose defaults were assumed.
    pub fn from_dir_with(gpu: &Gpu, dir: impl AsRef<Path>, overrides: &[(String, serde_json::Value)]) -> Result<Connector> {
        Self::from_dir_opts(gpu, dir, &LoadOptions { overrides: overrides.to_vec(), ..Default::default() })
    }

    /// [`Connector::from_dir`] with overrides and a compute dtype ([`LoadOptions`]). Errors as
    /// `from_dir`, and [`Error::Unsupported`] naming SHADER_F16 when F16 is asked of an adapter
    /// without it.
    pub fn from_dir_opts(gpu: &Gpu, dir: impl AsRef<Path>, opts: &LoadOptions) -> Result<Connector> {
        let (overrides, dtype) = (&opts.overrides, opts.dtype);
        if dtype == DType::F16 && !gpu.features().contains(wgpu::Features::SHADER_F16) {
            return Err(Error::Unsupported { what: "F16 compute".into(), needs: "the adapter feature SHADER_F16".into() });
        }
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let (mut value, mut ws, inferred) = if cfg_path.exists() || !dir.is_dir() {
            (Config::from_file(&cfg_path)?.value().clone(), None, None)
        } else {
            let ws = WeightSource::open_dir(dir)?;
            let not_inferable = || {
                let why = "no config.json, and the weights are not a checkpoint whose config can be inferred (OpenFlamingo checkpoint.pt)";
                Error::io(&cfg_path, std::io::Error::new(std::io::ErrorKind::NotFound, why))
            };
            let inf = infer::openflamingo(&ws).ok_or_else(not_inferable)??;
            (inf.config.value().clone(), Some(ws), Some(inf))
        };
        for (path, v) in overrides {
            infer::set(&mut value, path, v.clone())?;
        }
        let cfg = Config::from_value(value);
        let entry = lookup(&cfg.str("model_type")?)?;
        if !entry.layered && overrides.iter().any(|(p, _)| p == "layer_index") {
            return Err(Error::config("layer_index", format!("`{}` has no gated layers to pick from", cfg.str("model_type")?)));
        }
        if entry.needs_weights && ws.is_none() {
            ws = Some(WeightSource::open_dir(dir)?);
        }
        let ws = ws.map(|w| w.with_dtype(dtype)).transpose()?;
        let mut c = Self::load(gpu, &cfg, ws.as_ref())?;
        c.dtype = dtype;
        c.inferred = inferred;
        Ok(c)
    }

    /// What was read and assumed when the folder had no `config.json`.
    pub fn inferred(&self) -> Option<&Inferred> {
        self.inferred.as_ref()
    }

    /// What the connector holds, a line per part (widths, layers, tokens per image).
    pub fn describe(&self) -> Vec<String> {
        self.model.describe()
    }

    /// Full names of the tensors the loader read, and how many tensors the checkpoint holds (0 for
    /// random weights or stages without weights).
    pub fn weights_read(&self) -> (&[String], usize) {
        (&self.weights_read.0, self.weights_read.1)
    }

    /// The config it was built from (read, inferred, with overrides applied).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Builds the connector `cfg`'s `model_type` names from already-open weights (or
    /// `WeightSource::random(seed)` for benchmarks).
    pub fn load(gpu: &Gpu, cfg: &Config, ws: Option<&WeightSource>) -> Result<Connector> {
        let model_type = cfg.str("model_type")?;
        let entry = lookup(&model_type)?;
        let model = (entry.load)(gpu, cfg, ws)?;
        let weights_read = ws.map_or((Vec::new(), 0), |w| (w.read_names(), w.names().len()));
        let dtype = ws.map_or(DType::F32, |w| w.dtype());
        Ok(Connector { model_type, dtype, entry, model, config: cfg.clone(), inferred: None, weights_read })
    }

    /// The `model_type` it was loaded as.
    pub fn model_type(&self) -> &str {
        &self.model_type
    }

    /// Its registry row (class, reference).
    pub fn entry(&self) -> &'static ModelEntry {
        self.entry
    }

    /// Names of the inputs it reads.
    pub fn input_names(&self) -> &'static [&'static str] {
        self.model.inputs()
    }

    /// The typed connector, if it is a `T`.
    pub fn model<T: Model>(&self) -> Option<&T> {
        (self.model.as_ref() as &dyn Any).downcast_ref::<T>()
    }

    /// The typed connector; an error naming the class to use when it is not a `T`.
    pub fn into_model<T: Model>(self) -> Result<T> {
        let (model_type, class) = (self.model_type, self.entry.class);
        (self.model as Box<dyn Any>).downcast::<T>().map(|b| *b).map_err(|_| {
            let wanted = std::any::type_name::<T>().rsplit("::").next().unwrap_or("this type");
            Error::config(
                "model_type",
                format!("`{model_type}` loads a {class} (use {class}::from_dir or Connector::from_dir), not a {wanted}"),
            )
        })
    }

    /// The compute dtype it was loaded in (its weights', and what its float inputs must be).
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Records the forward on in-memory inputs (no submit): outputs by name. Errors: an
    /// [`Error::DType`] naming a float input that is not in [`Connector::dtype`].
    pub fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        if let Some((name, t)) = inputs.tensors().find(|(_, t)| t.dtype() != self.dtype && t.dtype() != DType::U32) {
            return Err(Error::DType {
                tensor: name.to_string(),
                dtype: format!("{:?}", t.dtype()),
                expected: format!("{:?} (the connector's dtype)", self.dtype),
            });
        }
        self.model.record(rec, inputs)
    }

    /// Runs on in-memory inputs (tensors of this `gpu`): records, submits once, and reads every
    /// output back, by name.
    pub fn run_inputs(&self, gpu: &Gpu, inputs: &Inputs) -> Result<Outputs> {
        let mut rec = Recorder::new(gpu);
        let outs = match self.record(&mut rec, inputs) {
            Ok(outs) => outs,
            Err(e) => {
                rec.discard(); // a half-recorded forward: nothing to warn about beyond the error
                return Err(e);
            }
        };
        rec.submit()?;
        let outs: Result<Vec<Output>> = outs
            .into_iter()
            .map(|(name, t)| Ok(Output { name: name.to_string(), shape: t.shape().to_vec(), data: t.to_vec(gpu)? }))
            .collect();
        Ok(Outputs(outs?))
    }

    /// Runs on inputs read from a safetensors file (names as in the golden README): what
    /// `vlmc run` does. The forward is one submit; outputs are read back after it.
    pub fn run(&self, gpu: &Gpu, inputs: &WeightSource) -> Result<Outputs> {
        self.run_inputs(gpu, &Inputs::read_as(gpu, inputs, self.input_names(), self.dtype)?)
    }
}
