//! Fused multi-head attention (attention.wgsl) and Flamingo's media ranges (media_mask.wgsl).

use bytemuck::{Pod, Zeroable};

use super::registry::{self, Kernel};
use super::{checked_u32, choose, Variant};
use crate::runtime::{Cost, DType, Error, Recorder, Result, Tensor};

/// Largest head dimension the kernel keeps in registers.
pub const MAX_HEAD_DIM: usize = 128;

/// Mirrors `AttnParams` in attention.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct AttnParams {
    pub lq: u32,
    pub lk: u32,
    pub heads: u32,
    pub d: u32,
    pub q_stride: u32,
    pub q_off: u32,
    pub k_stride: u32,
    pub k_off: u32,
    pub v_stride: u32,
    pub v_off: u32,
    pub has_mask: u32,
    pub has_ranges: u32,
    pub scale: f32,
    pub mask_rows: u32,
    pub kv_group: u32,
    pub _p: u32,
}

/// Mirrors `MediaParams` in media_mask.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub(crate) struct MediaParams {
    pub batch: u32,
    pub len: u32,
    pub tokens_per_media: u32,
    pub n_media: u32,
    pub immediate: u32,
    pub words_per_row: u32,
    pub _p: [u32; 2],
}

/// Heads packed in the columns of a [batch, len, width] tensor starting at column `offset`
/// (lets K and V be read straight out of one `to_kv` output).
#[derive(Clone, Copy, Debug)]
pub struct Heads<'a> {
    /// The tensor [batch, len, width].
    pub t: &'a Tensor,
    /// Column where head 0 starts.
    pub offset: usize,
}

impl<'a> Heads<'a> {
    /// Heads from column 0.
    pub fn all(t: &'a Tensor) -> Self {
        Heads { t, offset: 0 }
    }
}

/// Attention options beyond Q, K, V.
#[derive(Clone, Copy, Debug, Default)]
pub struct AttnOpts<'a> {
    /// Additive mask: [batch, lk] (every query of a batch row alike) or [batch, lq, lk] (per query).
    pub mask: Option<&'a Tensor>,
    /// Per-query key ranges [batch · lq · 4] (u32: lo, hi, uniform, 0), from `record_media_ranges`.
    pub ranges: Option<&'a Tensor>,
    /// Grouped-query attention: K and V hold this many heads (dividing the query heads; query
    /// head h reads K/V head h / (heads / kv_heads)). `None`: as many as the queries.
    pub kv_heads: Option<usize>,
}

/// The attention kernel versions in attention.wgsl (family `attention`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnVariant {
    /// One workgroup per query row (`attention`, `VLMC_KERNELS=attention=v2`).
    V2,
    /// Eight query rows per workgroup share every K/V load (`attention_q8`, `attention=q8`).
    Q8,
}

impl AttnVariant {
    /// Names as `VLMC_KERNELS` spells them, in [`Variant::ALL`] order.
    pub const NAMES: &'static [&'static str] = &["v2", "q8"];
}

impl Variant for AttnVariant {
    const FAMILY: &'static str = "attention";
    const ALL: &'static [Self] = &[AttnVariant::V2, AttnVariant::Q8];
    fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
    fn kernel(self) -> &'static Kernel {
        match self {
            AttnVariant::V2 => &registry::ATTENTION,
            AttnVariant::Q8 => &registry::ATTENTION_Q8,
        }
    }
    /// 4·B·heads·Lq·Lk·d for the tuning shape [B, heads, Lq, Lk, d].
    fn work(shape: &[usize]) -> u64 {
        4 * shape.iter().map(|&d| d as u64).product::<u64>()
    }
    /// The launch's own geometry (same batch and heads, so the same grid).
    fn record_trial(self, rec: &mut Recorder, dtype: DType, shape: &[usize]) -> Result<()> {
        let &[b, h, lq, lk, d] = shape else { return Err(Error::shape("attention tuning shape", "[B, heads, Lq, Lk, d]", shape)) };
        let mut rng = crate::util::Rng::new(0x7e57);
        let mut t = |l: usize| Tensor::from_host(rec.gpu(), &rng.vec(b * l * h * d, 1.0), &[b, l, h * d], dtype);
        let (q, k, v) = (t(lq)?, t(lk)?, t(lk)?);
        let scale = 1.0 / (d as f32).sqrt();
        record_attention(rec, Heads::all(&q), Heads::all(&k), Heads::all(&v), h, d, scale, AttnOpts::default(), Some(self)).map(|_| ())
    }
}

/// out[b, i, h·d + c] = Σ_j softmax_j(q_i·k_j·scale + mask_j) v_j. Returns [batch, lq, heads·d].
/// `variant`: the kernel version, `None` to let the tuner choose (measured, or the large-GPU plan).
pub fn record_attention(
    rec: &mut Recorder,
    q: Heads,
    k: Heads,
    v: Heads,
    heads: usize,
    head_dim: usize,
    scale: f32,
    opts: AttnOpts,
    variant: Option<AttnVariant>,
) -> Result<Tensor> {
    let gpu = rec.gpu();
    let kv_heads = opts.kv_heads.unwrap_or(heads);
    if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(Error::config("num_key_value_heads", format!("{kv_heads} K/V heads do not divide {heads} query heads")));
    }
    let dims = |name: &str, h: &Heads, heads: usize| -> Result<[usize; 3]> {
        match *h.t.shape() {
            [b, l, w] if h.offset + heads * head_dim <= w => Ok([b, l, w]),
            _ => Err(Error::shape(
                name,
                format!("[batch, len, ≥{}] (heads {heads} × head_dim {head_dim} from column {})", h.offset + heads * head_dim, h.offset),
                h.t.shape(),
            )),
        }
    };
    let [b, lq, qw] = dims("attention query", &q, heads)?;
    let [kb, lk, kw] = dims("attention key", &k, kv_heads)?;
    let [vb, vl, vw] = dims("attention value", &v, kv_heads)?;
    if kb != b || vb != b || vl != lk {
        return Err(Error::shape(
            "attention key/value",
            format!("[{b}, {lk}, ..] for both"),
            format!("key {:?}, value {:?}", k.t.shape(), v.t.shape()),
        ));
    }
    if head_dim == 0 || head_dim > MAX_HEAD_DIM {
        return Err(Error::Limit {
            op: "attention".into(),
            limit: "head_dim".into(),
            requested: head_dim as u64,
            max: MAX_HEAD_DIM as u64,
        });
    }
    let mask_rows = match opts.mask.map(|m| m.shape()) {
        None => 1,
        Some([mb, ml]) if (*mb, *ml) == (b, lk) => 1,
        Some([mb, mq, ml]) if (*mb, *mq, *ml) == (b, lq, lk) => lq,
        Some(s) => return Err(Error::shape("attention mask", format!("[{b}, {lk}] or [{b}, {lq}, {lk}]"), s)),
    };
    if let Some(r) = opts.ranges {
        r.expect_shape("attention ranges", &[b * lq * 4])?;
    }
    let dtype = q.t.dtype();
    let out = Tensor::empty(gpu, &[b, lq, heads * head_dim], dtype)?;
    let op = "attention";
    let params = AttnParams {
        lq: checked_u32(op, lq)?,
        lk: checked_u32(op, lk)?,
        heads: checked_u32(op, heads)?,
        d: head_dim as u32,
        q_stride: checked_u32(op, qw)?,
        q_off: checked_u32(op, q.offset)?,
        k_stride: checked_u32(op, kw)?,
        k_off: checked_u32(op, k.offset)?,
        v_stride: checked_u32(op, vw)?,
        v_off: checked_u32(op, v.offset)?,
        has_mask: opts.mask.is_some() as u32,
        has_ranges: opts.ranges.is_some() as u32,
        scale,
        mask_rows: checked_u32(op, mask_rows.max(1))?,
        kv_group: checked_u32(op, heads / kv_heads)?,
        _p: 0,
    };
    // The untuned plan is a large GPU's: q8 (one workgroup per 8 query rows) only while its grid
    // still gives every SM of a 132-SM part two workgroups; else v2 (one per row), which launches
    // lq·heads·b of them (enough at every seed shape). Autotuning adapts it to smaller devices.
    let heuristic = if lq >= 8 && lq.div_ceil(8) * heads * b >= super::gemm::TARGET_WORKGROUPS { AttnVariant::Q8 } else { AttnVariant::V2 };
    let chosen = choose(gpu, variant, dtype, &[b, heads, lq, lk, head_dim], heuristic);
    let rows_per_group = if chosen == AttnVariant::Q8 { 8 } else { 1 };
    let groups = [params.lq.div_ceil(rows_per_group), params.heads, checked_u32(op, b)?];
    let (bh, lq, lk, d, e) = ((b * heads) as u64, lq as u64, lk as u64, head_dim as u64, dtype.size() as u64);
    let bkv = (b * kv_heads) as u64;
    let cost = Cost { flops: 4 * bh * lq * lk * d, bytes: e * d * (2 * bh * lq + 2 * bkv * lk) };
    let tensors = [Some(q.t), Some(k.t), Some(v.t), opts.mask, opts.ranges, Some(&out)];
    rec.launch(chosen.kernel(), dtype, &params, &tensors, groups, cost)?;
    Ok(out)
}

/// Packs uint8 media locations [batch, len] four to a u32 word (row-padded), for upload.
pub fn pack_locations(locations: &[u8], batch: usize, len: usize) -> Vec<u32> {
    let words = len.div_ceil(4).max(1);
    let mut out = vec![0u32; batch * words];
    for b in 0..batch {
        for i in 0..len {
            out[b * words + i / 4] |= (locations[b * len + i] as u32) << (8 * (i % 4));
        }
    }
    out
}

/// Key ranges for Flamingo's media masking. `packed`: from [`pack_locations`]. Returns u32 [batch·len·4].
pub fn record_media_ranges(
    rec: &mut Recorder,
    packed: &Tensor,
    batch: usize,
    len: usize,
    n_media: usize,
    tokens_per_media: usize,
    immediate: bool,
) -> Result<Tensor> {
    let gpu = rec.gpu();
    let words = len.div_ceil(4).max(1);
    packed.expect_shape("media_locations (packed)", &[batch * words])?;
    let out = Tensor::empty(gpu, &[batch * len * 4], DType::U32)?;
    let op = "media_ranges";
    let params = MediaParams {
        batch: checked_u32(op, batch)?,
        len: checked_u32(op, len)?,
        tokens_per_media: checked_u32(op, tokens_per_media)?,
        n_media: checked_u32(op, n_media)?,
        immediate: immediate as u32,
        words_per_row: checked_u32(op, words)?,
        _p: [0; 2],
    };
    let cost = Cost { flops: 0, bytes: 4 * (batch * words + batch * len * 4) as u64 };
    rec.launch(&registry::MEDIA_RANGES, DType::F32, &params, &[Some(packed), Some(&out)], [params.batch.div_ceil(64), 1, 1], cost)?;
    Ok(out)
}

/// CPU reference for the media ranges (OpenFlamingo's `text_time` / `media_time` masks).
pub fn media_ranges_cpu(locations: &[u8], batch: usize, len: usize, n_media: usize, n: usize, immediate: bool) -> Vec<u32> {
    let mut out = vec![0u32; batch * len * 4];
    for b in 0..batch {
        let mut t = 0usize;
        for i in 0..len {
            t += locations[b * len + i] as usize;
            let tt = t.min(n_media);
            let r: [usize; 3] = match (immediate, tt) {
                (true, _) if t > n_media => [0, n_media * n, 1],
                (true, 0) => [0, 0, 0],
                (true, t) => [(t - 1) * n, t * n, 0],
                (false, 0) => [0, n_media * n, 1],
                (false, t) => [0, t * n, 0],
            };
            for c in 0..3 {
                out[(b * len + i) * 4 + c] = r[c] as u32;
            }
        }
    }
    out
}

/// CPU reference. q: [b, lq, h·d], k, v: [b, lk, h·d] (contiguous); mask [b, lk] or [b, lq, lk]
/// (told apart by length); ranges as above.
pub fn attention_cpu(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    b: usize,
    lq: usize,
    lk: usize,
    heads: usize,
    d: usize,
    scale: f32,
    mask: Option<&[f32]>,
    ranges: Option<&[u32]>,
) -> Vec<f32> {
    attention_gqa_cpu(q, k, v, [b, lq, lk], [heads, heads], d, scale, mask, ranges)
}

/// [`attention_cpu`] with grouped-query attention: k, v [b, lk, kv_heads·d], query head h reading
/// K/V head h / (heads / kv_heads).
#[allow(clippy::too_many_arguments)]
pub fn attention_gqa_cpu(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    [b, lq, lk]: [usize; 3],
    [heads, kv_heads]: [usize; 2],
    d: usize,
    scale: f32,
    mask: Option<&[f32]>,
    ranges: Option<&[u32]>,
) -> Vec<f32> {
    let w = heads * d;
    let (wk, group) = (kv_heads * d, heads / kv_heads);
    let mut out = vec![0f32; b * lq * w];
    let per_query = mask.is_some_and(|m| m.len() == b * lq * lk);
    let mask_at = |bi: usize, i: usize, j: usize| -> f64 {
        mask.map_or(0.0, |m| m[if per_query { (bi * lq + i) * lk + j } else { bi * lk + j }] as f64)
    };
    for bi in 0..b {
        for h in 0..heads {
            for i in 0..lq {
                let (lo, hi, uni) = match ranges {
                    Some(r) => {
                        let o = (bi * lq + i) * 4;
                        (r[o] as usize, (r[o + 1] as usize).min(lk), r[o + 2] != 0)
                    }
                    None => (0, lk, false),
                };
                if lo >= hi {
                    continue;
                }
                let scores: Vec<f64> = (lo..hi)
                    .map(|j| {
                        if uni {
                            return 0.0;
                        }
                        let mut s = 0f64;
                        for c in 0..d {
                            s += q[(bi * lq + i) * w + h * d + c] as f64 * k[(bi * lk + j) * wk + h / group * d + c] as f64;
                        }
                        s * scale as f64 + mask_at(bi, i, j)
                    })
                    .collect();
                let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
                let sum: f64 = e.iter().sum();
                for c in 0..d {
                    let mut acc = 0f64;
                    for (t, j) in (lo..hi).enumerate() {
                        acc += e[t] * v[(bi * lk + j) * wk + h / group * d + c] as f64;
                    }
                    out[(bi * lq + i) * w + h * d + c] = (acc / sum) as f32;
                }
            }
        }
    }
    out
}
