//! `nn.LayerNorm` over the last dimension.

use crate::checkpoint::WeightSource;
use crate::kernels::layernorm::record_layernorm;
use crate::runtime::{Gpu, Recorder, Result, Tensor};

#[derive(Debug)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f32,
    pub dim: usize,
}

impl LayerNorm {
    /// Loads `{prefix}.weight` and `{prefix}.bias`, both [dim].
    pub fn load(gpu: &Gpu, ws: &WeightSource, dim: usize, eps: f32) -> Result<LayerNorm> {
        Ok(LayerNorm { weight: ws.get(gpu, "weight", &[dim])?, bias: ws.get(gpu, "bias", &[dim])?, eps, dim })
    }

    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        record_layernorm(rec, x, None, &self.weight, &self.bias, self.eps)
    }

    /// LayerNorm(x + res): BERT's post-norm residual.
    pub fn forward_residual(&self, rec: &mut Recorder, x: &Tensor, res: &Tensor) -> Result<Tensor> {
        record_layernorm(rec, x, Some(res), &self.weight, &self.bias, self.eps)
    }
}
