//! Connectors, and `Connector`: pick one from `config.json`'s `model_type` and run it on named
//! input tensors (what `vlmc run` does).

pub mod budget;
pub mod compress;
pub mod gated_xattn;
pub mod llava;
pub mod llava_next;
pub mod perceiver;
pub mod qformer;

pub use gated_xattn::{GatedCrossAttention, GatedXattnConfig};
pub use compress::{Pool2x2, TokenMerger};
pub use llava::LlavaProjector;
pub use llava_next::{AnyResPacker, LlavaNext};
pub use perceiver::{PerceiverConfig, PerceiverResampler};
pub use qformer::{QFormer, QFormerConfig};

use std::path::Path;

use crate::checkpoint::{Config, WeightSource};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// A named output tensor.
#[derive(Clone, Debug)]
pub struct Output {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Every `model_type` [`Connector`] understands.
pub const MODEL_TYPES: &[&str] = &["llava", "llava_llama", "llava_mistral", "llava_qwen", "llava_next_video", "llava_next", "pool2x2", "tome", "blip-2", "open_flamingo"];

/// Any connector this crate can load from a checkpoint folder.
#[allow(clippy::large_enum_variant)]
pub enum Connector {
    Llava(LlavaProjector),
    /// LLaVA-NeXT-Video: 2×2 average pooling of each frame's token grid, then the projector.
    LlavaVideo { pool: Pool2x2, projector: LlavaProjector },
    LlavaNext(LlavaNext),
    QFormer(QFormer),
    Pool(Pool2x2),
    Tome(TokenMerger),
    /// OpenFlamingo: a Perceiver, a gated cross-attention block, or both (Perceiver output = media).
    Flamingo { perceiver: Option<PerceiverResampler>, gated: Option<GatedCrossAttention> },
}

impl Connector {
    /// Reads `config.json` and the weights in `dir`; `model_type` picks the connector.
    /// Stages without weights (`pool2x2`, `tome`) need no safetensors file.
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<Connector> {
        let dir = dir.as_ref();
        let cfg = Config::from_file(dir.join("config.json"))?;
        let ws = match cfg.str("model_type")?.as_str() {
            "pool2x2" | "tome" => None,
            t if MODEL_TYPES.contains(&t) => Some(WeightSource::open_dir(dir)?),
            other => return Err(Error::UnknownModelType(other.to_string())),
        };
        Self::load(gpu, &cfg, ws.as_ref())
    }

    /// Builds the connector `cfg`'s `model_type` names from already-open weights.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: Option<&WeightSource>) -> Result<Connector> {
        let model_type = cfg.str("model_type")?;
        let weights = || ws.ok_or_else(|| Error::config("model_type", format!("`{model_type}` needs weights")));
        match model_type.as_str() {
            "llava" | "llava_llama" | "llava_mistral" | "llava_qwen" => Ok(Connector::Llava(LlavaProjector::load(gpu, cfg, weights()?)?)),
            "llava_next_video" => {
                let mode = cfg.opt_str("spatial_pool_mode")?.unwrap_or_else(|| "average".into());
                let stride = cfg.opt_usize("spatial_pool_stride")?.unwrap_or(2);
                if mode != "average" || stride != 2 {
                    return Err(Error::config("spatial_pool_mode", format!("`{mode}` with stride {stride}: only `average` with stride 2 is implemented")));
                }
                let vc = cfg.sub("vision_config").ok_or_else(|| Error::config("vision_config", "missing (its image_size / patch_size give the token grid)"))?;
                let side = vc.usize("image_size")? / vc.usize("patch_size")?;
                let projector = LlavaProjector::load(gpu, cfg, weights()?)?;
                Ok(Connector::LlavaVideo { pool: Pool2x2 { grid: [side, side] }, projector })
            }
            "llava_next" => Ok(Connector::LlavaNext(LlavaNext::load(gpu, cfg, weights()?)?)),
            "pool2x2" => Ok(Connector::Pool(Pool2x2::from_config(cfg)?)),
            "tome" => Ok(Connector::Tome(TokenMerger::from_config(cfg)?)),
            "blip-2" => Ok(Connector::QFormer(QFormer::load(gpu, cfg, weights()?)?)),
            "open_flamingo" => {
                let ws = weights()?;
                let perceiver = cfg.sub("perceiver").map(|c| PerceiverResampler::load(gpu, PerceiverConfig::from_config(&c)?, ws)).transpose()?;
                let gated = cfg.sub("gated_xattn").map(|c| GatedCrossAttention::load(gpu, GatedXattnConfig::from_config(&c)?, ws)).transpose()?;
                if perceiver.is_none() && gated.is_none() {
                    return Err(Error::config("open_flamingo", "needs a `perceiver` or a `gated_xattn` block"));
                }
                Ok(Connector::Flamingo { perceiver, gated })
            }
            other => Err(Error::UnknownModelType(other.to_string())),
        }
    }

    /// Names of the input tensors this connector reads.
    pub fn input_names(&self) -> &'static [&'static str] {
        match self {
            Connector::Llava(_) => &["image_features"],
            Connector::LlavaVideo { .. } => &["image_features"],
            Connector::LlavaNext(_) => &["image_features", "image_size"],
            Connector::QFormer(_) => &["image_embeds"],
            Connector::Pool(_) => &["tokens"],
            Connector::Tome(_) => &["tokens", "metric", "size"],
            Connector::Flamingo { perceiver: Some(_), gated: None } => &["vision_features"],
            Connector::Flamingo { perceiver: None, .. } => &["hidden_states", "media", "media_locations"],
            Connector::Flamingo { .. } => &["vision_features", "hidden_states", "media_locations"],
        }
    }

    /// Runs on inputs read from a safetensors file (names as in the golden README).
    /// The forward is one submit; outputs are read back after it.
    pub fn run(&self, gpu: &Gpu, inputs: &WeightSource) -> Result<Vec<Output>> {
        let input = |name: &str| -> Result<Tensor> {
            let h = inputs.get_any(name).map_err(|e| match e {
                Error::MissingWeight { name, location } => Error::input(name, format!("not found in {location}")),
                other => other,
            })?;
            Tensor::from_slice(gpu, &h.data, &h.shape)
        };
        let mut rec = Recorder::new(gpu);
        let outs: Vec<(&str, Tensor)> = match self {
            Connector::Llava(p) => {
                let x = input("image_features")?;
                if x.rank() != 3 {
                    return Err(Error::shape("image_features", format!("[B, N, {}]", p.in_features), x.shape()));
                }
                vec![("output", p.forward(&mut rec, &x)?)]
            }
            Connector::LlavaVideo { pool, projector } => {
                let pooled = pool.forward(&mut rec, &input("image_features")?)?;
                vec![("output", projector.forward(&mut rec, &pooled)?)]
            }
            Connector::LlavaNext(n) => {
                let (shape, size) = inputs.get_int("image_size")?;
                let image_size = match (shape.as_slice(), size.as_slice()) {
                    ([2], &[h, w]) if h > 0 && w > 0 && h < (1 << 31) && w < (1 << 31) => [h as usize, w as usize],
                    _ => return Err(Error::input("image_size", format!("expected 2 positive integers (h, w), got {size:?}"))),
                };
                let (packed, projected) = n.forward(&mut rec, &input("image_features")?, image_size)?;
                vec![("output", packed), ("projected", projected)]
            }
            Connector::Pool(p) => vec![("output", p.forward(&mut rec, &input("tokens")?)?)],
            Connector::Tome(t) => {
                let (x, size) = t.forward(&mut rec, &input("tokens")?, &input("metric")?, &input("size")?)?;
                vec![("output", x), ("size", size)]
            }
            Connector::QFormer(q) => {
                let (h, projected) = q.forward(&mut rec, &input("image_embeds")?)?;
                vec![("output", projected), ("qformer_output", h)]
            }
            Connector::Flamingo { perceiver, gated } => {
                let media = match perceiver {
                    Some(p) => p.forward(&mut rec, &input("vision_features")?)?,
                    None => input("media")?,
                };
                match gated {
                    None => vec![("output", media)],
                    Some(gx) => {
                        let x = input("hidden_states")?;
                        let (shape, locs) = inputs.get_int("media_locations")?;
                        let (b, len) = match *shape {
                            [b, l] => (b, l),
                            _ => return Err(Error::shape("media_locations", "[b, L]", shape)),
                        };
                        let locs: Vec<u8> = locs.iter().map(|&v| u8::try_from(v).unwrap_or(u8::MAX)).collect();
                        let t_img = media.shape().get(1).copied().unwrap_or(0);
                        let packed = gx.upload_locations(gpu, &locs, b, len, t_img)?;
                        let y = gx.forward(&mut rec, &x, &media, &packed)?;
                        if perceiver.is_some() {
                            vec![("output", y), ("media", media)]
                        } else {
                            vec![("output", y)]
                        }
                    }
                }
            }
        };
        rec.submit()?;
        outs.into_iter()
            .map(|(name, t)| Ok(Output { name: name.to_string(), shape: t.shape().to_vec(), data: t.to_vec(gpu)? }))
            .collect()
    }
}
