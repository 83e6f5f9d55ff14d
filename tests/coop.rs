//! The cooperative-matrix GEMM (`gemm_coop8` / `gemm_coop16`, f16 in, f32 accumulation) against
//! the CPU reference on f16-rounded inputs over awkward shapes, with every epilogue, and a golden
//! connector through it. It needs an adapter with a configuration the kernels fit
//! (`Gpu::coop_tile`): Mesa ≥ 26 lavapipe (`scripts/coop_lavapipe.sh` runs these tests there with
//! `VLMC_REQUIRE_COOP=1`, which turns "not available" into a failure), NVIDIA / AMD on Vulkan, Apple
//! GPUs on Metal. Elsewhere each test says it did not run.

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
        assert!(std::env::var("VLMC_REQUIRE_COOP").is_err(), "VLMC_REQUIRE_COOP is set, but {why}");
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

/// Unforced f16 GEMMs take the cooperative kernel on such an adapter; f32 ones do not; a golden
/// connector loaded in f16 matches PyTorch through it.
#[test]
fn coop_gemm_is_the_f16_plan_and_runs_a_golden_connector() {
    let Some(variant) = coop() else { return };
    let g = gpu();
    let mut rec = Recorder::new(g);
    let y = Tensor::empty(g, &[3, 5], DType::F16).unwrap();
    record_gemm_into(&mut rec, &up16(&[0.5; 12], &[3, 4]), &up16(&[0.25; 20], &[5, 4]), None, &y, 0, Activation::Identity, None, None)
        .unwrap();
    assert_eq!(rec.labels(), [variant.kernel().name]);
    rec.discard();
    use vlm_connectors::checkpoint::WeightSource;
    use vlm_connectors::connectors::{Connector, LoadOptions};
    for case in ["llava_tiny", "blip2_tiny"] {
        let dir = data_dir().join(case);
        let c = Connector::from_dir_opts(g, &dir, &LoadOptions { dtype: DType::F16, ..Default::default() }).unwrap();
        let got = c.run(g, &WeightSource::open_file(dir.join("inputs.safetensors")).unwrap()).unwrap();
        let want = WeightSource::open_file(dir.join("expected.safetensors")).unwrap().get_any("output").unwrap();
        let e = rel_l2(&got.get("output").unwrap().data, &want.data);
        assert!(e <= 5e-3, "{case} in f16 through {variant:?}: rel L2 {e:.2e}");
    }
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
