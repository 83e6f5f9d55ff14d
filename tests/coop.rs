//! The cooperative-matrix GEMM (`gemm_coop8` / `gemm_coop16`, f16 in, f32 accumulation) against
//! the CPU reference on f16-rounded inputs over awkward shapes, with every epilogue, and golden
//! connectors through it. It needs an adapter with a configuration the kernels fit
//! (`Gpu::coop_tile`): Mesa ≥ 26 lavapipe (`scripts/coop_lavapipe.sh` runs these tests there with
//! `VLMC_REQUIRE_COOP=1`, which turns "not available" into a failure) or NVIDIA on Vulkan.
//! Elsewhere each test says it did not run. Which adapters qualify is tested on synthetic
//! configurations everywhere.

mod common;
use common::{data_dir, gpu};

use vlm_connectors::kernels::gemm::{linear_cpu, record_gemm_into, GemmVariant, Residual};
use vlm_connectors::kernels::{rel_l2, Activation, Variant};
use vlm_connectors::util::Rng;
use vlm_connectors::{DType, Recorder, Tensor};

/// The coop variant this adapter runs, or `None` (then the test says so, and fails under
/// `VLMC_REQUIRE_COOP=1`).
fn coop() -> Option<GemmVariant> {
    let g = gpu();
    let v = match g.coop_tile() {
        Some(16) => Some(GemmVariant::Coop16),
        Some(8) => Some(GemmVariant::Coop8),
        _ => None,
    };
    if v.is_none() {
        let why = format!("{}: no cooperative-matrix configuration the GEMM kernels fit; coop tests not run", g.describe());
        let required = std::env::var("VLMC_REQUIRE_COOP").is_ok_and(|v| !v.is_empty() && v != "0");
        assert!(!required, "VLMC_REQUIRE_COOP is set, but {why}");
        eprintln!("{why}");
    }
    v
}

fn h(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect()
}

fn up16(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_host(gpu(), v, shape, DType::F16).unwrap()
}

#[test]
fn coop_gemm_matches_cpu_over_awkward_shapes_and_epilogues() {
    let Some(variant) = coop() else { return };
    let g = gpu();
    let mut rng = Rng::new(26);
    let shapes = [(1, 1, 1), (1, 63, 65), (7, 65, 63), (63, 257, 65), (65, 577, 7), (257, 8, 16), (577, 64, 129), (16, 1024, 130)];
    for &(m, k, n) in &shapes {
        let (x, w, b, r) = (h(&rng.vec(m * k, 1.0)), h(&rng.vec(n * k, 0.2)), h(&rng.vec(n, 0.5)), h(&rng.vec(m * n, 1.0)));
        for (act, bias, res) in [(Activation::Identity, false, false), (Activation::Gelu, true, false), (Activation::Silu, true, true)] {
            let want = linear_cpu(&x, &w, bias.then_some(&b[..]), m, k, n, act, res.then_some((&r[..], 0.5)));
            let y = Tensor::empty(g, &[m, n], DType::F16).unwrap();
            let (bt, rt) = (up16(&b, &[n]), up16(&r, &[m, n]));
            let residual = res.then_some(Residual { res: &rt, alpha: 0.5 });
            let mut rec = Recorder::new(g);
            let xt = up16(&x, &[m, k]);
            record_gemm_into(&mut rec, &xt, &up16(&w, &[n, k]), bias.then_some(&bt), &y, 0, act, residual, Some(variant)).unwrap();
            assert_eq!(rec.labels(), [variant.kernel().name]);
            rec.submit().unwrap();
            let e = rel_l2(&y.to_vec(g).unwrap(), &want);
            assert!(e <= 2e-3, "{variant:?} {m}×{k}×{n} {act:?} bias={bias} res={res}: rel L2 {e:.2e}");
        }
    }
}

/// With `VLMC_KERNELS=gemm=coopT` (here through `GpuOptions::kernels`) f16 GEMMs take the
/// cooperative kernel and f32 ones, which it cannot run, keep the plan; golden connectors match
/// PyTorch that way in f16 (through coop) and f32. Without forcing, coop is not the untuned plan.
#[test]
fn coop_gemm_runs_golden_connectors_when_forced() {
    let Some(variant) = coop() else { return };
    use vlm_connectors::checkpoint::WeightSource;
    use vlm_connectors::connectors::{Connector, LoadOptions};
    let autotune = vlm_connectors::runtime::tune::AutotuneSettings { enabled: false, cache: None };
    let forced = format!("gemm={}", variant.name());
    let g = vlm_connectors::Gpu::new_with(vlm_connectors::GpuOptions { kernels: forced, autotune, ..Default::default() }).unwrap();
    let gemm = |g: &vlm_connectors::Gpu, dtype: DType| {
        let mut rec = Recorder::new(g);
        let t = |n: usize| Tensor::from_host(g, &vec![0.5; n * 4], &[n, 4], dtype).unwrap();
        let y = Tensor::empty(g, &[3, 5], dtype).unwrap();
        record_gemm_into(&mut rec, &t(3), &t(5), None, &y, 0, Activation::Identity, None, None).unwrap();
        let labels = rec.labels();
        rec.discard();
        labels
    };
    assert_eq!(gemm(&g, DType::F16), [variant.kernel().name]);
    assert_ne!(gemm(&g, DType::F32), [variant.kernel().name]);
    assert_ne!(gemm(gpu(), DType::F16), [variant.kernel().name], "coop is the tuner's candidate, not the untuned plan");
    for case in ["llava_tiny", "blip2_tiny"] {
        let dir = data_dir().join(case);
        let want = WeightSource::open_file(dir.join("expected.safetensors")).unwrap().get_any("output").unwrap();
        for (dtype, tol) in [(DType::F16, 5e-3), (DType::F32, 1e-5)] {
            let c = Connector::from_dir_opts(&g, &dir, &LoadOptions { dtype, ..Default::default() }).unwrap();
            let got = c.run(&g, &WeightSource::open_file(dir.join("inputs.safetensors")).unwrap()).unwrap();
            let e = rel_l2(&got.get("output").unwrap().data, &want.data);
            assert!(e <= tol, "{case} in {dtype:?} with {variant:?} forced: rel L2 {e:.2e}");
        }
    }
}

/// Which adapters get a cooperative tile: a T×T×T f16 → f32 configuration and subgroups of
/// exactly the kernel's workgroup width (8 lanes for T = 8, 32 for T = 16), with the features.
#[test]
fn coop_tile_follows_configurations_and_subgroup_widths() {
    use vlm_connectors::runtime::gpu::coop_tile_of;
    use vlm_connectors::wgpu::{CooperativeMatrixProperties as P, CooperativeScalarType as S, Features};
    let cfg = |t: u32, ab: S, cr: S| P { m_size: t, n_size: t, k_size: t, ab_type: ab, cr_type: cr, saturating_accumulation: false };
    let f = Features::EXPERIMENTAL_COOPERATIVE_MATRIX | Features::SHADER_F16;
    let lavapipe = [cfg(8, S::F16, S::F16), cfg(8, S::F16, S::F32)];
    let nvidia = [cfg(16, S::F16, S::F16), cfg(16, S::F16, S::F32), cfg(8, S::F16, S::F32)];
    assert_eq!(coop_tile_of(&lavapipe, [8, 8], f), Some(8));
    assert_eq!(coop_tile_of(&nvidia, [32, 32], f), Some(16));
    assert_eq!(coop_tile_of(&nvidia, [32, 64], f), None, "AMD: the width is not fixed");
    assert_eq!(coop_tile_of(&lavapipe, [4, 64], f), None, "Metal as wgpu reports it");
    assert_eq!(coop_tile_of(&[cfg(16, S::F16, S::F16)], [32, 32], f), None, "f16 accumulation only");
    assert_eq!(coop_tile_of(&lavapipe, [8, 8], Features::EXPERIMENTAL_COOPERATIVE_MATRIX), None, "no SHADER_F16");
    assert_eq!(coop_tile_of(&lavapipe, [8, 8], Features::SHADER_F16), None, "no cooperative-matrix feature");
    assert_eq!(coop_tile_of(&[], [8, 8], f), None);
}

/// Forcing a cooperative variant the adapter cannot run is an error naming what it needs.
#[test]
fn coop_variant_without_its_configuration_is_an_error() {
    let g = gpu();
    if !g.features().contains(vlm_connectors::wgpu::Features::SHADER_F16) {
        eprintln!("adapter without SHADER_F16: the f16 coop error path is not run here");
        return;
    }
    let missing = [GemmVariant::Coop8, GemmVariant::Coop16].into_iter().find(|v| !v.runs_on(g, DType::F16)).expect("one tile at most");
    let mut rec = Recorder::new(g);
    let y = Tensor::empty(g, &[2, 2], DType::F16).unwrap();
    let e = record_gemm_into(
        &mut rec,
        &up16(&[1.0; 4], &[2, 2]),
        &up16(&[1.0; 4], &[2, 2]),
        None,
        &y,
        0,
        Activation::Identity,
        None,
        Some(missing),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(missing.name()) && e.contains("cooperative-matrix configuration"), "{e}");
    rec.discard();
}

/// A forced (or cached) cooperative variant the device cannot run in a dtype does not break that
/// dtype's GEMMs: the plan runs instead (here `gemm=coop16`, which no adapter with 8-wide or
/// unfixed subgroups runs).
#[test]
fn a_forced_coop_variant_that_cannot_run_falls_back_to_the_plan() {
    let autotune = vlm_connectors::runtime::tune::AutotuneSettings { enabled: false, cache: None };
    let g = vlm_connectors::Gpu::new_with(vlm_connectors::GpuOptions { kernels: "gemm=coop16".into(), autotune, ..Default::default() })
        .unwrap();
    if GemmVariant::Coop16.runs_on(&g, DType::F16) {
        eprintln!("{}: runs coop16; the fallback is checked on other adapters", g.describe());
        return;
    }
    let dtypes = [DType::F32, DType::F16];
    for dtype in dtypes.into_iter().filter(|&d| d == DType::F32 || g.features().contains(vlm_connectors::wgpu::Features::SHADER_F16)) {
        let mut rec = Recorder::new(&g);
        let t = |n: usize| Tensor::from_host(&g, &vec![0.5; n * 4], &[n, 4], dtype).unwrap();
        let y = Tensor::empty(&g, &[3, 5], dtype).unwrap();
        record_gemm_into(&mut rec, &t(3), &t(5), None, &y, 0, Activation::Identity, None, None).unwrap();
        assert_eq!(rec.labels(), ["gemm"], "{dtype:?}");
        rec.submit().unwrap();
        assert_eq!(y.to_vec(&g).unwrap(), vec![1.0; 15]);
    }
}
