//! `nn.LayerNorm` over the last dimension.

use crate::checkpoint::WeightSource;
use crate::kernels::layernorm::record_layernorm;
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
