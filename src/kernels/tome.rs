//! Token Merging (tome.wgsl): ToMe's bipartite soft matching and size-weighted merge, on the GPU.

use bytemuck::{Pod, Zeroable};

use super::registry::{TOME_MATCH, TOME_MERGE, TOME_RANK, TOME_SLOTS};
use super::{checked_u32, grid_1d};
use crate::runtime::{Cost, DType, Error, Recorder, Result, Tensor};

/// Mirrors `TomeParams` in tome.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct TomeParams {
    pub batch: u32,
    pub t: u32,
    pub t1: u32,
    pub t2: u32,
    pub r: u32,
    pub c: u32,
    pub cm: u32,
    pub class_token: u32,
}

/// The number of merges ToMe actually does: r capped at half the mergeable tokens.
pub fn effective_r(t: usize, r: usize, class_token: bool) -> usize {
    r.min(t.saturating_sub(class_token as usize) / 2)
}

/// Merges `r` tokens: x [b, t, C], metric [b, t, Cm], size [b, t, 1] → (x', size') with t − r'
/// rows, r' = min(r, mergeable / 2) as ToMe's `bipartite_soft_matching` clamps it. When r' is 0,
/// ToMe's `do_nothing` returns the tokens and sizes unchanged, and so does this (a copy).
pub fn record_tome(
    rec: &mut Recorder,
    x: &Tensor,
    metric: &Tensor,
    size: &Tensor,
    r: usize,
    class_token: bool,
) -> Result<(Tensor, Tensor)> {
    let gpu = rec.gpu();
    let (b, t, c) = match *x.shape() {
        [b, t, c] => (b, t, c), // an empty batch, no tokens or no channels: ToMe returns them as they are
        _ => return Err(Error::shape("tokens", "[b, t, C]", x.shape())),
    };
    // Cm = 0 ties every score: ToMe's argsort order is then arbitrary, so it is refused.
    let cm = match *metric.shape() {
        [mb, mt, cm] if mb == b && mt == t && cm > 0 => cm,
        _ => return Err(Error::shape("metric", format!("[{b}, {t}, Cm]"), metric.shape())),
    };
    size.expect_shape("size", &[b, t, 1])?;
    let r = effective_r(t, r, class_token);
    if r == 0 {
        let (out, out_size) = (Tensor::empty(gpu, x.shape(), x.dtype())?, Tensor::empty(gpu, size.shape(), size.dtype())?);
        super::elementwise::record_copy_rows(rec, x, 0, &out, 0, t)?;
        super::elementwise::record_copy_rows(rec, size, 0, &out_size, 0, t)?;
        return Ok((out, out_size));
    }
    if c == 0 {
        // No channels to merge, but the sizes still merge: run on one zero channel, keep the sizes.
        let zeros = Tensor::from_host(gpu, &vec![0.0; b * t], &[b, t, 1], x.dtype())?;
        let (_, out_size) = record_tome(rec, &zeros, metric, size, r, class_token)?;
        return Ok((Tensor::from_host(gpu, &[], &[b, t - r, 0], x.dtype())?, out_size));
    }
    let (t1, t2) = (t.div_ceil(2), t / 2);
    let rows = t - r;
    let info = Tensor::empty(gpu, &[b * t1 * 4], DType::U32)?;
    let slots = Tensor::empty(gpu, &[b * t1], DType::U32)?;
    let dtype = x.dtype();
    let out = Tensor::empty(gpu, &[b, rows, c], dtype)?;
    let out_size = Tensor::empty(gpu, &[b, rows, 1], dtype)?;
    let op = "tome";
    let params = TomeParams {
        batch: checked_u32(op, b)?,
        t: checked_u32(op, t)?,
        t1: checked_u32(op, t1)?,
        t2: checked_u32(op, t2)?,
        r: checked_u32(op, r)?,
        c: checked_u32(op, c)?,
        cm: checked_u32(op, cm)?,
        class_token: class_token as u32,
    };
    let per_a = [params.t1.div_ceil(64), params.batch, 1];
    let (b64, t1_64, e) = (b as u64, t1 as u64, dtype.size() as u64);
    let match_cost = Cost { flops: 2 * b64 * t1_64 * t2 as u64 * cm as u64, bytes: metric.byte_len() * (1 + t2 as u64) / 2 };
    rec.launch(&TOME_MATCH, dtype, &params, &[Some(metric), Some(&info)], per_a, match_cost)?;
    rec.launch(&TOME_RANK, dtype, &params, &[Some(&info)], per_a, Cost { flops: 0, bytes: 16 * b64 * t1_64 * t1_64 })?;
    rec.launch(&TOME_SLOTS, dtype, &params, &[Some(&info), Some(&slots)], per_a, Cost { flops: 0, bytes: 20 * b64 * t1_64 })?;
    let n = checked_u32(op, b * rows * c)?;
    let merge_cost = Cost { flops: 2 * (b * t * c) as u64, bytes: x.byte_len() + out.byte_len() + e * 2 * (b * t) as u64 };
    let tensors = [Some(x), Some(size), Some(&info), Some(&slots), Some(&out), Some(&out_size)];
    rec.launch(&TOME_MERGE, dtype, &params, &tensors, grid_1d(gpu, n.div_ceil(256)), merge_cost)?;
    Ok((out, out_size))
}

/// CPU reference, written after ToMe's `bipartite_soft_matching` + `merge_wavg` (f64; ties broken
/// by lower index, as the GPU does). Returns (x', size').
pub fn tome_cpu(
    x: &[f32],
    metric: &[f32],
    size: &[f32],
    b: usize,
    t: usize,
    c: usize,
    cm: usize,
    r: usize,
    class_token: bool,
) -> (Vec<f32>, Vec<f32>) {
    let r = effective_r(t, r, class_token);
    if r == 0 {
        return (x.to_vec(), size.to_vec()); // merge.py: `if r <= 0: return do_nothing, do_nothing`
    }
    let (t1, t2) = (t.div_ceil(2), t / 2);
    let rows = t - r;
    let (mut out, mut out_size) = (vec![0f32; b * rows * c], vec![0f32; b * rows]);
    for bi in 0..b {
        let m = |tok: usize| &metric[(bi * t + tok) * cm..(bi * t + tok + 1) * cm];
        let norm = |v: &[f32]| v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
        // 1. best B match of each A token
        let mut best: Vec<(f64, usize)> = (0..t1)
            .map(|i| {
                let a = m(2 * i);
                let mut bst = (f64::NEG_INFINITY, 0);
                for j in 0..t2 {
                    let bb = m(2 * j + 1);
                    let s = a.iter().zip(bb).map(|(p, q)| *p as f64 * *q as f64).sum::<f64>() / (norm(a) * norm(bb));
                    if j == 0 || s > bst.0 {
                        bst = (s, j);
                    }
                }
                bst
            })
            .collect();
        if class_token {
            best[0].0 = f64::NEG_INFINITY;
        }
        // 2. descending order of scores, stable
        let mut order: Vec<usize> = (0..t1).collect();
        order.sort_by(|&p, &q| best[q].0.partial_cmp(&best[p].0).unwrap_or(std::cmp::Ordering::Equal));
        let merged: Vec<usize> = order[..r].to_vec();
        let mut unmerged: Vec<usize> = order[r..].to_vec();
        if class_token {
            unmerged.sort();
        }
        // 3. rows: unmerged A tokens, then B tokens with their merged sources
        let row = |tok: usize| &x[(bi * t + tok) * c..(bi * t + tok + 1) * c];
        let sz = |tok: usize| size[bi * t + tok] as f64;
        let mut write = |o: usize, toks: &[usize]| {
            let s: f64 = toks.iter().map(|&k| sz(k)).sum();
            for ch in 0..c {
                let v: f64 = toks.iter().map(|&k| row(k)[ch] as f64 * sz(k)).sum();
                out[(bi * rows + o) * c + ch] = (v / s) as f32;
            }
            out_size[bi * rows + o] = s as f32;
        };
        for (o, &i) in unmerged.iter().enumerate() {
            write(o, &[2 * i]);
        }
        for j in 0..t2 {
            let mut toks = vec![2 * j + 1];
            toks.extend(merged.iter().filter(|&&i| best[i].1 == j).map(|&i| 2 * i));
            write(unmerged.len() + j, &toks);
        }
    }
    (out, out_size)
}
