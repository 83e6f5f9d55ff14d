//! The LLaVA projector: Linear → act → Linear (HF `LlavaMultiModalProjector`), or original LLaVA's
//! `mm_projector` (`linear`, `mlp<N>x_gelu`, `identity`). Every patch becomes a token.

use std::path::Path;

use super::registry::{self, Inputs, Model, Named};
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::pool::{record_pool2d, PoolMode};
use crate::kernels::Activation;
use crate::nn::{Bias, Linear};
use crate::runtime::{DType, Error, Gpu, Recorder, Result, Tensor};

/// The LLaVA projector (transformers `LlavaMultiModalProjector`, `models/llava/modeling_llava.py`;
/// original LLaVA's `build_vision_projector`, `llava/model/multimodal_projector/builder.py`):
/// image_features [..., in_features] → [..., out_features].
#[derive(Debug)]
pub struct LlavaProjector {
    layers: Vec<Linear>,
    act: Activation,
    /// Vision feature width (`vision_config.hidden_size` × feature layers).
    pub in_features: usize,
    /// Language model width (`text_config.hidden_size`).
    pub out_features: usize,
}

/// Parses original LLaVA's `mm_projector_type`: number of Linear layers (GELU between them).
/// `build_vision_projector` matches `^mlp(\d+)x_gelu$` and builds `nn.Sequential` of one Linear
/// plus N − 1 more, so `mlp0x_gelu` is one Linear (at `.0`, not bare as `linear`'s); the
/// checkpoint's weights bound N.
fn original_depth(kind: &str) -> Result<usize> {
    match kind {
        "linear" => Ok(1),
        "identity" => Ok(0),
        _ => kind
            .strip_prefix("mlp")
            .and_then(|r| r.strip_suffix("x_gelu"))
            .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<usize>().ok())
            .map(|n| n.max(1))
            // build_vision_projector raises ValueError('Unknown projector type') for the rest.
            .ok_or_else(|| Error::UnknownProjectorType(kind.to_string())),
    }
}

impl LlavaProjector {
    /// Loads from a checkpoint folder (`config.json` + safetensors) whose `model_type` the model
    /// registry maps to a `LlavaProjector` (`llava`, `llava_llama`, `llava_mistral`, `llava_qwen`),
    /// or the projector of a `llava_next` / `llava_next_video` / `llava_onevision` one.
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<LlavaProjector> {
        Self::projector_of(registry::Connector::from_dir(gpu, dir)?)
    }

    /// Loads from a parsed config and weights; the registry picks the layout from `model_type`.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<LlavaProjector> {
        Self::projector_of(registry::Connector::load(gpu, cfg, Some(ws))?)
    }

    fn projector_of(c: registry::Connector) -> Result<LlavaProjector> {
        match c.entry().class {
            "LlavaNext" => Ok(c.into_model::<super::LlavaNext>()?.projector),
            "LlavaNextVideo" => Ok(c.into_model::<LlavaNextVideo>()?.projector),
            "LlavaOnevision" => Ok(c.into_model::<super::LlavaOnevision>()?.projector),
            _ => c.into_model(),
        }
    }

    /// HF layout (`multi_modal_projector.linear_{1,2}`), widths from `vision_config` /
    /// `text_config.hidden_size` when present (checked against the weights).
    pub fn load_hf(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<LlavaProjector> {
        let act = Activation::from_name(&cfg.opt_str("projector_hidden_act")?.unwrap_or_else(|| "gelu".into()))?;
        let bias = if cfg.opt_bool("multimodal_projector_bias")?.unwrap_or(true) { Bias::Required } else { Bias::None };
        let ws = layouts::require(ws, layouts::LLAVA_HF_PROJECTOR, "linear_1.weight")?;
        // Widths: from the sub-configs when present (checked against the weights), else the weights.
        let feature_layers = match cfg.raw("vision_feature_layer") {
            Some(serde_json::Value::Array(a)) => a.len().max(1),
            _ => 1,
        };
        let vis = cfg.sub("vision_config").map(|c| c.opt_usize("hidden_size")).transpose()?.flatten().map(|h| h * feature_layers);
        let txt = cfg.sub("text_config").map(|c| c.opt_usize("hidden_size")).transpose()?.flatten();
        let l1 = Linear::load(gpu, &ws.pp("linear_1"), vis, txt, bias)?;
        let l2 = Linear::load(gpu, &ws.pp("linear_2"), Some(l1.out_features), txt, bias)?;
        Ok(LlavaProjector { in_features: l1.in_features, out_features: l2.out_features, layers: vec![l1, l2], act })
    }

    /// Original LLaVA layout (`model.mm_projector`), depth from `mm_projector_type`.
    pub fn load_original(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<LlavaProjector> {
        let kind = cfg.opt_str("mm_projector_type")?.unwrap_or_else(|| "linear".into());
        let depth = original_depth(&kind)?;
        let vis = cfg.opt_usize("mm_hidden_size")?;
        let txt = cfg.opt_usize("hidden_size")?;
        if depth == 0 {
            // IdentityMap needs no width: 0 here means any width passes through.
            let w = vis.or(txt).unwrap_or(0);
            return Ok(LlavaProjector { layers: vec![], act: Activation::Identity, in_features: w, out_features: w });
        }
        // `linear` is a bare nn.Linear; every mlpNx_gelu an nn.Sequential (Linear i at index 2·i).
        let bare = kind == "linear";
        let probe = if bare { "weight" } else { "0.weight" };
        let root = layouts::require(ws, layouts::LLAVA_ORIGINAL_PROJECTOR, probe)?;
        let mut layers = Vec::new(); // grows as weights are found: `depth` comes from a string
        for i in 0..depth {
            let w = if bare { root.clone() } else { root.pp((2 * i).to_string()) };
            let in_f = if i == 0 { vis } else { Some(layers.last().map(|l: &Linear| l.out_features).unwrap_or(0)) };
            layers.push(Linear::load(gpu, &w, in_f, txt, Bias::Required)?);
        }
        Ok(LlavaProjector {
            in_features: layers[0].in_features,
            out_features: layers[depth - 1].out_features,
            layers,
            act: Activation::Gelu,
        })
    }

    /// Records the projector. x: [..., in_features] (any rank ≥ 1, as `nn.Linear` takes) →
    /// [..., out_features]; an empty batch gives an empty output. An identity projector of unknown
    /// width (`in_features` 0) passes any width through.
    /// Errors: [`crate::Error::Shape`] naming the input, [`crate::Error::OtherGpu`] /
    /// [`crate::Error::DType`] for a tensor of another `Gpu` or a U32 one.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        x.expect_float(rec.gpu(), "image_features")?;
        let w = *x.shape().last().unwrap_or(&0);
        let any_width = self.layers.is_empty() && self.in_features == 0;
        if x.rank() < 1 || (w != self.in_features && !any_width) {
            return Err(Error::shape("image_features", format!("[.., {}]", self.in_features), x.shape()));
        }
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            let act = if i + 1 < self.layers.len() { self.act } else { Activation::Identity };
            h = l.forward(rec, &h, act)?;
        }
        Ok(h)
    }

    /// The compute dtype (its weights'; F32 for an identity projector).
    pub fn dtype(&self) -> DType {
        self.layers.first().and_then(|l| l.parts.first()).map_or(DType::F32, |p| p.weight.dtype())
    }

    /// Uploads `x` in [`Self::dtype`], runs one forward (one submit) and reads the result back.
    pub fn run(&self, gpu: &Gpu, x: &[f32], shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
        let t = Tensor::from_host(gpu, x, shape, self.dtype())?;
        let mut rec = Recorder::new(gpu);
        let y = self.forward(&mut rec, &t)?;
        rec.submit()?;
        Ok((y.to_vec(gpu)?, y.shape().to_vec()))
    }

    /// The activation between the Linear layers.
    pub fn activation(&self) -> Activation {
        self.act
    }
    /// Number of Linear layers (0 for `identity`).
    pub fn depth(&self) -> usize {
        self.layers.len()
    }

    /// One line: the layers, widths and activation; one output token per input token.
    pub fn summary(&self) -> String {
        format!(
            "projector: {} Linear layer(s) {} → {} ({:?} between); one token out per feature token in",
            self.depth(),
            self.in_features,
            self.out_features,
            self.act
        )
    }
}

impl Model for LlavaProjector {
    fn inputs(&self) -> &'static [&'static str] {
        &["image_features"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let x = inputs.tensor("image_features")?;
        if !(2..=3).contains(&x.rank()) {
            return Err(Error::shape("image_features", format!("[B, N, {}] or [N, {}]", self.in_features, self.in_features), x.shape()));
        }
        Ok(vec![("output", self.forward(rec, x)?)])
    }
    fn describe(&self) -> Vec<String> {
        vec![self.summary()]
    }
}

/// LLaVA-NeXT-Video (`llava_next_video`; transformers `LlavaNextVideoPooler`,
/// models/llava_next_video/modeling_llava_next_video.py): each frame's side×side token grid
/// (side = ⌊√N⌋, from the features, as the pooler computes it) pooled over stride×stride windows
/// (`spatial_pool_mode` `average` or `max`), then the projector.
/// image_features [B, side², C] → [B, (side/stride)², C_text].
#[derive(Debug)]
pub struct LlavaNextVideo {
    /// `spatial_pool_mode`.
    pub mode: PoolMode,
    /// `spatial_pool_stride` (window and stride).
    pub stride: usize,
    /// The projector after it.
    pub projector: LlavaProjector,
}

impl LlavaNextVideo {
    /// Loads a `llava_next_video` checkpoint folder.
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<LlavaNextVideo> {
        registry::Connector::from_dir(gpu, dir)?.into_model()
    }

    /// `spatial_pool_mode` `average` (default) or `max`, `spatial_pool_stride` (default 2). The
    /// pooler's third mode, `conv` (a learned Conv2d), is not implemented: an [`Error::Config`].
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<LlavaNextVideo> {
        let mode = match cfg.opt_str("spatial_pool_mode")?.as_deref().unwrap_or("average") {
            "average" => PoolMode::Average,
            "max" => PoolMode::Max,
            other => {
                let why = match other {
                    "conv" => "the learned Conv2d pooler is not implemented (average and max are)".to_string(),
                    _ => "LlavaNextVideoPooler raises for it; expected average, max or conv".to_string(),
                };
                return Err(Error::config("spatial_pool_mode", format!("`{other}`: {why}")));
            }
        };
        let stride = cfg.opt_usize("spatial_pool_stride")?.unwrap_or(2);
        Ok(LlavaNextVideo { mode, stride, projector: LlavaProjector::load_hf(gpu, cfg, ws)? })
    }

    /// Records pooling then the projector. image_features [B, N = side², C_vis] →
    /// [B, (side/stride)², C_text]. Errors: [`Error::Shape`] when N is not a square (the pooler's
    /// `view(b, side, side, dim)` fails there too) or the grid is smaller than one window.
    pub fn forward(&self, rec: &mut Recorder, image_features: &Tensor) -> Result<Tensor> {
        let (n, side) = match *image_features.shape() {
            [_, n, _] => (n, (n as f64).sqrt() as usize),
            _ => return Err(Error::shape("image_features", "[frames, side², C]", image_features.shape())),
        };
        if side * side != n {
            return Err(Error::shape(
                "image_features",
                format!("[frames, a square token count, C] ({n} tokens is not one)"),
                image_features.shape(),
            ));
        }
        let pooled = record_pool2d(rec, image_features, [side, side], self.stride, self.mode)?;
        self.projector.forward(rec, &pooled)
    }
}

impl Model for LlavaNextVideo {
    fn inputs(&self) -> &'static [&'static str] {
        &["image_features"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        Ok(vec![("output", self.forward(rec, inputs.tensor("image_features")?)?)])
    }
    fn describe(&self) -> Vec<String> {
        let k = self.stride;
        vec![
            format!("{:?} pooling of each frame's side×side grid over {k}×{k} windows: side² → (side/{k})² tokens", self.mode),
            self.projector.summary(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::original_depth;
    #[test]
    fn projector_types() {
        assert_eq!(original_depth("linear").unwrap(), 1);
        assert_eq!(original_depth("mlp2x_gelu").unwrap(), 2);
        assert_eq!(original_depth("mlp3x_gelu").unwrap(), 3);
        assert_eq!(original_depth("mlp0x_gelu").unwrap(), 1);
        assert_eq!(original_depth("mlp40x_gelu").unwrap(), 40);
        assert!(original_depth("mlpx_gelu").is_err());
        assert!(original_depth("mlp-1x_gelu").is_err());
        assert!(original_depth("resampler").is_err());
    }
}
