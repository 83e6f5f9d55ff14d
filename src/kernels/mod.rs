//! Kernels: one WGSL file per family in `shaders/`, a typed `record_<op>` launcher per kernel that
//! computes its own dispatch and never submits, and a plain CPU reference beside each.
//!
//! The whole op set, in one place:
//!
//! | op              | file              | what                                                     |
//! |-----------------|-------------------|----------------------------------------------------------|
//! | `gemm`          | gemm.wgsl         | y = act(x·Wᵀ + b), optional `res + α·y` epilogue          |
//! | `activation`    | elementwise.wgsl  | y = act(x) (ACT2FN names)                                |
//! | `add`           | elementwise.wgsl  | y = a + b                                                |
//! | `copy_rows`     | elementwise.wgsl  | strided row copy with batch broadcast (expand, concat)   |
//! | `add_rows`      | elementwise.wgsl  | x[r] += e[(r / div) % modulo] (frame / time embeddings)  |
//! | `layernorm`     | layernorm.wgsl    | LayerNorm over the last dim, optional fused residual add |
//! | `attention`     | attention.wgsl    | fused multi-head attention, online softmax, masks        |
//! | `media_ranges`  | media_mask.wgsl   | Flamingo media mask → per-query key ranges               |
//! | `avg_pool2x2`   | pool.wgsl         | 2×2 average pooling of a token grid                      |
//! | `anyres_pack`   | anyres.wgsl       | LLaVA-NeXT tile reassembly, unpad crop, newlines: gather |
//! | `tome_*`        | tome.wgsl         | ToMe: match, rank, slots, size-weighted merge            |
//! | `fma_peak`      | ceiling.wgsl      | the adapter's FMA ceiling (benchmarks)                   |
//! | `copy_bw`       | ceiling.wgsl      | the adapter's copy bandwidth (benchmarks)                |
//!
//! Every kernel file is compiled as `common.wgsl` + the file (WGSL has no includes).

pub mod activation;
pub mod anyres;
pub mod attention;
pub mod ceiling;
pub mod elementwise;
pub mod gemm;
pub mod layernorm;
pub mod pool;
pub mod tome;

pub use activation::Activation;

use crate::runtime::{Gpu, Result};
use std::sync::Arc;

/// WGSL sources, by file name, as shipped in `shaders/`.
pub const SHADER_FILES: &[(&str, &str)] = &[
    ("common.wgsl", include_str!("../../shaders/common.wgsl")),
    ("gemm.wgsl", include_str!("../../shaders/gemm.wgsl")),
    ("elementwise.wgsl", include_str!("../../shaders/elementwise.wgsl")),
    ("layernorm.wgsl", include_str!("../../shaders/layernorm.wgsl")),
    ("attention.wgsl", include_str!("../../shaders/attention.wgsl")),
    ("media_mask.wgsl", include_str!("../../shaders/media_mask.wgsl")),
    ("pool.wgsl", include_str!("../../shaders/pool.wgsl")),
    ("anyres.wgsl", include_str!("../../shaders/anyres.wgsl")),
    ("tome.wgsl", include_str!("../../shaders/tome.wgsl")),
    ("ceiling.wgsl", include_str!("../../shaders/ceiling.wgsl")),
];

/// The source a kernel file is compiled from: `common.wgsl` followed by the file.
pub fn compose(file: &str) -> String {
    let common = SHADER_FILES[0].1;
    let body = SHADER_FILES.iter().find(|(n, _)| *n == file).map(|(_, s)| *s).unwrap_or_else(|| panic!("unknown shader file {file}"));
    if file == "common.wgsl" {
        return common.to_string();
    }
    format!("{common}\n{body}")
}

/// The cached pipeline for `entry` in `file`; `name` is the cache key.
pub(crate) fn pipeline(gpu: &Gpu, name: &'static str, file: &'static str, entry: &'static str) -> Result<Arc<wgpu::ComputePipeline>> {
    gpu.pipeline(name, || compose(file), entry)
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
