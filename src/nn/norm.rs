//! `nn.LayerNorm` and RMSNorm over the last dimension.

use crate::checkpoint::WeightSource;
use crate::kernels::layernorm::{record_layernorm, record_rmsnorm};
use crate::runtime::{Gpu, Recorder, Result, Tensor};

/// `nn.LayerNorm(dim, eps)` over the last dimension.
#[derive(Debug)]
pub struct LayerNorm {
    /// Gamma `[dim]`.
    pub weight: Tensor,
    /// Beta `[dim]`.
    pub bias: Tensor,
    /// Epsilon.
    pub eps: f32,
    /// Normalised width.
    pub dim: usize,
}

impl LayerNorm {
    /// Loads `{prefix}.weight` and `{prefix}.bias`, both `[dim]`.
    pub fn load(gpu: &Gpu, ws: &WeightSource, dim: usize, eps: f32) -> Result<LayerNorm> {
        Ok(LayerNorm { weight: ws.get(gpu, "weight", &[dim])?, bias: ws.get(gpu, "bias", &[dim])?, eps, dim })
    }

    /// y = LayerNorm(x) · gamma + beta. x: [..., dim] → same shape.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        record_layernorm(rec, x, None, &self.weight, &self.bias, self.eps)
    }

    /// LayerNorm(x + res): BERT's post-norm residual.
    pub fn forward_residual(&self, rec: &mut Recorder, x: &Tensor, res: &Tensor) -> Result<Tensor> {
        record_layernorm(rec, x, Some(res), &self.weight, &self.bias, self.eps)
    }
}

/// RMSNorm over the last dimension: LlamaRMSNorm / IdeficsRMSNorm (`weight` only, no bias).
#[derive(Debug)]
pub struct RmsNorm {
    /// Gamma `[dim]`.
    pub weight: Tensor,
    /// Epsilon (`rms_norm_eps`).
    pub eps: f32,
    /// Normalised width.
    pub dim: usize,
}

impl RmsNorm {
    /// Loads `{prefix}.weight` `[dim]`.
    pub fn load(gpu: &Gpu, ws: &WeightSource, dim: usize, eps: f32) -> Result<RmsNorm> {
        Ok(RmsNorm { weight: ws.get(gpu, "weight", &[dim])?, eps, dim })
    }

    /// y = x · rsqrt(mean(x²) + eps) · gamma. x: [..., dim] → same shape.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        record_rmsnorm(rec, x, None, &self.weight, self.eps)
    }
}

/// Either norm, for blocks whose checkpoints choose (IDEFICS: LayerNorm q/k norms in the
/// Perceiver, RMSNorm ones in the gated layers).
#[derive(Debug)]
pub enum Norm {
    /// `nn.LayerNorm` (weight and bias).
    Layer(LayerNorm),
    /// RMSNorm (weight only).
    Rms(RmsNorm),
}

impl Norm {
    /// Normalised width.
    pub fn dim(&self) -> usize {
        match self {
            Norm::Layer(n) => n.dim,
            Norm::Rms(n) => n.dim,
        }
    }

    /// The norm over the last dimension. x: [..., dim] → same shape.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        match self {
            Norm::Layer(n) => n.forward(rec, x),
            Norm::Rms(n) => n.forward(rec, x),
        }
    }
}
