//! Pixel-shuffle projectors: InternVL (`InternVLMultiModalProjector`, `models/internvl/modeling_internvl.py`)
//! and Idefics3 / SmolVLM (`Idefics3Connector`, `models/idefics3/modeling_idefics3.py`):
//!
//! ```text
//! InternVL:  image_features [B, 1 + s², C] → drop CLS → pixel shuffle by k = 1 / downsample_ratio
//!            → LayerNorm(k²C, eps 1e-5) → Linear → act → Linear → [B, (s/k)², T]
//! Idefics3:  image_hidden_states [B, s², C] → pixel shuffle by scale_factor k → Linear (no bias) → [B, (s/k)², T]
//! ```
//! The shuffle makes token (i, j) of the (s/k)² grid from the k×k block at (k·i, k·j), channel
//! (dy·k + dx)·C + c (`kernels::pool::record_space_to_depth`).

use super::registry::{Inputs, Model, Named};
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::pool::{record_space_to_depth, BlockOrder};
use crate::kernels::Activation;
use crate::nn::{Bias, LayerNorm, Linear};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// InternVL's or Idefics3's connector.
#[derive(Debug)]
pub struct PixelShuffleProjector {
    scale: usize,
    skip: usize,
    in_features: usize,
    norm: Option<LayerNorm>,
    fc1: Linear,
    fc2: Option<(Activation, Linear)>,
    input: &'static str,
}

impl PixelShuffleProjector {
    /// `internvl`: `multi_modal_projector.{layer_norm, linear_1, linear_2}` (or under `model.`),
    /// `downsample_ratio` (default 0.5), `projector_hidden_act`, `vision_feature_select_strategy`.
    /// `idefics3` / `smolvlm`: `model.connector.modality_projection.proj`, `scale_factor` (default 2).
    /// C = `vision_config.hidden_size` (`InternVLVisionConfig`'s 1024 or `Idefics3VisionConfig`'s
    /// 1152 when absent). Errors: [`Error::Config`] for a block side past 64 or a
    /// `downsample_ratio` whose inverse is not whole; [`Error::MissingWeight`] / [`Error::Shape`].
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<PixelShuffleProjector> {
        let internvl = cfg.str("model_type")? == "internvl";
        let c = cfg.sub_or_default("vision_config").opt_usize("hidden_size")?.unwrap_or(if internvl { 1024 } else { 1152 });
        // The LM width when the config gives it (checked against the weights), else the weights'.
        let txt = cfg.sub("text_config").map(|t| t.opt_usize("hidden_size")).transpose()?.flatten();
        if internvl {
            let ratio = cfg.opt_f64("downsample_ratio")?.unwrap_or(0.5);
            let scale = (1.0 / ratio).round() as usize;
            if !(1..=64).contains(&scale) || (1.0 / ratio - scale as f64).abs() > 1e-6 {
                return Err(Error::config(
                    "downsample_ratio",
                    format!("{ratio}: 1 / ratio must be a whole number from 1 to 64 (the shuffle's block side)"),
                ));
            }
            let skip = match cfg.opt_str("vision_feature_select_strategy")?.as_deref().unwrap_or("default") {
                "default" => 1,
                _ => 0,
            };
            let act = Activation::from_name(&cfg.opt_str("projector_hidden_act")?.unwrap_or_else(|| "gelu".into()))?;
            let ws = layouts::require(ws, layouts::LLAVA_HF_PROJECTOR, "layer_norm.weight")?;
            let wide = c * scale * scale;
            // nn.LayerNorm's default eps: the projector does not take vision_config.layer_norm_eps.
            let norm = LayerNorm::load(gpu, &ws.pp("layer_norm"), wide, 1e-5)?;
            let fc1 = Linear::load(gpu, &ws.pp("linear_1"), Some(wide), txt, Bias::Required)?;
            let fc2 = Linear::load(gpu, &ws.pp("linear_2"), Some(fc1.out_features), txt, Bias::Required)?;
            return Ok(PixelShuffleProjector {
                scale,
                skip,
                in_features: c,
                norm: Some(norm),
                fc1,
                fc2: Some((act, fc2)),
                input: "image_features",
            });
        }
        let scale = cfg.opt_usize("scale_factor")?.unwrap_or(2);
        if scale > 64 {
            return Err(Error::config("scale_factor", format!("{scale}: at most 64 is supported")));
        }
        let ws = layouts::require(ws, &["model.connector", "connector"], "modality_projection.proj.weight")?;
        let fc1 = Linear::load(gpu, &ws.pp("modality_projection.proj"), Some(c * scale * scale), txt, Bias::None)?;
        Ok(PixelShuffleProjector { scale, skip: 0, in_features: c, norm: None, fc1, fc2: None, input: "image_hidden_states" })
    }

    /// Block side k of the shuffle.
    pub fn scale(&self) -> usize {
        self.scale
    }

    /// Leading tokens dropped before the grid (InternVL's CLS with the `default` strategy).
    pub fn skip(&self) -> usize {
        self.skip
    }

    /// Vision width C.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Records the connector. x [B, skip + s², C] → [B, (s/k)², T]. Errors: [`Error::Shape`] for
    /// another width or a token count that is not a square grid the block side divides.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        x.expect_float(rec.gpu(), self.input)?;
        let side = match *x.shape() {
            [_, t, c] if c == self.in_features && t >= self.skip => ((t - self.skip) as f64).sqrt() as usize,
            _ => return Err(Error::shape(self.input, format!("[B, {} + s², {}]", self.skip, self.in_features), x.shape())),
        };
        if side * side + self.skip != x.shape()[1] || side % self.scale != 0 {
            let want = format!("[B, {} + s² with s a multiple of {}, {}]", self.skip, self.scale, self.in_features);
            return Err(Error::shape(self.input, want, x.shape()));
        }
        let mut h = record_space_to_depth(rec, x, self.skip, [side, side], self.scale, BlockOrder::PixelShuffle)?;
        if let Some(n) = &self.norm {
            h = n.forward(rec, &h)?;
        }
        match &self.fc2 {
            Some((act, fc2)) => {
                let h = self.fc1.forward(rec, &h, *act)?;
                fc2.forward(rec, &h, Activation::Identity)
            }
            None => self.fc1.forward(rec, &h, Activation::Identity),
        }
    }
}

impl Model for PixelShuffleProjector {
    fn inputs(&self) -> &'static [&'static str] {
        if self.norm.is_some() {
            &["image_features"]
        } else {
            &["image_hidden_states"]
        }
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        Ok(vec![("output", self.forward(rec, inputs.tensor(self.input)?)?)])
    }
    fn describe(&self) -> Vec<String> {
        let k = self.scale;
        let out = self.fc2.as_ref().map_or(self.fc1.out_features, |(_, l)| l.out_features);
        vec![format!(
            "pixel shuffle {k}×{k} ({} token(s) dropped first): s² tokens of width {} → (s/{k})² of width {}, then {} → {out}",
            self.skip,
            self.in_features,
            k * k * self.in_features,
            if self.norm.is_some() { "LayerNorm, Linear, act, Linear" } else { "Linear" }
        )]
    }
}
