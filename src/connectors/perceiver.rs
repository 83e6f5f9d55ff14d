//! Flamingo's Perceiver Resampler (OpenFlamingo `helpers.py`): any number of images or video
//! frames in, a fixed number of latent tokens per media out.
//!
//! ```text
//! x: [b, T, F, v, D] (+ frame_embs[f] per frame, + media_time_embs[t] per media) → [b·T, F·v, D]
//! latents = repeat(latents, b·T)
//! per layer:  latents += to_out(attn(q = to_q(LN_l(latents)),
//!                                     kv = to_kv(concat(LN_m(x), LN_l(latents)))))
//!             latents += FF(latents)                    (LN → Linear → GELU → Linear)
//! out = LN(latents)  → [b, T, n, D]
//! ```

use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::attention::AttnOpts;
use crate::kernels::elementwise::{record_add_rows, record_copy_rows};
use crate::kernels::Activation;
use crate::nn::{Attention, FeedForward, LayerNorm, Linear, Norm, QkNorm};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

const EPS: f32 = 1e-5;

/// The `perceiver` block of an `open_flamingo` config (OpenFlamingo's constructor arguments).
#[derive(Clone, Debug)]
pub struct PerceiverConfig {
    /// Token width.
    pub dim: usize,
    /// Layers.
    pub depth: usize,
    /// Width of one attention head.
    pub dim_head: usize,
    /// Attention heads.
    pub heads: usize,
    /// Latent tokens out per media.
    pub num_latents: usize,
    /// Feed-forward expansion (hidden = ff_mult·dim).
    pub ff_mult: usize,
    /// Rows of `media_time_embs`, if the model has them.
    pub max_num_media: Option<usize>,
    /// Rows of `frame_embs`, if the model has them.
    pub max_num_frames: Option<usize>,
}

impl PerceiverConfig {
    /// Reads the `perceiver` object of an `open_flamingo` config (OpenFlamingo's defaults for absent fields).
    pub fn from_config(c: &Config) -> Result<PerceiverConfig> {
        Ok(PerceiverConfig {
            dim: c.usize("dim")?,
            depth: c.opt_count("depth")?.unwrap_or(6),
            dim_head: c.opt_usize("dim_head")?.unwrap_or(64),
            heads: c.opt_usize("heads")?.unwrap_or(8),
            num_latents: c.opt_usize("num_latents")?.unwrap_or(64),
            ff_mult: c.opt_usize("ff_mult")?.unwrap_or(4),
            max_num_media: c.opt_usize("max_num_media")?,
            max_num_frames: c.opt_usize("max_num_frames")?,
        })
    }
}

#[derive(Debug)]
struct PerceiverLayer {
    norm_media: LayerNorm,
    norm_latents: LayerNorm,
    attn: Attention,
    to_out: Linear,
    ff: FeedForward,
}

/// OpenFlamingo's `PerceiverResampler` (`open_flamingo/src/helpers.py`):
/// vision_features [b, T, F, v, dim] → [b, T, num_latents, dim].
#[derive(Debug)]
pub struct PerceiverResampler {
    /// The configuration it was built with.
    pub config: PerceiverConfig,
    latents: Tensor,
    frame_embs: Option<Tensor>,
    media_time_embs: Option<Tensor>,
    layers: Vec<PerceiverLayer>,
    norm: LayerNorm,
}

impl PerceiverResampler {
    /// Loads the `perceiver` block of an `open_flamingo` folder; an error names the folder's
    /// blocks when it has none.
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<std::path::Path>) -> Result<PerceiverResampler> {
        let f = super::OpenFlamingo::from_dir(gpu, dir)?;
        f.perceiver.ok_or_else(|| Error::config("perceiver", "missing: this open_flamingo config has only a `gated_xattn` block"))
    }

    /// Loads `perceiver.*` (with or without a leading `model.`).
    pub fn load(gpu: &Gpu, c: PerceiverConfig, ws: &WeightSource) -> Result<PerceiverResampler> {
        let ws = layouts::require(ws, layouts::FLAMINGO_ROOT, "perceiver.latents")?.pp("perceiver");
        let d = c.dim;
        let inner = c.heads * c.dim_head;
        let latents = ws.get(gpu, "latents", &[c.num_latents, d])?;
        // Without max_num_frames / max_num_media in the config, the stored tensors give the count,
        // and the rest of their shape is checked all the same.
        let embs = |name: &str, max: Option<usize>, tail: &[usize]| -> Result<Option<Tensor>> {
            let count = match (max, ws.shape(name)) {
                (Some(n), _) => n,
                (None, Some(s)) if !s.is_empty() && s[1..] == *tail && s[0] > 0 => s[0],
                (None, Some(s)) => {
                    return Err(Error::shape(
                        ws.full_name(name),
                        format!("[count, {}]", tail.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")),
                        s,
                    ))
                }
                (None, None) => return Ok(None),
            };
            let shape: Vec<usize> = std::iter::once(count).chain(tail.iter().copied()).collect();
            ws.get(gpu, name, &shape).map(Some)
        };
        let frame_embs = embs("frame_embs", c.max_num_frames, &[d])?;
        let media_time_embs = embs("media_time_embs", c.max_num_media, &[1, d])?;
        let mut layers = Vec::new(); // grows as the weights load: the count is a config value
        for i in 0..c.depth {
            let a = ws.pp(format!("layers.{i}.0"));
            layers.push(PerceiverLayer {
                norm_media: LayerNorm::load(gpu, &a.pp("norm_media"), d, EPS)?,
                norm_latents: LayerNorm::load(gpu, &a.pp("norm_latents"), d, EPS)?,
                attn: Attention::load_fused(gpu, &a.pp("to_q"), &a.pp("to_kv"), d, d, c.heads, c.dim_head)?,
                to_out: Linear::load(gpu, &a.pp("to_out"), Some(inner), Some(d), crate::nn::Bias::None)?,
                ff: FeedForward::load(gpu, &ws.pp(format!("layers.{i}.1")), d, c.ff_mult, EPS)?,
            });
        }
        let norm = LayerNorm::load(gpu, &ws.pp("norm"), d, EPS)?;
        Ok(PerceiverResampler { config: c, latents, frame_embs, media_time_embs, layers, norm })
    }

    /// IDEFICS's `IdeficsPerceiverResampler` (transformers `models/idefics/perceiver.py`) in the same
    /// shape: `perceiver_resampler.*` (with or without a leading `model.`); keys and values from
    /// `q_proj`/`k_proj`/`v_proj` (inner width heads·dim_head, which need not be `dim`), optional
    /// per-head LayerNorm q/k norms (`qk_layer_norms_perceiver`, eps 1e-5, with bias), a ReLU MLP
    /// (`ln`, `fc` [4·dim, dim], `c_proj`), a final `layer_norm`, and no media/frame embeddings.
    pub fn load_idefics(gpu: &Gpu, c: PerceiverConfig, qk_layer_norms: bool, ws: &WeightSource) -> Result<PerceiverResampler> {
        let ws = layouts::require(ws, layouts::IDEFICS_ROOT, "perceiver_resampler.latents")?.pp("perceiver_resampler");
        let (d, inner) = (c.dim, c.heads * c.dim_head);
        let mut layers = Vec::new(); // grows as the weights load: the count is a config value
        for i in 0..c.depth {
            let (a, m) = (ws.pp(format!("blocks.{i}.0")), ws.pp(format!("blocks.{i}.1")));
            let qk_norm = match qk_layer_norms {
                true => Some(QkNorm {
                    q: Norm::Layer(LayerNorm::load(gpu, &a.pp("q_layer_norm"), c.dim_head, EPS)?),
                    k: Norm::Layer(LayerNorm::load(gpu, &a.pp("k_layer_norm"), c.dim_head, EPS)?),
                }),
                false => None,
            };
            let proj = [&a.pp("q_proj"), &a.pp("k_proj"), &a.pp("v_proj")];
            layers.push(PerceiverLayer {
                norm_media: LayerNorm::load(gpu, &a.pp("context_layer_norm"), d, EPS)?,
                norm_latents: LayerNorm::load(gpu, &a.pp("latents_layer_norm"), d, EPS)?,
                attn: Attention::load_projections(gpu, proj, d, d, [c.heads; 2], c.dim_head, qk_norm)?,
                to_out: Linear::load(gpu, &a.pp("output_proj"), Some(inner), Some(d), crate::nn::Bias::None)?,
                ff: FeedForward::load_parts(gpu, [&m.pp("ln"), &m.pp("fc"), &m.pp("c_proj")], d, c.ff_mult * d, Activation::Relu, EPS)?,
            });
        }
        let latents = ws.get(gpu, "latents", &[c.num_latents, d])?;
        let norm = LayerNorm::load(gpu, &ws.pp("layer_norm"), d, EPS)?;
        Ok(PerceiverResampler { config: c, latents, frame_embs: None, media_time_embs: None, layers, norm })
    }

    /// One line: layers, heads, widths, latents per media, embeddings.
    pub fn summary(&self) -> String {
        let c = &self.config;
        let rows = |t: &Option<Tensor>| t.as_ref().map_or("none".to_string(), |t| t.shape()[0].to_string());
        format!(
            "Perceiver Resampler: {} layers, {} heads × {}, width {}, {} latent tokens per media; frame_embs {}, media_time_embs {}",
            c.depth,
            c.heads,
            c.dim_head,
            c.dim,
            c.num_latents,
            rows(&self.frame_embs),
            rows(&self.media_time_embs)
        )
    }

    /// Records the resampler. vision_features [b, T, F, v, D] → [b, T, num_latents, D] (b·T = 0
    /// gives an empty output; F·v = 0 attends the latents alone, as the reference's
    /// `cat((x, latents))` does). Errors: [`crate::Error::Shape`] for another width or rank,
    /// [`crate::Error::Input`] for more frames than `frame_embs` or media than `media_time_embs`
    /// has rows (where the reference's add fails to broadcast; a single row is broadcast, as there).
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        x.expect_float(rec.gpu(), "vision_features")?;
        let gpu = rec.gpu();
        let c = &self.config;
        let (b, t, f, v) = match *x.shape() {
            [b, t, f, v, d] if d == c.dim => (b, t, f, v), // b·T = 0: an empty batch
            _ => return Err(Error::shape("vision_features", format!("[b, T, F, v, {}]", c.dim), x.shape())),
        };
        let (bt, fv, n, d) = (b * t, f * v, c.num_latents, c.dim);
        // 1. Frame and media-time embeddings (on a copy: the caller's tensor is not modified).
        let mut media = x.reshape(&[bt, fv, d])?;
        if fv > 0 && (self.frame_embs.is_some() || self.media_time_embs.is_some()) {
            let copy = Tensor::empty(gpu, &[bt, fv, d], x.dtype())?;
            record_copy_rows(rec, &media, 0, &copy, 0, fv)?;
            if let Some(fe) = &self.frame_embs {
                let max = fe.shape()[0];
                if f > max && max != 1 {
                    return Err(Error::input(
                        "vision_features",
                        format!("{f} frames per media, but frame_embs has {max} (max_num_frames)"),
                    ));
                }
                record_add_rows(rec, &copy, fe, v, if max == 1 { 1 } else { f })?;
                // row (b,T,F,v) → frame (row / v) % F
            }
            if let Some(te) = &self.media_time_embs {
                let max = te.shape()[0];
                if t > max && max != 1 {
                    return Err(Error::input("vision_features", format!("{t} media, but media_time_embs has {max} (max_num_media)")));
                }
                record_add_rows(rec, &copy, te, fv, if max == 1 { 1 } else { t })?;
                // row → media (row / (F·v)) % T
            }
            media = copy;
        }
        // 2. Latents repeated over (b, T).
        let mut latents = Tensor::empty(gpu, &[bt, n, d], x.dtype())?;
        record_copy_rows(rec, &self.latents.reshape(&[1, n, d])?, 0, &latents, 0, n)?;
        // 3. Layers: attention over concat(media, latents), then the feed-forward; both residual.
        for l in &self.layers {
            let xm = l.norm_media.forward(rec, &media)?;
            let xl = l.norm_latents.forward(rec, &latents)?;
            let kv_in = Tensor::empty(gpu, &[bt, fv + n, d], x.dtype())?;
            record_copy_rows(rec, &xm, 0, &kv_in, 0, fv)?;
            record_copy_rows(rec, &xl, 0, &kv_in, fv, n)?;
            let ctx = l.attn.context(rec, &xl, &kv_in, AttnOpts::default())?;
            latents = l.to_out.forward_residual(rec, &ctx, &latents, 1.0)?;
            latents = l.ff.forward_residual(rec, &latents, 1.0)?;
        }
        // 4. Final norm → [b, T, n, D].
        self.norm.forward(rec, &latents)?.reshape(&[b, t, n, d])
    }
}
