//! Gemma-family projectors: Gemma 3 (`Gemma3MultiModalProjector`, `models/gemma3/modeling_gemma3.py`)
//! and PaliGemma (`PaliGemmaMultiModalProjector`, `models/paligemma/modeling_paligemma.py`):
//!
//! ```text
//! Gemma 3:   vision_outputs [B, P², C] → k×k average pool, k = P // ⌊√mm_tokens_per_image⌋ (floors)
//!            → Gemma RMSNorm x·rsqrt(mean x² + eps)·(1 + w), eps = vision_config.layer_norm_eps
//!            → x @ mm_input_projection_weight ([C, T]) → [B, mm_tokens_per_image, T]
//! PaliGemma: image_features [B, N, C] → Linear → [B, N, T]   (no scaling in transformers 5)
//! ```

use super::registry::{Inputs, Model, Named};
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::pool::{record_pool2d, PoolMode};
use crate::kernels::Activation;
use crate::nn::{Bias, Linear, RmsNorm};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// Gemma 3's projector, or PaliGemma's (a Linear alone).
#[derive(Debug)]
pub struct GemmaProjector {
    pool: Option<(usize, usize)>,
    norm: Option<RmsNorm>,
    proj: Linear,
    input: &'static str,
}

impl GemmaProjector {
    /// `gemma3`: `multi_modal_projector.{mm_soft_emb_norm.weight, mm_input_projection_weight}` (or
    /// under `model.`); `paligemma`: `multi_modal_projector.linear`. Absent vision fields take
    /// `SiglipVisionConfig`'s defaults (768 wide, 224 px, 16-px patches), except a PaliGemma config
    /// without any `vision_config` (`PaliGemmaConfig`'s 1152, 14-px patches); PaliGemma's output
    /// width is the top-level `projection_dim` (default 2048), which `PaliGemmaConfig` copies into
    /// the vision config. Errors: [`Error::Config`] when the pooling kernel
    /// P // ⌊√mm_tokens_per_image⌋ is 0; [`Error::MissingWeight`] / [`Error::Shape`] from the weights.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<GemmaProjector> {
        let vc = cfg.sub_or_default("vision_config");
        let paligemma = cfg.str("model_type")? == "paligemma";
        let no_vision = paligemma && !cfg.has("vision_config");
        let c = vc.opt_usize("hidden_size")?.unwrap_or(if no_vision { 1152 } else { 768 });
        if paligemma {
            let ws = layouts::require(ws, layouts::LLAVA_HF_PROJECTOR, "linear.weight")?;
            let out = cfg.opt_usize("projection_dim")?.unwrap_or(2048);
            let proj = Linear::load(gpu, &ws.pp("linear"), Some(c), Some(out), Bias::Required)?;
            return Ok(GemmaProjector { pool: None, norm: None, proj, input: "image_features" });
        }
        let side = vc.opt_usize("image_size")?.unwrap_or(224) / vc.opt_usize("patch_size")?.unwrap_or(16);
        let tokens = cfg.opt_usize("mm_tokens_per_image")?.unwrap_or(256);
        // Gemma3MultiModalProjector: tokens_per_side = int(mm_tokens_per_image ** 0.5), kernel =
        // patches_per_image // tokens_per_side, AvgPool2d(kernel) (floors): (P // k)² tokens out.
        let per_side = (tokens as f64).sqrt() as usize;
        if per_side == 0 || side / per_side == 0 {
            let why = format!("{tokens}: more tokens per side than the {side}×{side} patch grid has patches");
            return Err(Error::config("mm_tokens_per_image", why));
        }
        let ws = layouts::require(ws, layouts::LLAVA_HF_PROJECTOR, "mm_input_projection_weight")?;
        let eps = vc.opt_f64("layer_norm_eps")?.unwrap_or(1e-6) as f32;
        // Gemma's RMSNorm scales by (1 + w): folded into the weight at load.
        let w = ws.get_host("mm_soft_emb_norm.weight", &[c])?.data;
        let one_plus: Vec<f32> = w.iter().map(|v| 1.0 + v).collect();
        let norm = RmsNorm { weight: Tensor::from_host(gpu, &one_plus, &[c], ws.dtype())?, eps, dim: c };
        // x @ W with W [C, T] ([in, out]): nn.Linear's [out, in] is its transpose.
        // T from text_config.hidden_size when given (checked by get_host), else the stored shape.
        let txt = cfg.sub("text_config").map(|t| t.opt_usize("hidden_size")).transpose()?.flatten();
        let shape = ws.shape("mm_input_projection_weight").unwrap_or_default();
        let t = match (txt, &shape[..]) {
            (Some(t), _) => t,
            (None, &[i, t]) if i == c => t,
            _ => return Err(Error::shape(ws.full_name("mm_input_projection_weight"), format!("[{c}, T]"), shape)),
        };
        let m = ws.get_host("mm_input_projection_weight", &[c, t])?.data;
        let wt: Vec<f32> = (0..t * c).map(|i| m[(i % c) * t + i / c]).collect();
        let proj = Linear::from_host(gpu, &wt, None, c, t, ws.dtype())?;
        Ok(GemmaProjector { pool: Some((side, side / per_side)), norm: Some(norm), proj, input: "vision_outputs" })
    }

    /// Gemma 3: (P, k) of the pooling: a P×P patch grid pooled k×k (stride k, floored); `None`
    /// for PaliGemma.
    pub fn pool(&self) -> Option<(usize, usize)> {
        self.pool
    }

    /// Records the projector. Gemma 3: vision_outputs [B, P², C] → [B, (P // k)², T] (mm_tokens_per_image when it is a square);
    /// PaliGemma: image_features [B, N, C] → [B, N, T]. Errors: [`Error::Shape`] naming the input.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        x.expect_float(rec.gpu(), self.input)?;
        let c = self.proj.in_features;
        let Some((side, k)) = self.pool else {
            if x.rank() != 3 || x.shape()[2] != c {
                return Err(Error::shape(self.input, format!("[B, N, {c}]"), x.shape()));
            }
            return self.proj.forward(rec, x, Activation::Identity);
        };
        x.expect_shape(self.input, &[x.shape().first().copied().unwrap_or(0), side * side, c])
            .map_err(|_| Error::shape(self.input, format!("[B, {} (= {side}² patches), {c}]", side * side), x.shape()))?;
        let pooled = record_pool2d(rec, x, [side, side], k, PoolMode::Average)?;
        let normed = self.norm.as_ref().map_or(Ok(pooled.clone()), |n| n.forward(rec, &pooled))?;
        self.proj.forward(rec, &normed, Activation::Identity)
    }
}

impl Model for GemmaProjector {
    fn inputs(&self) -> &'static [&'static str] {
        if self.pool.is_some() {
            &["vision_outputs"]
        } else {
            &["image_features"]
        }
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        Ok(vec![("output", self.forward(rec, inputs.tensor(self.input)?)?)])
    }
    fn describe(&self) -> Vec<String> {
        let (c, t) = (self.proj.in_features, self.proj.out_features);
        vec![match self.pool {
            Some((side, k)) => format!(
                "{k}×{k} average pool of the {side}×{side} patch grid → {} tokens, Gemma RMSNorm, {c} → {t}",
                (side / k) * (side / k)
            ),
            None => format!("Linear {c} → {t} on every patch token"),
        }]
    }
}
