//! Kernels: one WGSL file per family in `shaders/`, a typed `record_<op>` launcher per kernel that
//! computes its own dispatch and never submits, and a plain CPU reference beside each.
//!
//! The whole op set, in one place:
//!
//! | op              | file              | what                                                     |
//! |-----------------|-------------------|----------------------------------------------------------|
//! | `gemm`          | gemm.wgsl         | y = act(x·Wᵀ + b), optional `res + α·y` epilogue          |
//! | `gemm_coop*`    | gemm_coop.wgsl    | the same on cooperative matrices (f16 in, f32 accumulate) |
//! | `activation`    | elementwise.wgsl  | y = act(x) (ACT2FN names)                                |
//! | `gated_activation` | elementwise.wgsl | y = act(gate) · up on a stacked [gate, up] (LlamaMLP), optional row scale |
//! | `add`           | elementwise.wgsl  | y = a + b                                                |
//! | `copy_rows`     | elementwise.wgsl  | strided row copy with batch broadcast (expand, concat)   |
//! | `add_rows`      | elementwise.wgsl  | `x[r] += e[(r / div) % modulo]` (frame, time embeddings)|
//! | `layernorm`     | layernorm.wgsl    | LayerNorm over the last dim, optional fused residual add |
//! | `rmsnorm`       | layernorm.wgsl    | RMSNorm (Llama / IDEFICS), optional fused residual add   |
//! | `attention`     | attention.wgsl    | fused multi-head / grouped-query attention, online softmax, masks |
//! | `media_ranges`  | media_mask.wgsl   | Flamingo media mask → per-query key ranges               |
//! | `pool2d`        | pool.wgsl         | k×k average / max pooling of a token grid, stride k      |
//! | `resize_bilinear` | pool.wgsl       | F.interpolate bilinear (align_corners=False) of grids    |
//! | `space_to_depth` | pool.wgsl        | pixel shuffle / unfold: k×k blocks into k²·C channels    |
//! | `patchify`      | pool.wgsl         | im2col of pixel values for a tower's patch embedding      |
//! | `anyres_pack`   | anyres.wgsl       | LLaVA-NeXT tile reassembly, unpad crop, newlines: gather |
//! | `anyres_resize_pack` | anyres.wgsl  | LLaVA-OneVision: the same, bilinearly resized            |
//! | `gather_rows`   | elementwise.wgsl  | `nn.Embedding`: rows of a table by host-checked ids       |
//! | `tome_*`        | tome.wgsl         | ToMe: match, rank, slots, size-weighted merge            |
//! | `fma_peak`      | ceiling.wgsl      | the adapter's FMA ceiling (benchmarks)                   |
//! | `copy_bw`       | ceiling.wgsl      | the adapter's copy bandwidth (benchmarks)                |
//!
//! Every entry point is a constant in [`registry`] (file, entry, dtypes, features, bindings); a
//! pipeline is compiled per (kernel, dtype) from `enable` directives + `alias elem = …;` +
//! `common.wgsl` + the file (WGSL has no includes). Launchers record through
//! `Recorder::launch` ([`launch`]), which checks dtypes and adds up each launch's FLOPs and bytes.
//! Families with several versions (`gemm`, `attention`) implement [`Variant`]; the tuner
//! (`runtime::tune`) picks one unless a launcher is handed one.

pub mod activation;
pub mod anyres;
pub mod anyres_resize;
pub mod attention;
pub mod autotune;
pub mod ceiling;
pub mod elementwise;
pub mod gemm;
pub mod launch;
pub mod layernorm;
pub mod pool;
pub mod registry;
pub mod tome;

pub use activation::Activation;

use crate::runtime::{DType, Error, Gpu, Recorder, Result};

pub use registry::{compose, Kernel, SHADER_FILES};

/// A kernel family's interchangeable versions (GEMM tiles, attention blocking): the tuner picks
/// one per shape bucket unless the launcher is handed one.
pub trait Variant: Copy + std::fmt::Debug + 'static {
    /// Family name, as `VLMC_KERNELS` spells it.
    const FAMILY: &'static str;
    /// Every variant, heuristic's choices included.
    const ALL: &'static [Self];
    /// Variant name, as `VLMC_KERNELS` spells it.
    fn name(self) -> &'static str;
    /// The kernel it runs.
    fn kernel(self) -> &'static Kernel;
    /// FLOPs of one launch at the family's tuning `shape` (what the autotuner weighs it by).
    fn work(shape: &[usize]) -> u64;
    /// Records one launch of this variant on fresh random data of the tuning `shape` (the one the
    /// launcher hands the tuner), for the autotuner to time.
    fn record_trial(self, rec: &mut Recorder, dtype: DType, shape: &[usize]) -> Result<()>;
    /// Whether this variant runs on `gpu` in `dtype`: built for the dtype, and the adapter has the
    /// features it needs (the autotuner and the tests skip the others).
    fn runs_on(self, gpu: &Gpu, dtype: DType) -> bool {
        self.kernel().dtypes.contains(&dtype) && gpu.features().contains(self.kernel().required_features(dtype))
    }
}

/// The variant to run: `explicit` if given, else the tuner's choice (forced, recorded for this
/// shape bucket, measured now, or `heuristic`). Measuring submits and waits on trial launches of
/// its own (once per adapter, dtype and shape bucket), so the first recording of a new shape takes
/// longer; the recorder's own work still runs only at its submit.
pub(crate) fn choose<V: Variant>(gpu: &Gpu, explicit: Option<V>, dtype: DType, shape: &[usize], heuristic: V) -> V {
    if let Some(v) = explicit {
        return v;
    }
    let t = &gpu.tuner;
    let known = t.forced(V::FAMILY).is_some() || t.recorded(&t.key(V::FAMILY, dtype, shape)).is_some();
    if !known && t.autotune() && V::work(shape) >= autotune::MIN_WORK && autotune::can_time(gpu) {
        match autotune::measure::<V>(gpu, dtype, shape) {
            Some(v) => return v,
            // Nothing ran: keep the heuristic for this key (in memory), not a retry per launch.
            None => t.record(t.key(V::FAMILY, dtype, shape), heuristic.name()),
        }
    }
    let name = t.choose(V::FAMILY, dtype, shape, heuristic.name());
    match V::ALL.iter().copied().find(|v| v.name() == name) {
        // A forced or recorded variant this device cannot run in this dtype (`gemm=coop8` for an
        // f32 GEMM; a cached coop choice once cooperative matrices are off): the heuristic instead.
        Some(v) if !v.runs_on(gpu, dtype) => {
            log::debug!("{} {}: {} does not run here in {dtype:?}; using {}", V::FAMILY, gpu.describe(), v.name(), heuristic.name());
            heuristic
        }
        Some(v) => v,
        None => heuristic,
    }
}

/// (family, variant) of the registry kernel named `kernel`: the variant name for the tunable
/// families (`gemm` 64 / 128 / reg / split, with `gemm_reduce` part of split; `attention` v2 /
/// q8), `-` for the others.
pub fn variant_of(kernel: &str) -> (&'static str, &'static str) {
    let family = registry::ALL.iter().find(|k| k.name == kernel).map_or("?", |k| k.family);
    let gemm = gemm::GemmVariant::ALL.iter().find(|v| v.kernel().name == kernel).map(|v| v.name());
    let attn = attention::AttnVariant::ALL.iter().find(|v| v.kernel().name == kernel).map(|v| v.name());
    let split = (kernel == registry::GEMM_REDUCE.name).then_some("split");
    (family, gemm.or(attn).or(split).unwrap_or("-"))
}

/// Every tunable family and its variant names (what `VLMC_KERNELS` accepts).
pub fn tune_families() -> Vec<(&'static str, &'static [&'static str])> {
    vec![(gemm::GemmVariant::FAMILY, gemm::GemmVariant::NAMES), (attention::AttnVariant::FAMILY, attention::AttnVariant::NAMES)]
}

/// `n` as a u32 kernel parameter, or an error naming `op` when it does not fit.
pub(crate) fn checked_u32(op: &str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| Error::Limit {
        op: op.into(),
        limit: "u32 kernel parameter".into(),
        requested: n as u64,
        max: u32::MAX as u64,
    })
}

/// Splits `groups` workgroups into an (x, y) grid within the per-dimension limit.
/// Shaders recover the linear index with `group_index`.
pub(crate) fn grid_1d(gpu: &Gpu, groups: u32) -> [u32; 3] {
    let max = gpu.limits().max_compute_workgroups_per_dimension.max(1);
    if groups <= max {
        [groups, 1, 1]
    } else {
        let x = max;
        [x, groups.div_ceil(x), 1]
    }
}

/// Relative L2 error ‖a − b‖ / ‖b‖ (0 when both are zero).
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "rel_l2 on different lengths");
    let (mut num, mut den) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let d = *x as f64 - *y as f64;
        num += d * d;
        den += (*y as f64) * (*y as f64);
    }
    if den == 0.0 {
        return num.sqrt();
    }
    (num / den).sqrt()
}
