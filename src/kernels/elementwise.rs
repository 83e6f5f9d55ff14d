//! Small memory-bound kernels (elementwise.wgsl): activation, gated activation, strided row copies,
//! row adds, row gathers.

use bytemuck::{Pod, Zeroable};

use super::registry::{ACTIVATION, ADD_ROWS, COPY_ROWS, GATED_ACTIVATION, GATHER_ROWS};
use super::{checked_u32, grid_1d, Activation};
use crate::runtime::{Cost, Error, Recorder, Result, Tensor};

/// Mirrors `EwParams` in elementwise.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct EwParams {
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

/// y = act(x), any shape.
pub fn record_activation(rec: &mut Recorder, x: &Tensor, act: Activation) -> Result<Tensor> {
    let gpu = rec.gpu();
    let y = Tensor::empty(gpu, x.shape(), x.dtype())?;
    let n = checked_u32("activation", x.numel())?;
    let params = EwParams { n, act: act as u32, ..Default::default() };
    let cost = Cost { flops: 8 * n as u64, bytes: 2 * x.byte_len() };
    rec.launch(&ACTIVATION, x.dtype(), &params, &[Some(x), Some(&y)], grid_1d(gpu, n.div_ceil(WG)), cost)?;
    Ok(y)
}

/// LlamaMLP's `act(gate) · up` on a stacked [gate | up] GEMM output: x [..., 2·C] → [..., C] with
/// y[r, c] = act(x[r, c]) · x[r, C + c]. An odd last dimension is an [`Error::Shape`].
pub fn record_gated_activation(rec: &mut Recorder, x: &Tensor, act: Activation) -> Result<Tensor> {
    record_gated_activation_rows(rec, x, act, None)
}

/// [`record_gated_activation`] with every row r scaled by `row_scale[r]` (`[rows]`, the rows of x
/// flattened to 2-D): Mllama's `full_text_row_masked_out_mask` on its MLP branch. Errors:
/// [`Error::Shape`] naming `row_scale` for another length.
pub fn record_gated_activation_rows(rec: &mut Recorder, x: &Tensor, act: Activation, row_scale: Option<&Tensor>) -> Result<Tensor> {
    let gpu = rec.gpu();
    let shape = x.shape();
    let cols = match shape.last() {
        Some(&w) if w % 2 == 0 => w / 2,
        _ => return Err(Error::shape("gated_activation input", "[.., 2·C] (gate and up stacked)", shape)),
    };
    let mut out_shape = shape.to_vec();
    *out_shape.last_mut().expect("checked above") = cols;
    let y = Tensor::empty(gpu, &out_shape, x.dtype())?;
    let op = "gated_activation";
    let n = checked_u32(op, y.numel())?;
    let rows = y.numel().checked_div(cols).unwrap_or(0);
    if let Some(s) = row_scale {
        s.expect_shape("row_scale", &[rows])?;
    }
    // `rows` ≠ 0 tells the kernel the row scale is bound (with no rows there is nothing to scale).
    let rows_flag = if row_scale.is_some() { checked_u32(op, rows)? } else { 0 };
    let params = EwParams { n, act: act as u32, cols: checked_u32(op, cols)?, rows: rows_flag, ..Default::default() };
    let cost = Cost { flops: 10 * n as u64, bytes: x.byte_len() + y.byte_len() };
    let tensors = [Some(x), Some(&y), row_scale];
    rec.launch(&GATED_ACTIVATION, x.dtype(), &params, &tensors, grid_1d(gpu, n.div_ceil(WG)), cost)?;
    Ok(y)
}

/// CPU reference for `gated_activation` (f64 activation). x: rows of 2·cols.
pub fn gated_activation_cpu(x: &[f32], cols: usize, act: Activation) -> Vec<f32> {
    x.chunks(2 * cols).flat_map(|r| (0..cols).map(move |c| (act.apply(r[c] as f64) * r[cols + c] as f64) as f32)).collect()
}

/// Copies `rows` rows of `src` [src_batch, src_rows, cols] starting at `src_off` into
/// `dst` [batch, dst_rows, cols] at row `dst_off`, for every b < batch (src batch index b % src_batch).
pub fn record_copy_rows(rec: &mut Recorder, src: &Tensor, src_off: usize, dst: &Tensor, dst_off: usize, rows: usize) -> Result<()> {
    let gpu = rec.gpu();
    let [sb, sr, c] = three_d("copy_rows src", src)?;
    let [b, dr, dc] = three_d("copy_rows dst", dst)?;
    let broadcasts = if sb == 0 { b == 0 } else { sb == 1 || b.is_multiple_of(sb) };
    if dc != c || src_off + rows > sr || dst_off + rows > dr || !broadcasts {
        return Err(Error::shape(
            "copy_rows",
            format!("src {:?} rows {src_off}..{} into dst rows {dst_off}..", src.shape(), src_off + rows),
            dst.shape(),
        ));
    }
    let op = "copy_rows";
    let n = checked_u32(op, b * rows * c)?;
    let params = EwParams {
        n,
        rows: checked_u32(op, rows)?,
        cols: checked_u32(op, c)?,
        batch: checked_u32(op, b)?,
        src_batch: checked_u32(op, sb)?,
        src_rows: checked_u32(op, sr)?,
        src_off: checked_u32(op, src_off)?,
        dst_rows: checked_u32(op, dr)?,
        dst_off: checked_u32(op, dst_off)?,
        ..Default::default()
    };
    let cost = Cost { flops: 0, bytes: 2 * n as u64 * src.dtype().size() as u64 };
    rec.launch(&COPY_ROWS, src.dtype(), &params, &[Some(src), Some(dst)], grid_1d(gpu, n.div_ceil(WG)), cost)
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
    let op = "add_rows";
    let n = checked_u32(op, rows * cols)?;
    let params = EwParams {
        n,
        rows: checked_u32(op, rows)?,
        cols: checked_u32(op, cols)?,
        div: checked_u32(op, div)?,
        modulo: checked_u32(op, modulo)?,
        ..Default::default()
    };
    let cost = Cost { flops: n as u64, bytes: 3 * dst.byte_len() };
    rec.launch(&ADD_ROWS, dst.dtype(), &params, &[Some(src), Some(dst)], grid_1d(gpu, n.div_ceil(WG)), cost)
}

/// `nn.Embedding`: rows of `table` [V, C] picked by `ids` (host integers, each in 0..V, else an
/// [`Error::Input`] naming `name` and the bad id) → [ids.len(), C].
pub fn record_gather_rows(rec: &mut Recorder, table: &Tensor, ids: &[i64], name: &str) -> Result<Tensor> {
    let gpu = rec.gpu();
    let (v, c) = match *table.shape() {
        [v, c] if v > 0 => (v, c),
        _ => return Err(Error::shape("embedding table", "[vocab, C]", table.shape())),
    };
    if let Some((i, id)) = ids.iter().enumerate().find(|(_, &id)| id < 0 || id as u64 >= v as u64) {
        // nn.Embedding raises IndexError for these too.
        return Err(Error::input(name, format!("id {id} at position {i} is outside the table's {v} rows")));
    }
    let idx: Vec<u32> = ids.iter().map(|&id| id as u32).collect();
    let ids_t = Tensor::from_u32(gpu, &idx, &[idx.len()])?;
    let y = Tensor::empty(gpu, &[ids.len(), c], table.dtype())?;
    let op = "gather_rows";
    let n = checked_u32(op, ids.len() * c)?;
    let params =
        EwParams { n, rows: checked_u32(op, ids.len())?, cols: checked_u32(op, c)?, src_rows: checked_u32(op, v)?, ..Default::default() };
    let cost = Cost { flops: 0, bytes: 2 * y.byte_len() + 4 * ids.len() as u64 };
    rec.launch(&GATHER_ROWS, table.dtype(), &params, &[Some(table), Some(&y), Some(&ids_t)], grid_1d(gpu, n.div_ceil(WG)), cost)?;
    Ok(y)
}

/// CPU reference for `gather_rows`.
pub fn gather_rows_cpu(table: &[f32], cols: usize, ids: &[usize]) -> Vec<f32> {
    ids.iter().flat_map(|&id| table[id * cols..(id + 1) * cols].iter().copied()).collect()
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
pub fn copy_rows_cpu(
    src: &[f32],
    src_shape: [usize; 3],
    src_off: usize,
    dst: &mut [f32],
    dst_shape: [usize; 3],
    dst_off: usize,
    rows: usize,
) {
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
