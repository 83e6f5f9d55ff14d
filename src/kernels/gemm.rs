//! `nn.Linear` as a GEMM: `y[M, N] = act(x[M, K]·W[N, K]ᵀ + b[N])`, optionally `res + α·y`.

use bytemuck::{Pod, Zeroable};

use super::registry::{self, Kernel};
use super::{checked_u32, choose, Activation, Variant};
use crate::runtime::{Cost, DType, Error, Recorder, Result, Tensor};

/// Mirrors `GemmParams` in gemm.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub act: u32,
    pub has_bias: u32,
    pub has_res: u32,
    pub alpha: f32,
    pub ldy: u32,
    pub y_off: u32,
    pub k_chunk: u32,
    pub splits: u32,
    pub _p: u32,
}

/// Rows per block when a weight is split to fit the binding limit: a multiple of the 64-wide tiles,
/// so only the last block can end in a partly used tile.
pub const ROW_BLOCK: usize = 64;

/// Optional epilogue: `res + alpha · act(x·Wᵀ + b)`.
#[derive(Clone, Copy, Debug)]
pub struct Residual<'a> {
    /// The residual, shaped like y.
    pub res: &'a Tensor,
    /// Scale of the GEMM result (a tanh gate, or 1).
    pub alpha: f32,
}

/// Records `y = act(x·Wᵀ + b)` (+ residual). x: `[..., K]` (any leading dims), w: `[N, K]`, b: `[N]`.
/// Returns y: [..., N] in x's dtype.
pub fn record_linear(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    act: Activation,
    residual: Option<Residual>,
) -> Result<Tensor> {
    let n = *w.shape().first().ok_or_else(|| Error::shape("linear weight", "[N, K]", w.shape()))?;
    let y = Tensor::empty(rec.gpu(), &linear_out_shape(x, n)?, x.dtype())?;
    record_gemm_into(rec, x, w, b, &y, 0, act, residual, None)?;
    Ok(y)
}

/// Output shape of a Linear with `n` outputs on x [..., K].
pub fn linear_out_shape(x: &Tensor, n: usize) -> Result<Vec<usize>> {
    let (_, lead) = x.shape().split_last().ok_or_else(|| Error::shape("linear input", "[.., K]", x.shape()))?;
    let mut s = lead.to_vec();
    s.push(n);
    Ok(s)
}

/// Records `y[:, y_off..y_off + N] = act(x·Wᵀ + b)` (+ `res[:, same] · …`) into a preallocated
/// y `[..., ldy]`. x: `[..., K]`, w: `[N, K]`, b: `[N]`; res has y's shape; all in one float dtype.
/// `variant`: the kernel version, `None` to let the tuner choose (see [`GemmVariant`]).
pub fn record_gemm_into(
    rec: &mut Recorder,
    x: &Tensor,
    w: &Tensor,
    b: Option<&Tensor>,
    y: &Tensor,
    y_off: usize,
    act: Activation,
    residual: Option<Residual>,
    variant: Option<GemmVariant>,
) -> Result<()> {
    // Shapes: x [M, K] (leading dims flattened), w [N, K], y [M, ldy].
    let (&k, lead) = x.shape().split_last().ok_or_else(|| Error::shape("linear input", "[.., K]", x.shape()))?;
    if w.rank() != 2 || w.shape()[1] != k {
        return Err(Error::shape("linear weight", format!("[N, {k}]"), w.shape()));
    }
    let n = w.shape()[0];
    let m: usize = lead.iter().product();
    if let Some(b) = b {
        b.expect_shape("linear bias", &[n])?;
    }
    let ldy = *y.shape().last().unwrap_or(&0);
    if y.numel() != m * ldy || y_off + n > ldy {
        return Err(Error::shape("linear output", format!("[{m} rows, ≥{} columns]", y_off + n), y.shape()));
    }
    if let Some(r) = &residual {
        if r.res.numel() != m * ldy {
            return Err(Error::shape("linear residual", y.shape(), r.res.shape()));
        }
    }
    let op = "gemm";
    let params = GemmParams {
        m: checked_u32(op, m)?,
        n: checked_u32(op, n)?,
        k: checked_u32(op, k)?,
        act: act as u32,
        has_bias: b.is_some() as u32,
        has_res: residual.is_some() as u32,
        alpha: residual.map(|r| r.alpha).unwrap_or(1.0),
        ldy: checked_u32(op, ldy)?,
        y_off: checked_u32(op, y_off)?,
        k_chunk: 0,
        splits: 1,
        _p: 0,
    };
    let dtype = x.dtype();
    // The untuned plan is a large GPU's: split K when the 64×64 tiles leave it idle (fewer than
    // two workgroups per SM of a 132-SM part) and K is deep enough to share; else the 128×128
    // tile once both sides fill it, else the 64×64 one. Autotuning adapts it to smaller devices.
    // The cooperative-matrix variants are candidates for the tuner (and `VLMC_KERNELS`) where the
    // adapter runs them, not the untuned plan: that waits for a measurement on a GPU.
    let heuristic = match split_k(m, n, k) {
        s if s > 1 => GemmVariant::SplitK,
        _ if m >= 128 && n >= 128 => GemmVariant::T128,
        _ => GemmVariant::T64,
    };
    let v = choose(rec.gpu(), variant, dtype, &[m, n, k], heuristic);
    // A cooperative variant needs its tile's subgroup width and configuration on this adapter (the
    // feature alone does not say so): otherwise it is an error that says what is missing.
    if let GemmVariant::Coop8 | GemmVariant::Coop16 = v {
        if !v.runs_on(rec.gpu(), dtype) {
            return Err(Error::Unsupported {
                what: format!("GEMM variant {}", v.name()),
                needs: format!(
                    "a {t}×{t}×{t} f16 → f32 cooperative-matrix configuration with {}-wide subgroups (this adapter: {:?})",
                    if v.tile() == 8 { 8 } else { 32 },
                    rec.gpu().coop_tile().map(|t| format!("{t}×{t}")),
                    t = v.tile()
                ),
            });
        }
    }
    let e = dtype.size() as u64;
    let (m64, n64, k64) = (m as u64, n as u64, k as u64);
    let bytes = e * (m64 * k64 + n64 * k64 + m64 * n64 + residual.map_or(0, |_| m64 * n64) + b.map_or(0, |_| n64));
    let cost = Cost { flops: 2 * m64 * n64 * k64, bytes };
    let splits = if v == GemmVariant::SplitK { split_k(m, n, k) } else { 1 };
    if splits <= 1 {
        let kernel = if v == GemmVariant::SplitK { &registry::GEMM_64 } else { v.kernel() };
        let tile = v.tile();
        let groups = [params.n.div_ceil(tile), params.m.div_ceil(tile), 1];
        return rec.launch(kernel, dtype, &params, &[Some(x), Some(w), b, residual.map(|r| r.res), Some(y)], groups, cost);
    }
    // Split-K: partial products [splits, m, n], then one pass adds them with the epilogue.
    let k_chunk = k.div_ceil(splits).div_ceil(16) * 16;
    let splits = k.div_ceil(k_chunk);
    let partial = Tensor::empty(rec.gpu(), &[splits, m, n], DType::F32)?; // f32 sums in f16 runs too
    let split_params = GemmParams { k_chunk: checked_u32(op, k_chunk)?, splits: checked_u32(op, splits)?, ..params };
    let groups = [params.n.div_ceil(64), params.m.div_ceil(64), checked_u32(op, splits)?];
    let partial_bytes = 4 * splits as u64 * m64 * n64;
    let split_cost = Cost { flops: cost.flops, bytes: cost.bytes - e * m64 * n64 + partial_bytes };
    rec.launch(&registry::GEMM_SPLIT, dtype, &split_params, &[Some(x), Some(w), Some(&partial)], groups, split_cost)?;
    let reduce_cost = Cost { flops: splits as u64 * m64 * n64, bytes: partial_bytes + e * m64 * n64 };
    let n_out = checked_u32(op, m * n)?;
    let tensors = [Some(&partial), b, residual.map(|r| r.res), Some(y)];
    rec.launch(&registry::GEMM_REDUCE, dtype, &split_params, &tensors, super::grid_1d(rec.gpu(), n_out.div_ceil(256)), reduce_cost)
}

/// Workgroups a large GPU wants busy: two per SM of a 132-SM part (H100 / H200).
pub const TARGET_WORKGROUPS: usize = 264;

/// How many ways the split-K plan divides K for an M×N×K GEMM: enough 64×64 tiles × splits to
/// reach [`TARGET_WORKGROUPS`], with at least 128 of K per split; 1 (no split) when the tiles
/// already fill the GPU or K is too shallow to share.
pub fn split_k(m: usize, n: usize, k: usize) -> usize {
    let tiles = m.div_ceil(64) * n.div_ceil(64);
    if tiles >= TARGET_WORKGROUPS || m * n == 0 {
        return 1;
    }
    TARGET_WORKGROUPS.div_ceil(tiles).min(k / 128).max(1)
}

/// The GEMM kernel versions in gemm.wgsl (family `gemm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmVariant {
    /// 64×64 tile, 4×4 per thread (`gemm`, `VLMC_KERNELS=gemm=64`).
    T64,
    /// 128×128 tile, 8×8 per thread (`gemm_128`, `gemm=128`).
    T128,
    /// No workgroup memory: 8×8 per thread straight from global memory, 64×64 per workgroup (`gemm_reg`, `gemm=reg`).
    Reg8,
    /// Split-K: the 64×64 tile over K / splits per workgroup, then a reduction with the epilogue
    /// (`gemm_split` + `gemm_reduce`, `gemm=split`); the 64×64 GEMM where K does not split.
    SplitK,
    /// Cooperative matrices 8×8×8, f16 → f32 (`gemm_coop8`, `gemm=coop8`): adapters whose
    /// configurations and 8-lane subgroups [`crate::Gpu::coop_tile`] accepts; f16 only; a tuner
    /// candidate, not the untuned plan.
    Coop8,
    /// Cooperative matrices 16×16×16, f16 → f32 (`gemm_coop16`, `gemm=coop16`): tensor cores
    /// behind 32-wide subgroups; f16 only.
    Coop16,
}

impl GemmVariant {
    /// Names as `VLMC_KERNELS` spells them, in [`Variant::ALL`] order.
    pub const NAMES: &'static [&'static str] = &["64", "128", "reg", "split", "coop8", "coop16"];

    /// Output tile side of one workgroup.
    pub fn tile(self) -> u32 {
        match self {
            GemmVariant::T128 => 128,
            GemmVariant::Coop8 => 8,
            GemmVariant::Coop16 => 16,
            _ => 64,
        }
    }
}

impl Variant for GemmVariant {
    const FAMILY: &'static str = "gemm";
    const ALL: &'static [Self] =
        &[GemmVariant::T64, GemmVariant::T128, GemmVariant::Reg8, GemmVariant::SplitK, GemmVariant::Coop8, GemmVariant::Coop16];
    fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
    fn kernel(self) -> &'static Kernel {
        match self {
            GemmVariant::T64 => &registry::GEMM_64,
            GemmVariant::T128 => &registry::GEMM_128,
            GemmVariant::Reg8 => &registry::GEMM_REG,
            GemmVariant::SplitK => &registry::GEMM_SPLIT,
            GemmVariant::Coop8 => &registry::GEMM_COOP8,
            GemmVariant::Coop16 => &registry::GEMM_COOP16,
        }
    }
    /// 2·M·N·K for the tuning shape [M, N, K].
    fn work(shape: &[usize]) -> u64 {
        2 * shape.iter().map(|&d| d as u64).product::<u64>()
    }
    /// The cooperative variants also need [`crate::Gpu::coop_tile`] to be their tile.
    fn runs_on(self, gpu: &crate::Gpu, dtype: DType) -> bool {
        let fits = match self {
            GemmVariant::Coop8 | GemmVariant::Coop16 => gpu.coop_tile() == Some(self.tile()),
            _ => true,
        };
        fits && self.kernel().dtypes.contains(&dtype) && gpu.features().contains(self.kernel().required_features(dtype))
    }
    fn record_trial(self, rec: &mut Recorder, dtype: DType, shape: &[usize]) -> Result<()> {
        let &[m, n, k] = shape else { return Err(Error::shape("gemm tuning shape", "[M, N, K]", shape)) };
        let mut rng = crate::util::Rng::new(0x7e57);
        let x = Tensor::from_host(rec.gpu(), &rng.vec(m * k, 1.0), &[m, k], dtype)?;
        let w = Tensor::from_host(rec.gpu(), &rng.vec(n * k, 1.0), &[n, k], dtype)?;
        let y = Tensor::empty(rec.gpu(), &[m, n], dtype)?;
        record_gemm_into(rec, &x, &w, None, &y, 0, Activation::Identity, None, Some(self))
    }
}

/// CPU reference (f64 accumulation). x: `[M, K]`, w: `[N, K]`, b: `[N]`, res: `[M, N]` → `[M, N]`.
pub fn linear_cpu(
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
    m: usize,
    k: usize,
    n: usize,
    act: Activation,
    res: Option<(&[f32], f32)>,
) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0f64;
            for t in 0..k {
                acc += x[i * k + t] as f64 * w[j * k + t] as f64;
            }
            if let Some(b) = b {
                acc += b[j] as f64;
            }
            let mut v = act.apply(acc);
            if let Some((r, alpha)) = res {
                v = r[i * n + j] as f64 + alpha as f64 * v;
            }
            y[i * n + j] = v as f32;
        }
    }
    y
}
