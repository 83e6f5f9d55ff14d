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
    pub _p: [u32; 3],
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
        _p: [0; 3],
    };
    let dtype = x.dtype();
    // Heuristic by shape class: the 128×128 tile once both sides fill it, else the 64×64 one.
    let heuristic = if m >= 128 && n >= 128 { GemmVariant::T128 } else { GemmVariant::T64 };
    let v = choose(rec.gpu(), variant, dtype, &[m, n, k], heuristic);
    let tile = v.tile();
    let groups = [params.n.div_ceil(tile), params.m.div_ceil(tile), 1];
    let e = dtype.size() as u64;
    let (m, n, k) = (m as u64, n as u64, k as u64);
    let bytes = e * (m * k + n * k + m * n + residual.map_or(0, |_| m * n) + b.map_or(0, |_| n));
    let cost = Cost { flops: 2 * m * n * k, bytes };
    rec.launch(v.kernel(), dtype, &params, &[Some(x), Some(w), b, residual.map(|r| r.res), Some(y)], groups, cost)
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
}

impl GemmVariant {
    /// Names as `VLMC_KERNELS` spells them, in [`Variant::ALL`] order.
    pub const NAMES: &'static [&'static str] = &["64", "128", "reg"];

    /// Output tile side of one workgroup.
    pub fn tile(self) -> u32 {
        match self {
            GemmVariant::T128 => 128,
            _ => 64,
        }
    }
}

impl Variant for GemmVariant {
    const FAMILY: &'static str = "gemm";
    const ALL: &'static [Self] = &[GemmVariant::T64, GemmVariant::T128, GemmVariant::Reg8];
    fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
    fn kernel(self) -> &'static Kernel {
        match self {
            GemmVariant::T64 => &registry::GEMM_64,
            GemmVariant::T128 => &registry::GEMM_128,
            GemmVariant::Reg8 => &registry::GEMM_REG,
        }
    }
    /// 2·M·N·K for the tuning shape [M, N, K].
    fn work(shape: &[usize]) -> u64 {
        2 * shape.iter().map(|&d| d as u64).product::<u64>()
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
