//! 2×2 average pooling of a token grid (pool.wgsl), as `AvgPool2d(kernel=2, stride=2)`.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, pipeline};
use crate::runtime::{DType, Error, Recorder, Result, Tensor};

/// Mirrors `PoolParams` in pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct PoolParams {
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
    let y = Tensor::empty(gpu, &[b, oh * ow, c], DType::F32)?;
    let params = PoolParams { batch: b as u32, h: h as u32, w: w as u32, c: c as u32 };
    let pipe = pipeline(gpu, "avg_pool2x2", "pool.wgsl", "avg_pool2x2")?;
    let n = (b * oh * ow * c) as u32;
    rec.dispatch("avg_pool2x2", pipe, &params, &[x, &y], grid_1d(gpu, n.div_ceil(256)))?;
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
