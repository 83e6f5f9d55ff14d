//! Every kernel in f16 (storage f16, math and accumulation f32) against its CPU reference on the
//! same f16-rounded inputs, over awkward shapes; the tolerance is f16's output rounding (2^-11
//! relative) with room for a few roundings of intermediates, not f32's.

mod common;
use common::gpu;

use vlm_connectors::kernels::attention::{attention_cpu, record_attention, AttnOpts, AttnVariant, Heads};
use vlm_connectors::kernels::elementwise::{gated_activation_cpu, record_activation, record_gated_activation};
use vlm_connectors::kernels::gemm::{linear_cpu, record_gemm_into, GemmVariant, Residual};
use vlm_connectors::kernels::layernorm::{layernorm_cpu, record_layernorm, record_rmsnorm, rmsnorm_cpu};
use vlm_connectors::kernels::pool::{pool2d_cpu, record_pool2d, record_resize_bilinear, resize_bilinear_cpu, PoolMode};
use vlm_connectors::kernels::{rel_l2, Activation, Variant};
use vlm_connectors::util::Rng;
use vlm_connectors::{DType, Recorder, Tensor};

const TOL: f64 = 2e-3;

/// Rounds to f16 and back, as an upload in f16 does.
fn h(v: &[f32]) -> Vec<f32> {
    v.iter().map(|x| half::f16::from_f32(*x).to_f32()).collect()
}

fn up16(v: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_host(gpu(), v, shape, DType::F16).unwrap()
}

fn check(what: &str, got: &Tensor, want: &[f32]) {
    assert_eq!(got.dtype(), DType::F16, "{what}: output dtype");
    let e = rel_l2(&got.to_vec(gpu()).unwrap(), want);
    assert!(e <= TOL, "{what}: rel L2 {e:.2e} > {TOL:e}");
}

fn skip() -> bool {
    let f16 = gpu().features().contains(vlm_connectors::wgpu::Features::SHADER_F16);
    if !f16 {
        eprintln!("adapter without SHADER_F16: f16 kernels not run here");
    }
    !f16
}

#[test]
fn gemm_f16_matches_cpu_in_every_variant() {
    if skip() {
        return;
    }
    let g = gpu();
    let mut rng = Rng::new(16);
    for &(m, k, n) in &[(1, 1, 1), (7, 63, 65), (65, 257, 7), (130, 100, 129)] {
        let (x, w, b, r) = (h(&rng.vec(m * k, 1.0)), h(&rng.vec(n * k, 0.2)), h(&rng.vec(n, 0.5)), h(&rng.vec(m * n, 1.0)));
        let want = linear_cpu(&x, &w, Some(&b), m, k, n, Activation::Gelu, Some((&r, 0.5)));
        for &variant in GemmVariant::ALL.iter().filter(|v| v.runs_on(g, DType::F16)) {
            let mut rec = Recorder::new(g);
            let y = Tensor::empty(g, &[m, n], DType::F16).unwrap();
            let rt = up16(&r, &[m, n]);
            let res = Residual { res: &rt, alpha: 0.5 };
            record_gemm_into(
                &mut rec,
                &up16(&x, &[m, k]),
                &up16(&w, &[n, k]),
                Some(&up16(&b, &[n])),
                &y,
                0,
                Activation::Gelu,
                Some(res),
                Some(variant),
            )
            .unwrap();
            rec.submit().unwrap();
            check(&format!("gemm {variant:?} {m}x{k}x{n}"), &y, &want);
        }
    }
}

#[test]
fn attention_f16_matches_cpu_with_masks_in_both_variants() {
    if skip() {
        return;
    }
    let g = gpu();
    let mut rng = Rng::new(17);
    for &(b, lq, lk, heads, d) in &[(1, 1, 1, 1, 8), (2, 9, 65, 2, 16), (1, 33, 257, 3, 64)] {
        let w = heads * d;
        let (q, k, v) = (h(&rng.vec(b * lq * w, 1.0)), h(&rng.vec(b * lk * w, 1.0)), h(&rng.vec(b * lk * w, 1.0)));
        // A key mask at f16's lowest finite value (DType::lowest, finfo(f16).min), one key always kept.
        let mask: Vec<f32> = (0..b * lk).map(|j| if j % 3 == 1 { DType::F16.lowest() } else { h(&[rng.uniform(-1.0, 0.0)])[0] }).collect();
        let want = attention_cpu(&q, &k, &v, b, lq, lk, heads, d, 0.3, Some(&mask), None);
        for &variant in AttnVariant::ALL {
            let mut rec = Recorder::new(g);
            let (qt, kt, vt, mt) = (up16(&q, &[b, lq, w]), up16(&k, &[b, lk, w]), up16(&v, &[b, lk, w]), up16(&mask, &[b, lk]));
            let opts = AttnOpts { mask: Some(&mt), ..Default::default() };
            let o =
                record_attention(&mut rec, Heads::all(&qt), Heads::all(&kt), Heads::all(&vt), heads, d, 0.3, opts, Some(variant)).unwrap();
            rec.submit().unwrap();
            check(&format!("attention {variant:?} b{b} lq{lq} lk{lk} d{d}"), &o, &want);
        }
    }
}

#[test]
fn norms_activations_and_resampling_f16_match_cpu() {
    if skip() {
        return;
    }
    let g = gpu();
    let mut rng = Rng::new(18);
    for &(rows, cols) in &[(1, 1), (7, 65), (65, 1000)] {
        let (x, gm, bt) = (h(&rng.vec(rows * cols, 2.0)), h(&rng.vec(cols, 1.0)), h(&rng.vec(cols, 1.0)));
        let mut rec = Recorder::new(g);
        let xt = up16(&x, &[rows, cols]);
        let ln = record_layernorm(&mut rec, &xt, None, &up16(&gm, &[cols]), &up16(&bt, &[cols]), 1e-5).unwrap();
        let rms = record_rmsnorm(&mut rec, &xt, None, &up16(&gm, &[cols]), 1e-6).unwrap();
        let act = record_activation(&mut rec, &xt, Activation::GeluTanh).unwrap();
        rec.submit().unwrap();
        if cols > 1 {
            check(&format!("layernorm {rows}x{cols}"), &ln, &layernorm_cpu(&x, None, &gm, &bt, cols, 1e-5));
        }
        check(&format!("rmsnorm {rows}x{cols}"), &rms, &rmsnorm_cpu(&x, None, &gm, cols, 1e-6));
        let want: Vec<f32> = x.iter().map(|v| Activation::GeluTanh.apply(*v as f64) as f32).collect();
        check(&format!("gelu_tanh {rows}x{cols}"), &act, &want);
    }
    let x = h(&rng.vec(3 * 2 * 63, 2.0));
    let mut rec = Recorder::new(g);
    let y = record_gated_activation(&mut rec, &up16(&x, &[3, 126]), Activation::Silu).unwrap();
    rec.submit().unwrap();
    check("gated silu", &y, &gated_activation_cpu(&x, 63, Activation::Silu));
    let x = h(&rng.vec(2 * 7 * 9 * 5, 1.0));
    let mut rec = Recorder::new(g);
    let xt = up16(&x, &[2, 63, 5]);
    let p = record_pool2d(&mut rec, &xt, [7, 9], 3, PoolMode::Max).unwrap();
    let a = record_pool2d(&mut rec, &xt, [7, 9], 2, PoolMode::Average).unwrap();
    let r = record_resize_bilinear(&mut rec, &xt, [7, 9], [4, 5]).unwrap();
    rec.submit().unwrap();
    check("max pool 3", &p, &pool2d_cpu(&x, 2, [7, 9], 5, 3, PoolMode::Max));
    check("avg pool 2", &a, &pool2d_cpu(&x, 2, [7, 9], 5, 2, PoolMode::Average));
    check("resize", &r, &resize_bilinear_cpu(&x, 2, [7, 9], 5, [4, 5]));
}

/// Every golden case loaded in f16 (`LoadOptions::dtype`) against the same PyTorch outputs, at
/// the f16 tolerance (rel-L2 ≤ 5e-3).
#[test]
fn every_golden_case_matches_in_f16() {
    use vlm_connectors::checkpoint::WeightSource;
    use vlm_connectors::connectors::{Connector, LoadOptions};
    if skip() {
        return;
    }
    let g = gpu();
    let mut checked = 0;
    for entry in std::fs::read_dir(common::data_dir()).unwrap() {
        let dir = entry.unwrap().path();
        let (inputs, expected) = (dir.join("inputs.safetensors"), dir.join("expected.safetensors"));
        if !inputs.exists() || !expected.exists() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let c = Connector::from_dir_opts(g, &dir, &LoadOptions { dtype: DType::F16, ..Default::default() })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.dtype(), DType::F16);
        let outs = c.run(g, &WeightSource::open_file(&inputs).unwrap()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = WeightSource::open_file(&expected).unwrap();
        for o in outs.iter().filter(|o| want.contains(&o.name)) {
            let w = want.get_any(&o.name).unwrap();
            assert_eq!(o.shape, w.shape, "{name}/{}", o.name);
            let e = rel_l2(&o.data, &w.data);
            eprintln!("{name}/{}: f16 rel L2 {e:.2e}", o.name);
            assert!(e <= 5e-3, "{name}/{}: f16 rel L2 {e:.2e} > 5e-3", o.name);
        }
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} golden cases found");
}

#[test]
fn inputs_in_another_dtype_are_refused_by_name() {
    use vlm_connectors::connectors::{Connector, Inputs, LoadOptions};
    if skip() {
        return;
    }
    let g = gpu();
    let c = Connector::from_dir_opts(g, common::case_dir("llava_tiny"), &LoadOptions { dtype: DType::F16, ..Default::default() }).unwrap();
    let x = Tensor::from_slice(g, &vec![0.5; 2 * 36 * 64], &[2, 36, 64]).unwrap();
    let e = c.run_inputs(g, &Inputs::new().with_tensor("image_features", x)).unwrap_err().to_string();
    assert!(e.contains("image_features") && e.contains("F32") && e.contains("F16"), "{e}");
}
