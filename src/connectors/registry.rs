//! The model registry: the one place a `model_type` is mapped to a connector. `Connector::from_dir`,
//! `vlmc run`, `vlmc info`, the unknown-`model_type` error and the fuzz harness all read [`MODELS`]
//! (the table itself is in `models.rs`).
//!
//! Adding a connector: its file (the struct, a loader, and `impl Model`: input names and `record`)
//! and one [`ModelEntry`] at the end of [`MODELS`].

use std::any::Any;
use std::path::Path;

pub use super::inputs::{Inputs, Output, Outputs};
pub use super::models::{known_model_types, lookup, Loader, ModelEntry, MODELS};
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
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let (value, ws, inferred) = if cfg_path.exists() || !dir.is_dir() {
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
        let needs_weights = || WeightSource::open_dir(dir);
        let mut c = Self::build(gpu, value, ws, opts, needs_weights)?;
        c.inferred = inferred;
        Ok(c)
    }

    /// From bytes in memory, as the web build loads (`fetch`ed files): `config.json`'s text and
    /// the weights, one safetensors file (or a PyTorch checkpoint, told by its zip signature), or
    /// `None` for stages without weights. Errors as [`Connector::from_dir_opts`]: [`Error::Config`]
    /// naming `config.json` for text that is not a JSON object, [`Error::Checkpoint`] / [`Error::Safetensors`] for the weights, and an
    /// [`Error::Config`] when the model needs weights and none were given.
    pub fn from_bytes(gpu: &Gpu, config_json: &str, weights: Option<Vec<u8>>, opts: &LoadOptions) -> Result<Connector> {
        let value = Config::from_str(config_json)?.value().clone();
        let ws = weights.map(|b| weights_from_bytes(b, "weights")).transpose()?;
        Self::build(gpu, value, ws, opts, || Err(Error::config("weights", "this model_type needs weights and none were given")))
    }

    /// Overrides, the registry lookup, the weights (`needs_weights` opens them when the model
    /// needs them and none came yet), the dtype: what every loader shares.
    fn build(
        gpu: &Gpu,
        mut value: serde_json::Value,
        mut ws: Option<WeightSource>,
        opts: &LoadOptions,
        needs_weights: impl FnOnce() -> Result<WeightSource>,
    ) -> Result<Connector> {
        let (overrides, dtype) = (&opts.overrides, opts.dtype);
        check_dtype(gpu, dtype)?;
        for (path, v) in overrides {
            infer::set(&mut value, path, v.clone())?;
        }
        let cfg = Config::from_value(value);
        let entry = lookup(&cfg.str("model_type")?)?;
        if !entry.layered && overrides.iter().any(|(p, _)| p == "layer_index") {
            return Err(Error::config("layer_index", format!("`{}` has no gated layers to pick from", cfg.str("model_type")?)));
        }
        if entry.needs_weights && ws.is_none() {
            ws = Some(needs_weights()?);
        }
        let ws = ws.map(|w| w.with_dtype(dtype)).transpose()?;
        let mut c = Self::load(gpu, &cfg, ws.as_ref())?;
        c.dtype = dtype;
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
        // `load_vision_tower` asks for a model that reads pixel_values: one that does not (its
        // model_type has no tower here) is an error now, not a missing input later.
        if super::models::tower_requested(cfg)? && !model.inputs().contains(&"pixel_values") {
            return Err(Error::config(
                "load_vision_tower",
                format!("`{model_type}` has no vision tower here; pixel_values run for {}", super::models::TOWER_MODEL_TYPES.join(", ")),
            ));
        }
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
    /// output back, by name. Blocks (native only; on the web use [`Self::run_inputs_async`]).
    pub fn run_inputs(&self, gpu: &Gpu, inputs: &Inputs) -> Result<Outputs> {
        crate::runtime::block_on(self.run_inputs_async(gpu, inputs), "Connector::run_inputs", "Connector::run_inputs_async")
    }

    /// [`Self::run_inputs`] as a future: the outputs are read back as the browser (or, natively,
    /// `poll`) completes the maps. What the web build runs.
    pub async fn run_inputs_async(&self, gpu: &Gpu, inputs: &Inputs) -> Result<Outputs> {
        let mut outs = Vec::new();
        for (name, t) in gpu.scoped_async("forward", || self.submit(gpu, inputs)).await? {
            outs.push(Output { name: name.to_string(), shape: t.shape().to_vec(), data: t.to_vec_async(gpu).await? });
        }
        Ok(Outputs(outs))
    }

    /// Records the forward and submits it once.
    fn submit(&self, gpu: &Gpu, inputs: &Inputs) -> Result<Named> {
        let mut rec = Recorder::new(gpu);
        let outs = match self.record(&mut rec, inputs) {
            Ok(outs) => outs,
            Err(e) => {
                rec.discard(); // a half-recorded forward: nothing to warn about beyond the error
                return Err(e);
            }
        };
        rec.submit()?;
        Ok(outs)
    }

    /// Runs on inputs read from a safetensors file (names as in the golden README): what
    /// `vlmc run` does. The forward is one submit; outputs are read back after it.
    pub fn run(&self, gpu: &Gpu, inputs: &WeightSource) -> Result<Outputs> {
        self.run_inputs(gpu, &Inputs::read_as(gpu, inputs, self.input_names(), self.dtype)?)
    }
}

/// Weights from bytes: a PyTorch checkpoint when they start with a zip signature, else safetensors.
pub(crate) fn weights_from_bytes(bytes: Vec<u8>, name: &str) -> Result<WeightSource> {
    match bytes.starts_with(b"PK\x03\x04") {
        true => WeightSource::from_torch_bytes(bytes, name),
        false => WeightSource::from_bytes(bytes, name),
    }
}

/// F16 compute needs the adapter's SHADER_F16 (browsers without `shader-f16` load in F32).
fn check_dtype(gpu: &Gpu, dtype: DType) -> Result<()> {
    if dtype == DType::F16 && !gpu.features().contains(wgpu::Features::SHADER_F16) {
        return Err(Error::Unsupported { what: "F16 compute".into(), needs: "the adapter feature SHADER_F16".into() });
    }
    Ok(())
}
