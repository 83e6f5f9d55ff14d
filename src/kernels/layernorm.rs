//! LayerNorm over the last dimension, optionally on `x + res` (the post-norm residual of BERT-style
//! layers: `LayerNorm(dense(h) + input)`).

use bytemuck::{Pod, Zeroable};

use super::registry::LAYERNORM;
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
    let gpu = rec.gpu();
    let cols = *x.shape().last().ok_or_else(|| Error::shape("layernorm input", "[.., C]", x.shape()))?;
    gamma.expect_shape("layernorm weight", &[cols])?;
    beta.expect_shape("layernorm bias", &[cols])?;
    if let Some(r) = res {
        r.expect_shape("layernorm residual", x.shape())?;
    }
    let rows = x.numel() / cols.max(1);
    let y = Tensor::empty(gpu, x.shape(), x.dtype())?;
    let params =
        LnParams { rows: checked_u32("layernorm", rows)?, cols: checked_u32("layernorm", cols)?, has_res: res.is_some() as u32, eps };
    let cost = Cost { flops: 8 * x.numel() as u64, bytes: (2 + res.is_some() as u64) * x.byte_len() };
    rec.launch(&LAYERNORM, x.dtype(), &params, &[Some(x), res, Some(gamma), Some(beta), Some(&y)], grid_1d(gpu, params.rows), cost)?;
    Ok(y)
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
