//! Multi-head attention shared by every connector: Q from one stream, K and V from another (or the
//! same). K and V are one GEMM: their weights are stacked [k; v] at load, and the attention kernel
//! reads the two halves of its output as column slices. With per-head q/k norms (IDEFICS) K is
//! normalised on its own, so K and V stay two GEMMs. The output projection stays with the caller,
//! since each model folds a different residual into it.

use crate::checkpoint::WeightSource;
use crate::kernels::attention::{record_attention, AttnOpts, Heads, MAX_HEAD_DIM};
use crate::kernels::Activation;
use crate::nn::{Bias, Linear, Norm};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// Q, K/V projections and the head geometry. Built only by the loaders, which check that
/// the heads divide the width and fit the kernel.
#[derive(Debug)]
pub struct Attention {
    q: Linear,
    kv: KeyValue,
    heads: usize,
    /// K/V heads (grouped-query attention when fewer than `heads`).
    kv_heads: usize,
    head_dim: usize,
    scale: f32,
}

#[derive(Debug)]
enum KeyValue {
    /// K and V stacked: weight [2·inner, kv_dim].
    Stacked(Linear),
    /// Separate, with per-head norms of Q and K (K is normalised on its own before the attention).
    Normed(Box<NormedKv>),
}

#[derive(Debug)]
struct NormedKv {
    k: Linear,
    v: Linear,
    norm: QkNorm,
}

/// Per-head norms of the queries and keys, applied over head_dim after the projections
/// (IDEFICS `qk_layer_norms`: `q_layer_norm` / `k_layer_norm`, both `[head_dim]`).
#[derive(Debug)]
pub struct QkNorm {
    /// Over each query head.
    pub q: Norm,
    /// Over each key head.
    pub k: Norm,
}

/// Checks `heads` divides `inner` and the head fits the kernel; returns the head dim.
pub fn head_dim(inner: usize, heads: usize, field: &str) -> Result<usize> {
    // Blip2QFormerMultiHeadAttention and IdeficsAttention raise ValueError here; past MAX_HEAD_DIM
    // the reference runs but this kernel does not (it keeps a head in registers): a stated limit.
    if heads == 0 || !inner.is_multiple_of(heads) {
        return Err(Error::config(field, format!("{heads} heads do not divide the width {inner}")));
    }
    let d = inner / heads;
    if d > MAX_HEAD_DIM {
        return Err(Error::Limit { op: "attention".into(), limit: "head_dim".into(), requested: d as u64, max: MAX_HEAD_DIM as u64 });
    }
    Ok(d)
}

impl Attention {
    /// Separate `query`/`key`/`value` Linears (BERT / Q-Former layout): `{q,k,v}` are the prefixes.
    pub fn load_separate(
        gpu: &Gpu,
        q: &WeightSource,
        k: &WeightSource,
        v: &WeightSource,
        dim: usize,
        kv_dim: usize,
        heads: usize,
        bias: Bias,
    ) -> Result<Attention> {
        let head_dim = head_dim(dim, heads, "num_attention_heads")?;
        let q = Linear::load(gpu, q, Some(dim), Some(dim), bias)?;
        let kv = KeyValue::Stacked(Linear::stack(gpu, &[k, v], kv_dim, dim, bias)?);
        Ok(Attention { q, kv, heads, kv_heads: heads, head_dim, scale: 1.0 / (head_dim as f32).sqrt() })
    }

    /// `to_q` and a fused `to_kv` (OpenFlamingo layout, no biases). `inner = heads · dim_head`.
    pub fn load_fused(
        gpu: &Gpu,
        to_q: &WeightSource,
        to_kv: &WeightSource,
        dim: usize,
        kv_dim: usize,
        heads: usize,
        dim_head: usize,
    ) -> Result<Attention> {
        let inner = heads * dim_head;
        head_dim(inner, heads, "heads")?;
        let q = Linear::load(gpu, to_q, Some(dim), Some(inner), Bias::None)?;
        let kv = KeyValue::Stacked(Linear::load(gpu, to_kv, Some(kv_dim), Some(2 * inner), Bias::None)?);
        Ok(Attention { q, kv, heads, kv_heads: heads, head_dim: dim_head, scale: 1.0 / (dim_head as f32).sqrt() })
    }

    /// Separate `q`/`k`/`v` Linears without biases and an inner width `heads · head_dim` that need
    /// not equal `dim` (IDEFICS, Mllama, Idefics2: `q_proj`, `k_proj`, `v_proj`), `[heads, kv_heads]`
    /// query and K/V heads (grouped-query attention when kv_heads < heads: `k_proj` / `v_proj` are
    /// [kv_heads · head_dim, kv_dim]), with optional per-head q/k norms of width `head_dim`.
    /// Errors: [`Error::Config`] for K/V heads that do not divide the query heads or norms of
    /// another width.
    #[allow(clippy::too_many_arguments)]
    pub fn load_projections(
        gpu: &Gpu,
        [q, k, v]: [&WeightSource; 3],
        dim: usize,
        kv_dim: usize,
        [heads, kv_heads]: [usize; 2],
        head_dim: usize,
        qk_norm: Option<QkNorm>,
    ) -> Result<Attention> {
        let inner = heads * head_dim;
        self::head_dim(inner, heads, "heads")?;
        if kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
            return Err(Error::config("num_key_value_heads", format!("{kv_heads} K/V heads do not divide {heads} query heads")));
        }
        let kv_inner = kv_heads * head_dim;
        if let Some(n) = qk_norm.as_ref().filter(|n| n.q.dim() != head_dim || n.k.dim() != head_dim) {
            return Err(Error::config(
                "qk_layer_norms",
                format!("q/k norms of width {} / {}; head_dim is {head_dim}", n.q.dim(), n.k.dim()),
            ));
        }
        let q = Linear::load(gpu, q, Some(dim), Some(inner), Bias::None)?;
        let kv = match qk_norm {
            None => KeyValue::Stacked(Linear::stack(gpu, &[k, v], kv_dim, kv_inner, Bias::None)?),
            Some(norm) => KeyValue::Normed(Box::new(NormedKv {
                k: Linear::load(gpu, k, Some(kv_dim), Some(kv_inner), Bias::None)?,
                v: Linear::load(gpu, v, Some(kv_dim), Some(kv_inner), Bias::None)?,
                norm,
            })),
        };
        Ok(Attention { q, kv, heads, kv_heads, head_dim, scale: 1.0 / (head_dim as f32).sqrt() })
    }

    /// From a Q projection and a stacked [K; V] one built by the caller (BLIP-2's fused `qkv`
    /// split at load): q [heads·head_dim, dim], kv [2·heads·head_dim, kv_dim].
    pub fn from_stacked(q: Linear, kv: Linear, heads: usize, head_dim: usize) -> Attention {
        Attention { q, kv: KeyValue::Stacked(kv), heads, kv_heads: heads, head_dim, scale: 1.0 / (head_dim as f32).sqrt() }
    }

    /// heads · head_dim.
    pub fn inner(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Number of query heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Number of K/V heads (fewer than [`Self::heads`] with grouped-query attention).
    pub fn kv_heads(&self) -> usize {
        self.kv_heads
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Context (before the output projection): x_q [B, Lq, dim], x_kv [B, Lk, kv_dim] → [B, Lq, inner].
    pub fn context(&self, rec: &mut Recorder, x_q: &Tensor, x_kv: &Tensor, opts: AttnOpts) -> Result<Tensor> {
        let q = self.q.forward(rec, x_q, Activation::Identity)?;
        // (Q, K, V, V's first column): K and V as column slices of one GEMM output, or normed apart.
        let (q, k, v, v_off) = match &self.kv {
            KeyValue::Stacked(kv) => {
                let kv = kv.forward(rec, x_kv, Activation::Identity)?;
                (q, kv.clone(), kv, self.kv_heads * self.head_dim)
            }
            KeyValue::Normed(n) => {
                let k = n.k.forward(rec, x_kv, Activation::Identity)?;
                let (q, k) = (per_head(rec, &n.norm.q, &q, self.head_dim)?, per_head(rec, &n.norm.k, &k, self.head_dim)?);
                (q, k, n.v.forward(rec, x_kv, Activation::Identity)?, 0)
            }
        };
        record_attention(
            rec,
            Heads::all(&q),
            Heads { t: &k, offset: 0 },
            Heads { t: &v, offset: v_off },
            self.heads,
            self.head_dim,
            self.scale,
            AttnOpts { kv_heads: Some(self.kv_heads), ..opts },
            None,
        )
    }
}

/// `norm` over each head_dim-wide slice of the last dimension: x [..., heads·head_dim] → same shape.
fn per_head(rec: &mut Recorder, norm: &Norm, x: &Tensor, head_dim: usize) -> Result<Tensor> {
    let shape = x.shape().to_vec();
    let y = norm.forward(rec, &x.reshape(&[x.numel() / head_dim.max(1), head_dim])?)?;
    y.reshape(&shape)
}
