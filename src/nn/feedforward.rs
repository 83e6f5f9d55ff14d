//! Feed-forward blocks. OpenFlamingo's pre-norm `FeedForward`: LayerNorm → Linear(D, mult·D) →
//! GELU → Linear(mult·D, D), no biases (IDEFICS's Perceiver MLP is the same with ReLU); and
//! LlamaMLP / IdeficsMLP: down(act(gate(x)) · up(x)), gate and up stacked into one GEMM. The
//! residual (optionally gated) is folded into the last GEMM's epilogue.

use crate::checkpoint::WeightSource;
use crate::kernels::elementwise::{record_copy_rows, record_gated_activation_rows};
use crate::kernels::Activation;
use crate::nn::{Bias, LayerNorm, Linear};
use crate::runtime::{Gpu, Recorder, Result, Tensor};

/// OpenFlamingo's `FeedForward(dim, mult)`: LayerNorm → Linear → GELU → Linear, no biases.
#[derive(Debug)]
pub struct FeedForward {
    /// The pre-norm.
    pub norm: LayerNorm,
    /// dim → hidden.
    pub up: Linear,
    /// hidden → dim.
    pub down: Linear,
    /// Between the two Linears.
    pub act: Activation,
}

impl FeedForward {
    /// `nn.Sequential(LayerNorm, Linear, GELU, Linear)` under `ws`: keys `0.*`, `1.weight` [mult·dim, dim],
    /// `3.weight` [dim, mult·dim] (OpenFlamingo's `FeedForward(dim, mult)`).
    pub fn load(gpu: &Gpu, ws: &WeightSource, dim: usize, mult: usize, eps: f32) -> Result<FeedForward> {
        Self::load_parts(gpu, [&ws.pp("0"), &ws.pp("1"), &ws.pp("3")], dim, mult * dim, Activation::Gelu, eps)
    }

    /// The same block under other names: `[norm, up, down]` prefixes, hidden width `hidden`
    /// (IdeficsMLP of the Perceiver: `ln`, `fc`, `c_proj`, ReLU).
    pub fn load_parts(
        gpu: &Gpu,
        [norm, up, down]: [&WeightSource; 3],
        dim: usize,
        hidden: usize,
        act: Activation,
        eps: f32,
    ) -> Result<FeedForward> {
        let norm = LayerNorm::load(gpu, norm, dim, eps)?;
        let up = Linear::load(gpu, up, Some(dim), Some(hidden), Bias::None)?;
        let down = Linear::load(gpu, down, Some(hidden), Some(dim), Bias::None)?;
        Ok(FeedForward { norm, up, down, act })
    }

    /// x + alpha · FF(x).
    pub fn forward_residual(&self, rec: &mut Recorder, x: &Tensor, alpha: f32) -> Result<Tensor> {
        let h = self.norm.forward(rec, x)?;
        let h = self.up.forward(rec, &h, self.act)?;
        self.down.forward_residual(rec, &h, x, alpha)
    }
}

/// LlamaMLP / IdeficsMLP (`models/idefics/modeling_idefics.py`): down_proj(act(gate_proj(x)) ·
/// up_proj(x)), no biases. gate and up are one stacked GEMM [2·hidden, dim].
#[derive(Debug)]
pub struct GatedFeedForward {
    /// [gate; up] stacked: dim → 2·hidden.
    pub gate_up: Linear,
    /// hidden → dim.
    pub down: Linear,
    /// Applied to the gate half (`hidden_act`).
    pub act: Activation,
}

impl GatedFeedForward {
    /// Loads `gate_proj`, `up_proj` ([hidden, dim]) and `down_proj` ([dim, hidden]) under `ws`.
    /// `down` replaces `down_proj` when given (weights computed at load, e.g. with a gate folded in).
    pub fn load(
        gpu: &Gpu,
        ws: &WeightSource,
        dim: usize,
        hidden: usize,
        act: Activation,
        down: Option<Linear>,
    ) -> Result<GatedFeedForward> {
        let gate_up = Linear::stack(gpu, &[&ws.pp("gate_proj"), &ws.pp("up_proj")], dim, hidden, Bias::None)?;
        let down = match down {
            Some(d) => d,
            None => Linear::load(gpu, &ws.pp("down_proj"), Some(hidden), Some(dim), Bias::None)?,
        };
        Ok(GatedFeedForward { gate_up, down, act })
    }

    /// MLP(x) without a residual (Idefics2's modality projection, whose output width differs).
    /// x [..., dim] → [..., down's out_features]. Where the [rows, 2·hidden] intermediate would pass
    /// the device's storage-binding size (Idefics2-8B: 4900 patches × 28672 at 980 px), the rows go
    /// through in blocks that fit, each copied in and out (`copy_rows`), in the same recording.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor) -> Result<Tensor> {
        let gpu = rec.gpu();
        let (dim, out_f) = (self.gate_up.in_features, self.down.out_features);
        let rows = x.numel().checked_div(dim).unwrap_or(0);
        let row_bytes = (self.gate_up.out_features * x.dtype().size()).max(1) as u64;
        let per = (gpu.limits().max_storage_buffer_binding_size / row_bytes).max(1) as usize;
        if rows <= per || x.shape().last() != Some(&dim) {
            let h = self.gate_up.forward(rec, x, Activation::Identity)?;
            let h = record_gated_activation_rows(rec, &h, self.act, None)?;
            return self.down.forward(rec, &h, Activation::Identity);
        }
        let flat = x.reshape(&[1, rows, dim])?;
        let y = Tensor::empty(gpu, &[1, rows, out_f], x.dtype())?;
        for start in (0..rows).step_by(per) {
            let n = per.min(rows - start);
            let block = Tensor::empty(gpu, &[1, n, dim], x.dtype())?;
            record_copy_rows(rec, &flat, start, &block, 0, n)?;
            let h = self.gate_up.forward(rec, &block, Activation::Identity)?;
            let h = record_gated_activation_rows(rec, &h, self.act, None)?;
            let out = self.down.forward(rec, &h, Activation::Identity)?;
            record_copy_rows(rec, &out, 0, &y, start, n)?;
        }
        let mut shape = x.shape().to_vec();
        *shape.last_mut().expect("rank ≥ 1: checked above") = out_f;
        y.reshape(&shape)
    }

    /// res + alpha · MLP(x). x, res: [..., dim].
    pub fn forward_residual(&self, rec: &mut Recorder, x: &Tensor, res: &Tensor, alpha: f32) -> Result<Tensor> {
        self.forward_residual_rows(rec, x, res, alpha, None)
    }

    /// `res + alpha · row_scale[r] · MLP(x)[r]`: the scale multiplies the rows of act(gate) · up,
    /// which is the same because this block's `down_proj` never has a bias (Mllama's
    /// `full_text_row_masked_out_mask`).
    /// row_scale: [rows of x flattened to 2-D].
    pub fn forward_residual_rows(
        &self,
        rec: &mut Recorder,
        x: &Tensor,
        res: &Tensor,
        alpha: f32,
        row_scale: Option<&Tensor>,
    ) -> Result<Tensor> {
        let h = self.gate_up.forward(rec, x, Activation::Identity)?;
        let h = record_gated_activation_rows(rec, &h, self.act, row_scale)?;
        self.down.forward_residual(rec, &h, res, alpha)
    }
}
