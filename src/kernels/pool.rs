//! 2×2 average pooling of a token grid (pool.wgsl), as `AvgPool2d(kernel=2, stride=2)`.

use bytemuck::{Pod, Zeroable};

use super::registry::AVG_POOL2X2;
use super::{checked_u32, grid_1d};
use crate::runtime::{Cost, Error, Recorder, Result, Tensor};

/// Mirrors `PoolParams` in pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct PoolParams {
    pub batch: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
}

/// x [b, h·w, c] (row-major grid) → [b, (h/2)·(w/2), c].
pub fn record_avg_pool2x2(rec: &mut Recorder, x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let gpu = rec.gpu();
    let (b, c) = match *x.shape() {
        [b, t, c] if t == h * w => (b, c),
        _ => return Err(Error::shape("tokens", format!("[b, {} (= {h}×{w} grid), C]", h * w), x.shape())),
    };
    if h < 2 || w < 2 {
        return Err(Error::input("grid", format!("{h}×{w}: 2×2 pooling needs at least 2×2 tokens")));
    }
    let (oh, ow) = (h / 2, w / 2);
    let y = Tensor::empty(gpu, &[b, oh * ow, c], x.dtype())?;
    let op = "avg_pool2x2";
    let params = PoolParams { batch: checked_u32(op, b)?, h: checked_u32(op, h)?, w: checked_u32(op, w)?, c: checked_u32(op, c)? };
    let n = checked_u32(op, b * oh * ow * c)?;
    let cost = Cost { flops: 4 * n as u64, bytes: x.byte_len() + y.byte_len() };
    rec.launch(&AVG_POOL2X2, x.dtype(), &params, &[Some(x), Some(&y)], grid_1d(gpu, n.div_ceil(256)), cost)?;
    Ok(y)
}

/// CPU reference.
pub fn avg_pool2x2_cpu(x: &[f32], b: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    let (oh, ow) = (h / 2, w / 2);
    let mut y = vec![0f32; b * oh * ow * c];
    for bi in 0..b {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let at = |yy: usize, xx: usize| x[((bi * h + yy) * w + xx) * c + ch] as f64;
                    let s = at(2 * oy, 2 * ox) + at(2 * oy, 2 * ox + 1) + at(2 * oy + 1, 2 * ox) + at(2 * oy + 1, 2 * ox + 1);
                    y[((bi * oh + oy) * ow + ox) * c + ch] = (s / 4.0) as f32;
                }
            }
        }
    }
    y
}
