//! `idefics`: the Flamingo reproduction in transformers (`IdeficsModel`,
//! `models/idefics/modeling_idefics.py`): its Perceiver Resampler (when the top-level
//! `use_resampler` is true; `perceiver_config.use_resampler` is not the switch) and one of its
//! gated cross-attention layers, from a whole `save_pretrained` folder.
//!
//! The inputs pick the path: `image_hidden_states` alone runs the Perceiver
//! ([N, seq, E] → [N, n_latents, E]); with `hidden_states` and `image_attention_mask` they are the
//! already-resampled images [b, num_images·n, E] of gated layer `layer_index` (default 0).

use super::idefics_gated::{IdeficsGatedConfig, IdeficsGatedCrossAttention};
use super::registry::{Inputs, Model, Named};
use super::{PerceiverConfig, PerceiverResampler};
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::runtime::{Error, Gpu, Recorder, Result};

/// IDEFICS's Perceiver Resampler and gated cross-attention layer `layer_index`.
#[derive(Debug)]
pub struct Idefics {
    /// The Perceiver Resampler, when `use_resampler` is true.
    pub perceiver: Option<PerceiverResampler>,
    /// Gated layer `layer_index` (`model.gated_cross_attn_layers.{layer_index}`).
    pub gated: IdeficsGatedCrossAttention,
    /// Which gated layer was loaded: it runs before decoder layer `layer_index · cross_layer_interval`.
    pub layer_index: usize,
}

impl Idefics {
    /// Loads an `idefics` folder (`config.json` + safetensors).
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<std::path::Path>) -> Result<Idefics> {
        super::Connector::from_dir(gpu, dir)?.into_model()
    }

    /// Loads the Perceiver (if `use_resampler`) and gated layer `layer_index` (top-level config
    /// field, set by `vlmc run --layer N`; default 0). Errors: a `layer_index` past
    /// `num_hidden_layers / cross_layer_interval` layers, a zero `cross_layer_interval` (both raise
    /// in `IdeficsModel`).
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<Idefics> {
        let perceiver = match cfg.opt_bool("use_resampler")?.unwrap_or(false) {
            false => None,
            true => {
                // IdeficsPerceiverConfig's defaults for an absent block or field.
                let p = cfg.sub_or_default("perceiver_config");
                let field = |name: &str, default: usize| -> Result<usize> { Ok(p.opt_usize(name)?.unwrap_or(default)) };
                let qk = p.opt_bool("qk_layer_norms_perceiver")?.unwrap_or(false);
                let c = PerceiverConfig {
                    dim: IdeficsGatedConfig::from_config(cfg)?.embed_dim,
                    depth: p.opt_count("resampler_depth")?.unwrap_or(6),
                    dim_head: field("resampler_head_dim", 96)?,
                    heads: field("resampler_n_heads", 16)?,
                    num_latents: field("resampler_n_latents", 64)?,
                    ff_mult: 4,
                    max_num_media: None,
                    max_num_frames: None,
                };
                Some(PerceiverResampler::load_idefics(gpu, c, qk, ws)?)
            }
        };
        let layers = cfg.opt_count("num_hidden_layers")?.unwrap_or(32);
        // opt_usize refuses 0, where IdeficsModel's `num_hidden_layers // cross_layer_interval` raises.
        let interval = cfg.opt_usize("cross_layer_interval")?.unwrap_or(1);
        let count = layers / interval;
        let layer_index = cfg.opt_index("layer_index")?.unwrap_or(0);
        if layer_index >= count {
            return Err(Error::config(
                "layer_index",
                format!("{layer_index}, but this IDEFICS has {count} gated layers (num_hidden_layers {layers} / cross_layer_interval {interval})"),
            ));
        }
        let root = layouts::require(ws, layouts::IDEFICS_ROOT, &format!("gated_cross_attn_layers.{layer_index}.alpha_dense"))?;
        let gated = IdeficsGatedCrossAttention::load(
            gpu,
            IdeficsGatedConfig::from_config(cfg)?,
            &root.pp(format!("gated_cross_attn_layers.{layer_index}")),
        )?;
        Ok(Idefics { perceiver, gated, layer_index })
    }
}

impl Model for Idefics {
    fn inputs(&self) -> &'static [&'static str] {
        &["hidden_states", "image_hidden_states", "image_attention_mask"]
    }

    /// `hidden_states` runs the gated layer on `image_hidden_states` (already resampled) and
    /// outputs `output` and `cross_attention_gate`; without it `image_hidden_states` runs the Perceiver.
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let images = inputs.tensor("image_hidden_states")?;
        if !inputs.contains("hidden_states") {
            let Some(p) = &self.perceiver else {
                return Err(Error::input(
                    "hidden_states",
                    "missing: this IDEFICS has use_resampler false, so it runs only the gated layer (hidden_states, image_hidden_states, image_attention_mask)",
                ));
            };
            if inputs.contains("image_attention_mask") {
                return Err(Error::input("hidden_states", "missing: `image_attention_mask` runs the gated layer, which needs the text"));
            }
            let (n, seq, e) = match *images.shape() {
                [n, s, e] => (n, s, e),
                _ => return Err(Error::shape("image_hidden_states", format!("[b·num_images, seq, {}]", p.config.dim), images.shape())),
            };
            let y = p.forward(rec, &images.reshape(&[n, 1, 1, seq, e])?)?;
            return Ok(vec![("output", y.reshape(&[n, p.config.num_latents, p.config.dim])?)]);
        }
        let x = inputs.tensor("hidden_states")?;
        let (shape, values) = inputs.ints("image_attention_mask")?;
        // The mask must match the text it masks (checked first: it sizes what upload_mask builds).
        let (b, len, num_images) = match (shape, x.shape()) {
            (&[b, l, m], &[xb, xl, _]) if (b, l) == (xb, xl) => (b, l, m),
            _ => return Err(Error::shape("image_attention_mask", "[b, L, num_images] with hidden_states' [b, L]", shape)),
        };
        // IdeficsModel.forward views the images as [b, num_images · n, E]: n must divide evenly.
        let n = match *images.shape() {
            [ib, t, _] if ib == b && num_images > 0 && t % num_images == 0 => t / num_images,
            [ib, 0, _] if ib == b && num_images == 0 => 0,
            _ => {
                return Err(Error::shape(
                    "image_hidden_states",
                    format!("[{b}, num_images {num_images} · n, {}]", self.gated.config.embed_dim),
                    images.shape(),
                ))
            }
        };
        let mask = self.gated.upload_mask(rec.gpu(), values, [b, len, num_images], n)?;
        let y = self.gated.forward(rec, x, images, &mask)?;
        Ok(vec![("output", y), ("cross_attention_gate", mask.gate)])
    }
    fn describe(&self) -> Vec<String> {
        let perceiver = self
            .perceiver
            .as_ref()
            .map_or("no Perceiver (use_resampler false): images go to the gated layers as they are".into(), |p| p.summary());
        vec![perceiver, format!("gated cross-attention layer {}: {}", self.layer_index, self.gated.summary())]
    }
}
