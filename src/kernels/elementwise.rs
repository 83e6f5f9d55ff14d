//! Small memory-bound kernels (elementwise.wgsl): activation, strided row copies, row adds.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, pipeline, Activation};
use crate::runtime::{DType, Error, Recorder, Result, Tensor};

/// Mirrors `EwParams` in elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct EwParams {
    pub n: u32,
    pub act: u32,
    pub rows: u32,
    pub cols: u32,
    pub batch: u32,
    pub src_batch: u32,
    pub src_rows: u32,
    pub src_off: u32,
    pub dst_rows: u32,
    pub dst_off: u32,
    pub div: u32,
    pub modulo: u32,
}

const WG: u32 = 256;

fn checked_u32(op: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Limit { op: op.into(), limit: "u32 element index".into(), requested: n as u64, max: u32::MAX as u64 })
}

/// y = act(x), any shape.
pub fn record_activation(rec: &mut Recorder, x: &Tensor, act: Activation) -> Result<Tensor> {
    let gpu = rec.gpu();
    let y = Tensor::empty(gpu, x.shape(), DType::F32)?;
    let n = checked_u32("activation", x.numel())?;
    let params = EwParams { n, act: act as u32, ..Default::default() };
    let pipe = pipeline(gpu, "activation", "elementwise.wgsl", "activation")?;
    rec.dispatch("activation", pipe, &params, &[x, &y], grid_1d(gpu, n.div_ceil(WG)))?;
    Ok(y)
}

/// Copies `rows` rows of `src` [src_batch, src_rows, cols] starting at `src_off` into
/// `dst` [batch, dst_rows, cols] at row `dst_off`, for every b < batch (src batch index b % src_batch).
pub fn record_copy_rows(rec: &mut Recorder, src: &Tensor, src_off: usize, dst: &Tensor, dst_off: usize, rows: usize) -> Result<()> {
    let gpu = rec.gpu();
    let [sb, sr, c] = three_d("copy_rows src", src)?;
    let [b, dr, dc] = three_d("copy_rows dst", dst)?;
    if dc != c || src_off + rows > sr || dst_off + rows > dr || sb == 0 || (b % sb != 0 && sb != 1) {
        return Err(Error::shape("copy_rows", format!("src {:?} rows {src_off}..{} into dst rows {dst_off}..", src.shape(), src_off + rows), dst.shape()));
    }
    let n = checked_u32("copy_rows", b * rows * c)?;
    let params = EwParams {
        n,
        rows: rows as u32,
        cols: c as u32,
        batch: b as u32,
        src_batch: sb as u32,
        src_rows: sr as u32,
        src_off: src_off as u32,
        dst_rows: dr as u32,
        dst_off: dst_off as u32,
        ..Default::default()
    };
    let pipe = pipeline(gpu, "copy_rows", "elementwise.wgsl", "copy_rows")?;
    rec.dispatch("copy_rows", pipe, &params, &[src, dst], grid_1d(gpu, n.div_ceil(WG)))
}

/// dst[r, c] += src[(r / div) % modulo, c] for dst viewed as [rows, cols], in place.
/// `src` holds at least `modulo` rows of `cols` (only the first `modulo` are read).
pub fn record_add_rows(rec: &mut Recorder, dst: &Tensor, src: &Tensor, div: usize, modulo: usize) -> Result<()> {
    let gpu = rec.gpu();
    let cols = *dst.shape().last().unwrap_or(&1);
    if cols == 0 || src.numel() < modulo * cols || !src.numel().is_multiple_of(cols) || div == 0 || modulo == 0 {
        return Err(Error::shape("add_rows src", format!("[{modulo}, {cols}]"), src.shape()));
    }
    let rows = dst.numel() / cols;
    let n = checked_u32("add_rows", rows * cols)?;
    let params = EwParams { n, rows: rows as u32, cols: cols as u32, div: div as u32, modulo: modulo as u32, ..Default::default() };
    let pipe = pipeline(gpu, "add_rows", "elementwise.wgsl", "add_rows")?;
    rec.dispatch("add_rows", pipe, &params, &[src, dst], grid_1d(gpu, n.div_ceil(WG)))
}

fn three_d(name: &str, t: &Tensor) -> Result<[usize; 3]> {
    match *t.shape() {
        [b, r, c] => Ok([b, r, c]),
        _ => Err(Error::shape(name, "[batch, rows, cols]", t.shape())),
    }
}

/// CPU reference for `add_rows`.
pub fn add_rows_cpu(dst: &mut [f32], src: &[f32], cols: usize, div: usize, modulo: usize) {
    for (i, v) in dst.iter_mut().enumerate() {
        let (r, c) = (i / cols, i % cols);
        *v += src[((r / div) % modulo) * cols + c];
    }
}

/// CPU reference for `copy_rows`.
pub fn copy_rows_cpu(src: &[f32], src_shape: [usize; 3], src_off: usize, dst: &mut [f32], dst_shape: [usize; 3], dst_off: usize, rows: usize) {
    let [sb, sr, c] = src_shape;
    let [b, dr, _] = dst_shape;
    for bi in 0..b {
        for r in 0..rows {
            for ci in 0..c {
                dst[(bi * dr + dst_off + r) * c + ci] = src[((bi % sb) * sr + src_off + r) * c + ci];
            }
        }
    }
}
