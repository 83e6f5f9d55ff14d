//! Shared test helpers: one GPU per test binary, golden cases, tolerances.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::OnceLock;

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::kernels::rel_l2;
use vlm_connectors::Gpu;

/// The GPU shared by every test in this binary (WGPU_BACKEND etc. apply).
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        // Hermetic: the built-in kernel plan, no measuring and no cache in the user's folder (the
        // autotuner has its own tests, with their own cache files).
        let autotune = vlm_connectors::runtime::tune::AutotuneSettings { enabled: false, cache: None };
        let g = Gpu::new_with(vlm_connectors::GpuOptions { autotune, ..Default::default() })
            .unwrap_or_else(|e| panic!("tests need a GPU adapter: {e}"));
        eprintln!("test adapter: {}", g.describe());
        g
    })
}

pub fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn case_dir(name: &str) -> PathBuf {
    data_dir().join(name)
}

/// Golden case names whose folder starts with `prefix`.
pub fn cases(prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data_dir())
        .expect("tests/data")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

pub fn expected(case: &str) -> WeightSource {
    WeightSource::open_file(case_dir(case).join("expected.safetensors")).expect("expected.safetensors")
}

pub fn inputs(case: &str) -> WeightSource {
    WeightSource::open_file(case_dir(case).join("inputs.safetensors")).expect("inputs.safetensors")
}

/// The golden README's tolerance: relative L2 ≤ `tol` and every element within 1e-4·max|ref|.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(got.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let err = rel_l2(got, want);
    let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_diff = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("{what}: rel L2 {err:.2e}, max |diff| {max_diff:.2e} (max |ref| {max_ref:.2e})");
    assert!(err <= tol, "{what}: relative L2 error {err:.3e} > {tol:.0e}");
    assert!(max_diff <= 1e-4 * max_ref.max(1e-30), "{what}: max abs diff {max_diff:.3e} > 1e-4·{max_ref:.3e}");
}

/// A hostile input must be refused by the crate's own checks: an error from wgpu (`Gpu`) or a lost
/// device would mean a check is missing and the bad value reached the driver.
pub fn assert_refused_by_checks(what: &str, e: &vlm_connectors::Error) {
    use vlm_connectors::Error;
    assert!(
        !matches!(e, Error::Gpu { .. } | Error::DeviceLost(_) | Error::NoAdapter { .. } | Error::RequestDevice { .. }),
        "{what}: reached the driver: {e}"
    );
}

/// Uploads f32 host data as a tensor of `shape` on the shared GPU.
pub fn up(data: &[f32], shape: &[usize]) -> vlm_connectors::Tensor {
    vlm_connectors::Tensor::from_slice(gpu(), data, shape).unwrap()
}

/// Relative L2 error within `tol`, and the same elements finite on both sides.
pub fn check(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(got.iter().zip(want).all(|(a, b)| a.is_finite() == b.is_finite()), "{what}: non-finite mismatch");
    let e = rel_l2(got, want);
    assert!(e <= tol, "{what}: rel L2 {e:.3e} > {tol:.0e}");
}
