//! The registry's table: every `model_type` this crate loads, its connector class, the reference
//! it follows and its loader ([`MODELS`]; read through `registry::lookup`).

use super::registry::Model;
use super::{
    GemmaProjector, Idefics, Idefics2Connector, InstructBlip, LlavaNext, LlavaNextVideo, LlavaOnevision, LlavaProjector, Mistral3Projector,
    Mllama, OpenFlamingo, PixelShuffleProjector, Pool2x2, QFormer, Qwen2VlMerger, TokenMerger,
};
use crate::checkpoint::{Config, WeightSource};
use crate::runtime::{Error, Gpu, Result};

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

/// The `model_type`s whose vision tower runs here (`load_vision_tower`, `ImageEncoder`).
pub const TOWER_MODEL_TYPES: &[&str] = &["llava", "llava_next", "llava_onevision", "blip-2"];

/// The caller's `load_vision_tower` override (not a model field: its absence is not noted).
/// Errors: [`Error::Config`] for a value other than true or false.
pub fn tower_requested(c: &Config) -> Result<bool> {
    match c.raw("load_vision_tower") {
        None => Ok(false),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(v) => Err(Error::config("load_vision_tower", format!("{v}: expected true or false"))),
    }
}

fn llava_hf(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    let ws = weights(w, c)?;
    // `load_vision_tower` (set by the caller, e.g. `vlmc run` on pixel_values): tower + projector.
    if tower_requested(c)? {
        let tower = super::VisionTower::load(g, c, ws)?;
        return Ok(Box::new(super::LlavaFromPixels { tower, projector: LlavaProjector::load_hf(g, c, ws)? }));
    }
    Ok(Box::new(LlavaProjector::load_hf(g, c, ws)?))
}
fn llava_original(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(LlavaProjector::load_original(g, c, weights(w, c)?)?))
}
fn llava_next(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    let ws = weights(w, c)?;
    if tower_requested(c)? {
        let tower = super::VisionTower::load(g, c, ws)?;
        return Ok(Box::new(super::LlavaNextFromPixels { tower, next: LlavaNext::load(g, c, ws)? }));
    }
    Ok(Box::new(LlavaNext::load(g, c, ws)?))
}
fn llava_onevision(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    let ws = weights(w, c)?;
    if tower_requested(c)? {
        // LlavaOnevisionConfig's defaults differ from LlavaConfig's: the last layer, all tokens,
        // and SigLIP so400m/14-384 cut to 26 layers.
        let mut v = c.value().clone();
        let defaults = [
            ("vision_feature_layer", serde_json::json!(-1)),
            ("vision_feature_select_strategy", serde_json::json!("full")),
            (
                "vision_config",
                serde_json::json!({"model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
                "num_hidden_layers": 26, "num_attention_heads": 16, "image_size": 384, "patch_size": 14}),
            ),
        ];
        for (k, d) in defaults {
            if !c.has(k) {
                v[k] = d;
            }
        }
        // A vision_config without model_type is SiglipVisionConfig's there.
        if v["vision_config"].is_object() && v["vision_config"].get("model_type").is_none() {
            v["vision_config"]["model_type"] = serde_json::json!("siglip_vision_model");
        }
        let c = Config::from_value(v);
        let tower = super::VisionTower::load(g, &c, ws)?;
        return Ok(Box::new(super::from_pixels::LlavaOnevisionFromPixels { tower, onevision: LlavaOnevision::load(g, &c, ws)? }));
    }
    Ok(Box::new(LlavaOnevision::load(g, c, ws)?))
}
fn llava_next_video(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    Ok(Box::new(LlavaNextVideo::load(g, c, weights(w, c)?)?))
}
fn blip2(g: &Gpu, c: &Config, w: Option<&WeightSource>) -> Result<Box<dyn Model>> {
    let ws = weights(w, c)?;
    if tower_requested(c)? {
        let tower = super::VisionTower::load_blip2(g, c, ws)?;
        return Ok(Box::new(super::Blip2FromPixels { tower, qformer: QFormer::load(g, c, ws)? }));
    }
    Ok(Box::new(QFormer::load(g, c, ws)?))
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
