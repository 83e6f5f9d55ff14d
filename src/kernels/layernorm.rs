//! LayerNorm and RMSNorm over the last dimension (layernorm.wgsl), optionally on `x + res` (the
//! post-norm residual of BERT-style layers: `LayerNorm(dense(h) + input)`).

use bytemuck::{Pod, Zeroable};

use super::registry::{LAYERNORM, LAYERNORM_SG, RMSNORM, RMSNORM_SG};
use super::{checked_u32, grid_1d};
use crate::runtime::{Cost, Error, Recorder, Result, Tensor};

/// Mirrors `LnParams` in layernorm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct LnParams {
    pub rows: u32,
    pub cols: u32,
    pub has_res: u32,
    pub eps: f32,
}

/// y = LayerNorm(x (+ res)) · gamma + beta. x: `[..., C]`, gamma/beta: `[C]`.
pub fn record_layernorm(rec: &mut Recorder, x: &Tensor, res: Option<&Tensor>, gamma: &Tensor, beta: &Tensor, eps: f32) -> Result<Tensor> {
    record_norm(rec, x, res, gamma, Some(beta), eps, None)
}

/// y = z · rsqrt(mean(z²) + eps) · gamma with z = x (+ res): LlamaRMSNorm / IdeficsRMSNorm
/// (`models/idefics/modeling_idefics.py`). x: `[..., C]`, gamma: `[C]`.
pub fn record_rmsnorm(rec: &mut Recorder, x: &Tensor, res: Option<&Tensor>, gamma: &Tensor, eps: f32) -> Result<Tensor> {
    record_norm(rec, x, res, gamma, None, eps, None)
}

/// LayerNorm with `beta`, RMSNorm without. `subgroups`: the subgroup-reduction kernels
/// (`layernorm_sg` / `rmsnorm_sg`) or the workgroup ones; `None` takes the subgroup ones where the
/// adapter has SUBGROUP. Forcing `Some(true)` without it is an [`Error::Unsupported`] naming it.
pub fn record_norm(
    rec: &mut Recorder,
    x: &Tensor,
    res: Option<&Tensor>,
    gamma: &Tensor,
    beta: Option<&Tensor>,
    eps: f32,
    subgroups: Option<bool>,
) -> Result<Tensor> {
    let gpu = rec.gpu();
    let sg = subgroups.unwrap_or_else(|| gpu.features().contains(wgpu::Features::SUBGROUP));
    let (op, kernel) = match (beta.is_some(), sg) {
        (true, false) => ("layernorm", &LAYERNORM),
        (true, true) => ("layernorm", &LAYERNORM_SG),
        (false, false) => ("rmsnorm", &RMSNORM),
        (false, true) => ("rmsnorm", &RMSNORM_SG),
    };
    let cols = *x.shape().last().ok_or_else(|| Error::shape(format!("{op} input"), "[.., C]", x.shape()))?;
    gamma.expect_shape(&format!("{op} weight"), &[cols])?;
    if let Some(b) = beta {
        b.expect_shape("layernorm bias", &[cols])?;
    }
    if let Some(r) = res {
        r.expect_shape(&format!("{op} residual"), x.shape())?;
    }
    let rows = x.numel() / cols.max(1);
    let y = Tensor::empty(gpu, x.shape(), x.dtype())?;
    let params = LnParams { rows: checked_u32(op, rows)?, cols: checked_u32(op, cols)?, has_res: res.is_some() as u32, eps };
    let cost = Cost { flops: 8 * x.numel() as u64, bytes: (2 + res.is_some() as u64) * x.byte_len() };
    let tensors: Vec<Option<&Tensor>> = match beta {
        Some(b) => vec![Some(x), res, Some(gamma), Some(b), Some(&y)],
        None => vec![Some(x), res, Some(gamma), Some(&y)],
    };
    rec.launch(kernel, x.dtype(), &params, &tensors, grid_1d(gpu, params.rows), cost)?;
    Ok(y)
}

/// CPU reference for RMSNorm (f64 statistics). x, res: [rows, cols].
pub fn rmsnorm_cpu(x: &[f32], res: Option<&[f32]>, gamma: &[f32], cols: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for (r, row) in x.chunks(cols).enumerate() {
        let z: Vec<f64> = row.iter().enumerate().map(|(c, v)| *v as f64 + res.map(|s| s[r * cols + c] as f64).unwrap_or(0.0)).collect();
        let inv = 1.0 / (z.iter().map(|v| v * v).sum::<f64>() / cols as f64 + eps as f64).sqrt();
        for c in 0..cols {
            y[r * cols + c] = (z[c] * inv * gamma[c] as f64) as f32;
        }
    }
    y
}

/// CPU reference (f64 statistics). x, res: [rows, cols].
pub fn layernorm_cpu(x: &[f32], res: Option<&[f32]>, gamma: &[f32], beta: &[f32], cols: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0f32; x.len()];
    for (r, row) in x.chunks(cols).enumerate() {
        let z: Vec<f64> = row.iter().enumerate().map(|(c, v)| *v as f64 + res.map(|s| s[r * cols + c] as f64).unwrap_or(0.0)).collect();
        let mean = z.iter().sum::<f64>() / cols as f64;
        let var = z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / cols as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for c in 0..cols {
            y[r * cols + c] = ((z[c] - mean) * inv * gamma[c] as f64 + beta[c] as f64) as f32;
        }
    }
    y
}
