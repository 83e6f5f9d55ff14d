//! Multi-head attention shared by every connector: Q from one stream, K and V from another (or the
//! same). K and V are one GEMM: their weights are stacked [k; v] at load, and the attention kernel
//! reads the two halves of its output as column slices. The output projection stays with the caller,
//! since each model folds a different residual into it.

use crate::checkpoint::WeightSource;
use crate::kernels::attention::{record_attention, AttnOpts, Heads, MAX_HEAD_DIM};
use crate::kernels::Activation;
use crate::nn::{Bias, Linear};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// Q, stacked K/V projections and the head geometry. Built only by the loaders, which check that
/// the heads divide the width and fit the kernel.
#[derive(Debug)]
pub struct Attention {
    q: Linear,
    /// K and V stacked: weight [2·inner, kv_dim].
    kv: Linear,
    heads: usize,
    head_dim: usize,
    scale: f32,
}

/// Checks `heads` divides `inner` and the head fits the kernel; returns the head dim.
pub fn head_dim(inner: usize, heads: usize, field: &str) -> Result<usize> {
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
        let kv = Linear::stack(gpu, &[k, v], kv_dim, dim, bias)?;
        Ok(Attention { q, kv, heads, head_dim, scale: 1.0 / (head_dim as f32).sqrt() })
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
        let kv = Linear::load(gpu, to_kv, Some(kv_dim), Some(2 * inner), Bias::None)?;
        Ok(Attention { q, kv, heads, head_dim: dim_head, scale: 1.0 / (dim_head as f32).sqrt() })
    }

    /// heads · head_dim.
    pub fn inner(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Number of heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Width of one head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Context (before the output projection): x_q [B, Lq, dim], x_kv [B, Lk, kv_dim] → [B, Lq, inner].
    pub fn context(&self, rec: &mut Recorder, x_q: &Tensor, x_kv: &Tensor, opts: AttnOpts) -> Result<Tensor> {
        let q = self.q.forward(rec, x_q, Activation::Identity)?;
        let kv = self.kv.forward(rec, x_kv, Activation::Identity)?;
        let inner = self.inner();
        record_attention(
            rec,
            Heads::all(&q),
            Heads { t: &kv, offset: 0 },
            Heads { t: &kv, offset: inner },
            self.heads,
            self.head_dim,
            self.scale,
            opts,
            None,
        )
    }
}
