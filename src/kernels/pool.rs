//! Resampling of token grids (pool.wgsl): k×k pooling as `AvgPool2d` / `MaxPool2d(kernel=k, stride=k)`,
//! and bilinear resizing as `F.interpolate(mode="bilinear", align_corners=False)`.

use bytemuck::{Pod, Zeroable};

use super::registry::{PATCHIFY, POOL2D, RESIZE_BILINEAR, SPACE_TO_DEPTH};
use super::{checked_u32, grid_1d};
use crate::runtime::{Cost, Error, Recorder, Result, Tensor};

/// Mirrors `PoolParams` in pool.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct PoolParams {
    pub batch: u32,
    pub h: u32,
    pub w: u32,
    pub c: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub scale_h: f32,
    pub scale_w: f32,
    pub k: u32,
    pub mode: u32,
    pub skip: u32,
    pub rows_in: u32,
}

impl PoolParams {
    /// The geometry every entry reads, each checked to fit a u32.
    fn new(op: &str, b: usize, [h, w]: [usize; 2], c: usize, [oh, ow]: [usize; 2]) -> Result<PoolParams> {
        let u = |v: usize| checked_u32(op, v);
        Ok(PoolParams { batch: u(b)?, h: u(h)?, w: u(w)?, c: u(c)?, out_h: u(oh)?, out_w: u(ow)?, ..Default::default() })
    }
}

/// What a pooling window keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolMode {
    /// The mean (`AvgPool2d`; no padding, so the divisor is always k²).
    Average = 0,
    /// The maximum (`MaxPool2d`).
    Max = 1,
}

/// x [b, h·w, c] (row-major grid) pooled over k×k windows with stride k → [b, (h/k)·(w/k), c]
/// (floor, like `AvgPool2d` / `MaxPool2d(k, k)`). Errors: [`Error::Shape`] for x,
/// [`Error::Input`] for a grid smaller than one window (where torch raises too) or k = 0.
pub fn record_pool2d(rec: &mut Recorder, x: &Tensor, [h, w]: [usize; 2], k: usize, mode: PoolMode) -> Result<Tensor> {
    let gpu = rec.gpu();
    let (b, c) = grid_dims(x, [h, w])?;
    // AvgPool2d / MaxPool2d raise "Output size is too small" here.
    if k == 0 || h < k || w < k {
        return Err(Error::input("grid", format!("{h}×{w}: {k}×{k} pooling needs at least {k}×{k} tokens")));
    }
    let (oh, ow) = (h / k, w / k);
    let y = Tensor::empty(gpu, &[b, oh * ow, c], x.dtype())?;
    let op = "pool2d";
    let params = PoolParams { k: checked_u32(op, k)?, mode: mode as u32, ..PoolParams::new(op, b, [h, w], c, [oh, ow])? };
    let n = checked_u32(op, b * oh * ow * c)?;
    let cost = Cost { flops: (k * k) as u64 * n as u64, bytes: x.byte_len() + y.byte_len() };
    rec.launch(&POOL2D, x.dtype(), &params, &[Some(x), Some(&y)], grid_1d(gpu, n.div_ceil(256)), cost)?;
    Ok(y)
}

/// (b, C) of tokens [b, h·w, C], or an error naming the grid.
fn grid_dims(x: &Tensor, [h, w]: [usize; 2]) -> Result<(usize, usize)> {
    match *x.shape() {
        [b, t, c] if t == h * w => Ok((b, c)),
        _ => Err(Error::shape("tokens", format!("[b, {} (= {h}×{w} grid), C]", h * w), x.shape())),
    }
}

/// 2×2 average pooling: [`record_pool2d`] with k = 2. x [b, h·w, c] → [b, (h/2)·(w/2), c].
pub fn record_avg_pool2x2(rec: &mut Recorder, x: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    record_pool2d(rec, x, [h, w], 2, PoolMode::Average)
}

/// CPU reference for [`record_pool2d`] (f64 sums).
pub fn pool2d_cpu(x: &[f32], b: usize, [h, w]: [usize; 2], c: usize, k: usize, mode: PoolMode) -> Vec<f32> {
    let (oh, ow) = (h / k, w / k);
    let mut y = Vec::with_capacity(b * oh * ow * c);
    for bi in 0..b {
        for oy in 0..oh {
            for ox in 0..ow {
                for ch in 0..c {
                    let vals = (0..k * k).map(|i| x[((bi * h + k * oy + i / k) * w + k * ox + i % k) * c + ch] as f64);
                    y.push(match mode {
                        PoolMode::Average => (vals.sum::<f64>() / (k * k) as f64) as f32,
                        PoolMode::Max => vals.fold(f64::NEG_INFINITY, f64::max) as f32,
                    });
                }
            }
        }
    }
    y
}

/// CPU reference for 2×2 average pooling.
pub fn avg_pool2x2_cpu(x: &[f32], b: usize, h: usize, w: usize, c: usize) -> Vec<f32> {
    pool2d_cpu(x, b, [h, w], c, 2, PoolMode::Average)
}

/// Each grid of x [b, h·w, c] (row-major) resized to `[out_h, out_w]` as
/// `F.interpolate(mode="bilinear", align_corners=False)` does (LLaVA-OneVision's `apply_pooling`)
/// → [b, out_h·out_w, c]. Errors: [`Error::Shape`] for x, [`Error::Input`] for an empty grid or output.
pub fn record_resize_bilinear(rec: &mut Recorder, x: &Tensor, [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> Result<Tensor> {
    let gpu = rec.gpu();
    let (b, c) = grid_dims(x, [h, w])?;
    // F.interpolate raises "Input and output sizes should be greater than 0".
    if h == 0 || w == 0 || oh == 0 || ow == 0 {
        return Err(Error::input("grid", format!("resizing {h}×{w} to {oh}×{ow}: both need at least one token")));
    }
    let y = Tensor::empty(gpu, &[b, oh * ow, c], x.dtype())?;
    let op = "resize_bilinear";
    let params =
        PoolParams { scale_h: h as f32 / oh as f32, scale_w: w as f32 / ow as f32, ..PoolParams::new(op, b, [h, w], c, [oh, ow])? };
    let n = checked_u32(op, b * oh * ow * c)?;
    let cost = Cost { flops: 8 * n as u64, bytes: 4 * y.byte_len() + y.byte_len() };
    rec.launch(&RESIZE_BILINEAR, x.dtype(), &params, &[Some(x), Some(&y)], grid_1d(gpu, n.div_ceil(256)), cost)?;
    Ok(y)
}

/// PyTorch's `upsample_bilinear2d` taps along one axis (align_corners=False): output `o` of an axis
/// of `n` read with `scale` = in / out (f32, as PyTorch computes it) → (i1, i2, weight of i2).
/// An empty axis (n = 0, which the launchers refuse) gives index 0.
pub fn bilinear_taps(o: usize, scale: f32, n: usize) -> (usize, usize, f64) {
    let last = n.max(1) - 1;
    let s = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
    let i1 = (s as usize).min(last);
    (i1, i1 + (i1 < last) as usize, (s - i1 as f32) as f64)
}

/// CPU reference for `resize_bilinear` (f32 coordinates, f64 blend). x: [b, h·w, c].
pub fn resize_bilinear_cpu(x: &[f32], b: usize, [h, w]: [usize; 2], c: usize, [oh, ow]: [usize; 2]) -> Vec<f32> {
    let (sh, sw) = (h as f32 / oh as f32, w as f32 / ow as f32);
    let mut y = Vec::with_capacity(b * oh * ow * c);
    for bi in 0..b {
        let at = |yy: usize, xx: usize, ch: usize| x[((bi * h + yy) * w + xx) * c + ch] as f64;
        for oy in 0..oh {
            let (y1, y2, ly) = bilinear_taps(oy, sh, h);
            for ox in 0..ow {
                let (x1, x2, lx) = bilinear_taps(ox, sw, w);
                for ch in 0..c {
                    let top = (1.0 - lx) * at(y1, x1, ch) + lx * at(y1, x2, ch);
                    let bottom = (1.0 - lx) * at(y2, x1, ch) + lx * at(y2, x2, ch);
                    y.push(((1.0 - ly) * top + ly * bottom) as f32);
                }
            }
        }
    }
    y
}

/// How [`record_space_to_depth`] orders a block's channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockOrder {
    /// (dy·k + dx)·C + c: InternVL's and Idefics3's pixel shuffle.
    PixelShuffle = 0,
    /// c·k² + dy·k + dx: `F.unfold` (Pixtral's patch merger in Mistral 3).
    Unfold = 1,
}

/// Each k×k block of a row-major h×w token grid becomes one token of k²·C channels. x: [b, rows,
/// C] where the grid starts after `skip` tokens (a CLS token) → [b, (h/k)·(w/k), k²·C]. Errors:
/// [`Error::Shape`] when the grid does not fit in x's rows, [`Error::Input`] when k does not divide
/// h and w (transformers' views fail there too).
pub fn record_space_to_depth(
    rec: &mut Recorder,
    x: &Tensor,
    skip: usize,
    [h, w]: [usize; 2],
    k: usize,
    order: BlockOrder,
) -> Result<Tensor> {
    let gpu = rec.gpu();
    let (b, rows, c) = match *x.shape() {
        [b, r, c] if r >= skip + h * w => (b, r, c),
        _ => return Err(Error::shape("tokens", format!("[b, {} + {h}×{w} grid, C]", skip), x.shape())),
    };
    if k == 0 || h % k != 0 || w % k != 0 {
        return Err(Error::input("grid", format!("{h}×{w} does not split into {k}×{k} blocks")));
    }
    let (oh, ow) = (h / k, w / k);
    let y = Tensor::empty(gpu, &[b, oh * ow, k * k * c], x.dtype())?;
    let op = "space_to_depth";
    let params = PoolParams {
        k: checked_u32(op, k)?,
        mode: order as u32,
        skip: checked_u32(op, skip)?,
        rows_in: checked_u32(op, rows)?,
        ..PoolParams::new(op, b, [h, w], c, [oh, ow])?
    };
    let n = checked_u32(op, y.numel())?;
    let cost = Cost { flops: 0, bytes: 2 * y.byte_len() };
    rec.launch(&SPACE_TO_DEPTH, x.dtype(), &params, &[Some(x), Some(&y)], grid_1d(gpu, n.div_ceil(256)), cost)?;
    Ok(y)
}

/// CPU reference for [`record_space_to_depth`].
pub fn space_to_depth_cpu(
    x: &[f32],
    b: usize,
    rows: usize,
    skip: usize,
    [h, w]: [usize; 2],
    c: usize,
    k: usize,
    order: BlockOrder,
) -> Vec<f32> {
    let (oh, ow) = (h / k, w / k);
    let mut y = Vec::with_capacity(b * oh * ow * k * k * c);
    for bi in 0..b {
        for o in 0..oh * ow {
            for co in 0..k * k * c {
                let (ch, blk) = match order {
                    BlockOrder::PixelShuffle => (co % c, co / c),
                    BlockOrder::Unfold => (co / (k * k), co % (k * k)),
                };
                let (yy, xx) = (k * (o / ow) + blk / k, k * (o % ow) + blk % k);
                y.push(x[(bi * rows + skip + yy * w + xx) * c + ch]);
            }
        }
    }
    y
}

/// A vision tower's patch embedding input (`nn.Conv2d(kernel_size = stride = k)` as im2col):
/// pixel_values [B, C, H, W] → [B, ⌊H/k⌋·⌊W/k⌋, C·k·k], patches row-major, columns in the conv
/// weight's (c, dy, dx) order; pixels past the last whole patch are not read (SigLIP's 384 / 14).
/// Errors: [`Error::Shape`] naming `pixel_values` for another rank or a side below k.
pub fn record_patchify(rec: &mut Recorder, x: &Tensor, k: usize) -> Result<Tensor> {
    let gpu = rec.gpu();
    let (b, c, h, w) = match *x.shape() {
        [b, c, h, w] if k > 0 && h >= k && w >= k => (b, c, h, w),
        _ => return Err(Error::shape("pixel_values", format!("[B, C, H ≥ {k}, W ≥ {k}]"), x.shape())),
    };
    let (oh, ow) = (h / k, w / k);
    let y = Tensor::empty(gpu, &[b, oh * ow, c * k * k], x.dtype())?;
    let op = "patchify";
    let params = PoolParams { k: checked_u32(op, k)?, ..PoolParams::new(op, b, [h, w], c, [oh, ow])? };
    let n = checked_u32(op, y.numel())?;
    let cost = Cost { flops: 0, bytes: 2 * y.byte_len() };
    rec.launch(&PATCHIFY, x.dtype(), &params, &[Some(x), Some(&y)], grid_1d(gpu, n.div_ceil(256)), cost)?;
    Ok(y)
}

/// CPU reference for [`record_patchify`]. x: [b, c, h, w]; k = 0 gives nothing.
pub fn patchify_cpu(x: &[f32], [b, c, h, w]: [usize; 4], k: usize) -> Vec<f32> {
    let (oh, ow) = (h.checked_div(k).unwrap_or(0), w.checked_div(k).unwrap_or(0));
    let mut y = Vec::with_capacity(b * oh * ow * c * k * k);
    for bi in 0..b {
        for o in 0..oh * ow {
            for ch in 0..c {
                for dy in 0..k {
                    for dx in 0..k {
                        y.push(x[((bi * c + ch) * h + k * (o / ow) + dy) * w + k * (o % ow) + dx]);
                    }
                }
            }
        }
    }
    y
}
