//! The LLaVA projector: Linear → act → Linear (HF `LlavaMultiModalProjector`), or original LLaVA's
//! `mm_projector` (`linear`, `mlp<N>x_gelu`, `identity`). Every patch becomes a token.

use std::path::Path;

use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::Activation;
use crate::nn::{Bias, Linear};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

pub struct LlavaProjector {
    layers: Vec<Linear>,
    act: Activation,
    pub in_features: usize,
    pub out_features: usize,
}

/// Parses original LLaVA's `mm_projector_type`: number of Linear layers (GELU between them).
fn original_depth(kind: &str) -> Result<usize> {
    match kind {
        "linear" => Ok(1),
        "identity" => Ok(0),
        _ => kind
            .strip_prefix("mlp")
            .and_then(|r| r.strip_suffix("x_gelu"))
            .and_then(|n| n.parse::<usize>().ok())
            .filter(|n| (1..=16).contains(n))
            .ok_or_else(|| Error::UnknownProjectorType(kind.to_string())),
    }
}

impl LlavaProjector {
    /// Loads from a checkpoint folder (`config.json` + safetensors).
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<LlavaProjector> {
        let dir = dir.as_ref();
        let cfg = Config::from_file(dir.join("config.json"))?;
        let ws = WeightSource::open_dir(dir)?;
        Self::load(gpu, &cfg, &ws)
    }

    /// Loads from a parsed config and weights; `model_type` picks the layout.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<LlavaProjector> {
        let model_type = cfg.str("model_type")?;
        match model_type.as_str() {
            "llava" | "llava_next" | "llava_next_video" => Self::load_hf(gpu, cfg, ws),
            "llava_llama" | "llava_mistral" | "llava_qwen" => Self::load_original(gpu, cfg, ws),
            other => Err(Error::UnknownModelType(other.to_string())),
        }
    }

    fn load_hf(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<LlavaProjector> {
        let act = Activation::from_name(&cfg.opt_str("projector_hidden_act")?.unwrap_or_else(|| "gelu".into()))?;
        let bias = if cfg.opt_bool("multimodal_projector_bias")?.unwrap_or(true) { Bias::Required } else { Bias::None };
        let ws = layouts::find(ws, layouts::LLAVA_HF_PROJECTOR, "linear_1.weight").ok_or_else(|| Error::MissingWeight {
            name: layouts::tried(layouts::LLAVA_HF_PROJECTOR, "linear_1.weight"),
            location: ws.location().to_string(),
        })?;
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

    fn load_original(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<LlavaProjector> {
        let kind = cfg.opt_str("mm_projector_type")?.unwrap_or_else(|| "linear".into());
        let depth = original_depth(&kind)?;
        let vis = cfg.opt_usize("mm_hidden_size")?;
        let txt = cfg.opt_usize("hidden_size")?;
        if depth == 0 {
            let w = vis.or(txt).ok_or_else(|| Error::config("mm_hidden_size", "missing (needed for an identity projector)"))?;
            return Ok(LlavaProjector { layers: vec![], act: Activation::Identity, in_features: w, out_features: w });
        }
        let probe = if depth == 1 { "weight" } else { "0.weight" };
        let root = layouts::find(ws, layouts::LLAVA_ORIGINAL_PROJECTOR, probe).ok_or_else(|| Error::MissingWeight {
            name: layouts::tried(layouts::LLAVA_ORIGINAL_PROJECTOR, probe),
            location: ws.location().to_string(),
        })?;
        let mut layers = Vec::with_capacity(depth);
        for i in 0..depth {
            // nn.Sequential(Linear, GELU, Linear, GELU, ...): Linear i sits at index 2·i.
            let w = if depth == 1 { root.clone() } else { root.pp((2 * i).to_string()) };
            let in_f = if i == 0 { vis } else { Some(layers.last().map(|l: &Linear| l.out_features).unwrap_or(0)) };
            layers.push(Linear::load(gpu, &w, in_f, txt, Bias::Required)?);
        }
        Ok(LlavaProjector { in_features: layers[0].in_features, out_features: layers[depth - 1].out_features, layers, act: Activation::Gelu })
    }

    /// A two-layer GELU projector with random weights (demos and benchmarks).
    pub fn random(gpu: &Gpu, in_features: usize, out_features: usize, rng: &mut crate::util::Rng) -> Result<LlavaProjector> {
        let layers = vec![Linear::random(gpu, in_features, out_features, true, rng)?, Linear::random(gpu, out_features, out_features, true, rng)?];
        Ok(LlavaProjector { layers, act: Activation::Gelu, in_features, out_features })
    }

    /// Records the projector. x: [..., in_features] → [..., out_features].
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let w = *x.shape().last().unwrap_or(&0);
        if x.rank() < 2 || w != self.in_features {
            return Err(Error::shape("image_features", format!("[.., {}] (rank ≥ 2)", self.in_features), x.shape()));
        }
        let mut h = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            let act = if i + 1 < self.layers.len() { self.act } else { Activation::Identity };
            h = l.forward(rec, &h, act)?;
        }
        Ok(h)
    }

    /// Uploads `x`, runs one forward (one submit) and reads the result back.
    pub fn run(&self, gpu: &Gpu, x: &[f32], shape: &[usize]) -> Result<(Vec<f32>, Vec<usize>)> {
        let t = Tensor::from_slice(gpu, x, shape)?;
        let mut rec = Recorder::new(gpu);
        let y = self.forward(&mut rec, &t)?;
        rec.submit()?;
        Ok((y.to_vec(gpu)?, y.shape().to_vec()))
    }

    /// FLOPs of one forward over `rows` tokens.
    pub fn flops(&self, rows: usize) -> u64 {
        self.layers.iter().map(|l| l.flops_per_row() * rows as u64).sum()
    }

    pub fn activation(&self) -> Activation {
        self.act
    }
    pub fn depth(&self) -> usize {
        self.layers.len()
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
        assert!(original_depth("mlp0x_gelu").is_err());
        assert!(original_depth("resampler").is_err());
    }
}
