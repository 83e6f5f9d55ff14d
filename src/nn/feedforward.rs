//! OpenFlamingo's pre-norm FeedForward: LayerNorm → Linear(D, mult·D) → GELU → Linear(mult·D, D),
//! no biases; the residual (optionally gated) is folded into the second GEMM's epilogue.

use crate::checkpoint::WeightSource;
use crate::kernels::Activation;
use crate::nn::{Bias, LayerNorm, Linear};
use crate::runtime::{Gpu, Recorder, Result, Tensor};

/// OpenFlamingo's `FeedForward(dim, mult)`: LayerNorm → Linear → GELU → Linear, no biases.
#[derive(Debug)]
pub struct FeedForward {
    /// The pre-norm.
    pub norm: LayerNorm,
    /// dim → mult·dim.
    pub up: Linear,
    /// mult·dim → dim.
    pub down: Linear,
}

impl FeedForward {
    /// `nn.Sequential(LayerNorm, Linear, GELU, Linear)` under `ws`: keys `0.*`, `1.weight` [mult·dim, dim],
    /// `3.weight` [dim, mult·dim] (OpenFlamingo's `FeedForward(dim, mult)`).
    pub fn load(gpu: &Gpu, ws: &WeightSource, dim: usize, mult: usize, eps: f32) -> Result<FeedForward> {
        let norm = LayerNorm::load(gpu, &ws.pp("0"), dim, eps)?;
        let up = Linear::load(gpu, &ws.pp("1"), Some(dim), Some(mult * dim), Bias::None)?;
        let down = Linear::load(gpu, &ws.pp("3"), Some(up.out_features), Some(dim), Bias::None)?;
        Ok(FeedForward { norm, up, down })
    }

    /// x + alpha · FF(x).
    pub fn forward_residual(&self, rec: &mut Recorder, x: &Tensor, alpha: f32) -> Result<Tensor> {
        let h = self.norm.forward(rec, x)?;
        let h = self.up.forward(rec, &h, Activation::Gelu)?;
        self.down.forward_residual(rec, &h, x, alpha)
    }
}
