//! Token Merging (tome.wgsl): ToMe's bipartite soft matching and size-weighted merge, on the GPU.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, pipeline};
use crate::runtime::{DType, Error, Recorder, Result, Tensor};

/// Mirrors `TomeParams` in tome.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct TomeParams {
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

/// Merges `r` tokens: x [b, t, C], metric [b, t, Cm], size [b, t, 1] → (x', size') with t − r rows.
/// r above ToMe's cap (half the mergeable tokens) is capped as ToMe does; r above the number of
/// mergeable tokens is an error.
pub fn record_tome(rec: &mut Recorder, x: &Tensor, metric: &Tensor, size: &Tensor, r: usize, class_token: bool) -> Result<(Tensor, Tensor)> {
    let gpu = rec.gpu();
    let (b, t, c) = match *x.shape() {
        [b, t, c] if b * t * c > 0 => (b, t, c),
        _ => return Err(Error::shape("tokens", "[b, t, C]", x.shape())),
    };
    let cm = match *metric.shape() {
        [mb, mt, cm] if mb == b && mt == t && cm > 0 => cm,
        _ => return Err(Error::shape("metric", format!("[{b}, {t}, Cm]"), metric.shape())),
    };
    size.expect_shape("size", &[b, t, 1])?;
    let mergeable = t - class_token as usize;
    if r > mergeable {
        return Err(Error::input("r", format!("{r} merges asked of {mergeable} mergeable tokens (ToMe merges at most {})", mergeable / 2)));
    }
    let r = effective_r(t, r, class_token);
    let (t1, t2) = (t.div_ceil(2), t / 2);
    let rows = t - r;
    let info = Tensor::empty(gpu, &[b * t1 * 4], DType::U32)?;
    let slots = Tensor::empty(gpu, &[b * t1], DType::U32)?;
    let out = Tensor::empty(gpu, &[b, rows, c], DType::F32)?;
    let out_size = Tensor::empty(gpu, &[b, rows, 1], DType::F32)?;
    let params = TomeParams { batch: b as u32, t: t as u32, t1: t1 as u32, t2: t2 as u32, r: r as u32, c: c as u32, cm: cm as u32, class_token: class_token as u32 };
    let per_a = [(t1 as u32).div_ceil(64), b as u32, 1];
    let pipe = pipeline(gpu, "tome_match", "tome.wgsl", "tome_match")?;
    rec.dispatch_bound("tome_match", pipe, &params, &[(1, metric), (4, &info)], per_a)?;
    let pipe = pipeline(gpu, "tome_rank", "tome.wgsl", "tome_rank")?;
    rec.dispatch_bound("tome_rank", pipe, &params, &[(4, &info)], per_a)?;
    let pipe = pipeline(gpu, "tome_slots", "tome.wgsl", "tome_slots")?;
    rec.dispatch_bound("tome_slots", pipe, &params, &[(4, &info), (5, &slots)], per_a)?;
    let pipe = pipeline(gpu, "tome_merge", "tome.wgsl", "tome_merge")?;
    let n = (b * rows * c) as u32;
    rec.dispatch_bound("tome_merge", pipe, &params, &[(2, x), (3, size), (4, &info), (5, &slots), (6, &out), (7, &out_size)], grid_1d(gpu, n.div_ceil(256)))?;
    Ok((out, out_size))
}

/// CPU reference, written after ToMe's `bipartite_soft_matching` + `merge_wavg` (f64; ties broken
/// by lower index, as the GPU does). Returns (x', size').
pub fn tome_cpu(x: &[f32], metric: &[f32], size: &[f32], b: usize, t: usize, c: usize, cm: usize, r: usize, class_token: bool) -> (Vec<f32>, Vec<f32>) {
    let r = effective_r(t, r, class_token);
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
