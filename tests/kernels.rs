//! Each kernel against its CPU reference on random data over awkward shapes
//! (1, 7, 63, 65, 257, 577; non-multiples of every tile size).

mod common;
use common::{check, gpu, up};

use vlm_connectors::kernels::attention::{record_attention, AttnOpts, Heads};
use vlm_connectors::kernels::elementwise::{add_rows_cpu, copy_rows_cpu, record_activation, record_add_rows, record_copy_rows};
use vlm_connectors::kernels::gemm::{linear_cpu, record_gemm_into, record_linear, GemmVariant, Residual};
use vlm_connectors::kernels::layernorm::{layernorm_cpu, record_layernorm, record_rmsnorm, rmsnorm_cpu};
use vlm_connectors::kernels::Activation;
use vlm_connectors::kernels::Variant;
use vlm_connectors::util::Rng;
use vlm_connectors::{Recorder, Tensor};

#[test]
fn gemm_matches_cpu_over_awkward_shapes() {
    let g = gpu();
    let mut rng = Rng::new(11);
    let shapes = [
        (1, 1, 1),
        (1, 63, 65),
        (7, 65, 63),
        (7, 1000, 1),
        (577, 63, 1000),
        (577, 1000, 65),
        (65, 1000, 1000),
        (257, 1, 7),
        (129, 257, 130),
        (7, 2049, 65), // deep K over few tiles: split-K's case (15 splits of 144)
    ];
    for &(m, k, n) in &shapes {
        for (bias, variant) in [
            (false, GemmVariant::T64),
            (true, GemmVariant::T64),
            (false, GemmVariant::T128),
            (true, GemmVariant::T128),
            (true, GemmVariant::Reg8),
            (true, GemmVariant::SplitK),
        ] {
            let x = rng.vec(m * k, 1.0);
            let w = rng.vec(n * k, 1.0 / (k as f32).sqrt());
            let b = rng.vec(n, 0.5);
            let mut rec = Recorder::new(g);
            let bt = up(&b, &[n]);
            let y = up(&vec![f32::NAN; m * n], &[m, n]); // every element must be written
            record_gemm_into(
                &mut rec,
                &up(&x, &[m, k]),
                &up(&w, &[n, k]),
                bias.then_some(&bt),
                &y,
                0,
                Activation::Identity,
                None,
                Some(variant),
            )
            .unwrap();
            rec.submit().unwrap();
            let want = linear_cpu(&x, &w, bias.then_some(&b[..]), m, k, n, Activation::Identity, None);
            check(&format!("gemm {variant:?} {m}x{k}x{n} bias={bias}"), &y.to_vec(g).unwrap(), &want, 1e-5);
        }
    }
}

#[test]
fn gemm_fused_activations_and_residual_in_every_variant() {
    let g = gpu();
    let mut rng = Rng::new(12);
    let (m, k, n) = (65, 263, 129); // K deep enough for split-K to split (2 ways)
    let x = rng.vec(m * k, 2.0);
    let w = rng.vec(n * k, 0.3);
    let b = rng.vec(n, 1.0);
    let r = rng.vec(m * n, 1.0);
    let (xt, wt, bt, rt) = (up(&x, &[1, m, k]), up(&w, &[n, k]), up(&b, &[n]), up(&r, &[m, n]));
    for &v in GemmVariant::ALL.iter().filter(|v| v.runs_on(g, vlm_connectors::DType::F32)) {
        for act in Activation::ALL {
            let y = Tensor::empty(g, &[1, m, n], vlm_connectors::DType::F32).unwrap();
            let mut rec = Recorder::new(g);
            record_gemm_into(&mut rec, &xt, &wt, Some(&bt), &y, 0, act, None, Some(v)).unwrap();
            rec.submit().unwrap();
            check(&format!("gemm {v:?} +{act:?}"), &y.to_vec(g).unwrap(), &linear_cpu(&x, &w, Some(&b), m, k, n, act, None), 1e-5);
        }
        for alpha in [0.0f32, 0.37, 1.0] {
            let y = Tensor::empty(g, &[m, n], vlm_connectors::DType::F32).unwrap();
            let mut rec = Recorder::new(g);
            record_gemm_into(&mut rec, &xt, &wt, Some(&bt), &y, 0, Activation::Identity, Some(Residual { res: &rt, alpha }), Some(v))
                .unwrap();
            rec.submit().unwrap();
            let got = y.to_vec(g).unwrap();
            if alpha == 0.0 {
                assert_eq!(got, r, "{v:?}: alpha = 0 must give the residual back exactly");
            }
            let want = linear_cpu(&x, &w, Some(&b), m, k, n, Activation::Identity, Some((&r, alpha)));
            check(&format!("gemm {v:?} residual α={alpha}"), &got, &want, 1e-5);
        }
        // A column block of a wider output (what a split weight writes): y[:, 7..7 + n] of [m, n + 20],
        // with the residual read at the same columns; the other columns stay untouched.
        let ldy = n + 20;
        let wide = rng.vec(m * ldy, 1.0);
        let (yt, rw) = (up(&wide, &[m, ldy]), up(&wide, &[m, ldy]));
        let mut rec = Recorder::new(g);
        record_gemm_into(&mut rec, &xt, &wt, None, &yt, 7, Activation::Gelu, Some(Residual { res: &rw, alpha: 0.5 }), Some(v)).unwrap();
        rec.submit().unwrap();
        let got = yt.to_vec(g).unwrap();
        let block: Vec<f32> = (0..m * n).map(|i| wide[(i / n) * ldy + 7 + i % n]).collect();
        let want = linear_cpu(&x, &w, None, m, k, n, Activation::Gelu, Some((&block, 0.5)));
        let got_block: Vec<f32> = (0..m * n).map(|i| got[(i / n) * ldy + 7 + i % n]).collect();
        check(&format!("gemm {v:?} y_off"), &got_block, &want, 1e-5);
        assert!((0..m * ldy).filter(|i| !(7..7 + n).contains(&(i % ldy))).all(|i| got[i] == wide[i]), "{v:?}: wrote outside its block");
    }
}

#[test]
fn activations_match_f64_reference() {
    let g = gpu();
    // A sweep over [-12, 12] plus random values: covers both tails of erf and tanh.
    let mut xs: Vec<f32> = (0..2401).map(|i| -12.0 + i as f32 * 0.01).collect();
    xs.extend(Rng::new(3).vec(1000, 5.0));
    xs.extend([19.5, 21.0, 25.0, -25.0, 60.0, -60.0]); // softplus threshold, saturated tails
    for act in Activation::ALL {
        let mut rec = Recorder::new(g);
        let y = record_activation(&mut rec, &up(&xs, &[xs.len()]), act).unwrap();
        rec.submit().unwrap();
        let got = y.to_vec(g).unwrap();
        for (x, v) in xs.iter().zip(&got) {
            let want = act.apply(*x as f64);
            let err = (*v as f64 - want).abs();
            // float32 rounding of the value and of x itself: a few ulps of max(|y|, 1e-3·|x|)
            let scale = want.abs().max(1e-3 * (*x as f64).abs()).max(1e-30);
            assert!(err <= 1e-6 * scale.max(1.0) + 4.0 * f32::EPSILON as f64 * scale, "{act:?}({x}) = {v}, want {want} (err {err:e})");
        }
    }
}

#[test]
fn activations_keep_relative_accuracy_at_small_arguments() {
    // Where |y| ≪ 1 the absolute floor above says nothing: tanh's series, softplus' log1p and
    // erfc's tails are checked relative to the value here, down to |x| = 1e-7.
    let g = gpu();
    let xs: Vec<f32> = (0..60).flat_map(|i| [1e-7f32 * 1.3f32.powi(i), -1e-7 * 1.3f32.powi(i)]).filter(|x| x.abs() < 0.5).collect();
    for act in Activation::ALL {
        let mut rec = Recorder::new(g);
        let y = record_activation(&mut rec, &up(&xs, &[xs.len()]), act).unwrap();
        rec.submit().unwrap();
        for (x, v) in xs.iter().zip(y.to_vec(g).unwrap()) {
            let want = act.apply(*x as f64);
            let err = (v as f64 - want).abs();
            assert!(err <= 2e-6 * want.abs() + 1e-37, "{act:?}({x:e}) = {v:e}, want {want:e} (relative {:.1e})", err / want.abs());
        }
    }
}

#[test]
fn erf_gelu_is_accurate_to_1e7() {
    let g = gpu();
    let xs: Vec<f32> = (0..4001).map(|i| -8.0 + i as f32 * 0.004).collect();
    let mut rec = Recorder::new(g);
    let y = record_activation(&mut rec, &up(&xs, &[xs.len()]), Activation::Gelu).unwrap();
    rec.submit().unwrap();
    let got = y.to_vec(g).unwrap();
    let mut worst = 0f64;
    for (x, v) in xs.iter().zip(&got) {
        let want = Activation::Gelu.apply(*x as f64);
        worst = worst.max((*v as f64 - want).abs() / (x.abs() as f64).max(1e-3));
    }
    // |gelu(x) - ref| / |x| bounds the error of Φ(x) = (1 + erf(x/√2))/2
    assert!(worst < 3e-7, "erf error {worst:e}");
}

#[test]
fn layernorm_matches_cpu() {
    let g = gpu();
    let mut rng = Rng::new(5);
    for &(rows, cols) in &[(1, 1), (7, 63), (65, 257), (577, 1000), (3, 2049)] {
        for (eps, with_res) in [(1e-5f32, false), (1e-12, true)] {
            let x: Vec<f32> = rng.vec(rows * cols, 3.0).iter().map(|v| v + 10.0).collect(); // offset mean
            let r = rng.vec(rows * cols, 1.0);
            let gm = rng.vec(cols, 1.0);
            let bt = rng.vec(cols, 1.0);
            let mut rec = Recorder::new(g);
            let rt = up(&r, &[rows, cols]);
            let y = record_layernorm(&mut rec, &up(&x, &[rows, cols]), with_res.then_some(&rt), &up(&gm, &[cols]), &up(&bt, &[cols]), eps)
                .unwrap();
            rec.submit().unwrap();
            let want = layernorm_cpu(&x, with_res.then_some(&r[..]), &gm, &bt, cols, eps);
            check(&format!("layernorm {rows}x{cols} eps={eps}"), &y.to_vec(g).unwrap(), &want, 2e-5);
        }
    }
}

#[test]
fn rmsnorm_matches_cpu() {
    let g = gpu();
    let mut rng = Rng::new(6);
    for &(rows, cols) in &[(1, 1), (7, 8), (63, 65), (65, 257), (577, 1000), (3, 2049)] {
        for (eps, with_res) in [(1e-6f32, false), (1e-5, true)] {
            let x: Vec<f32> = rng.vec(rows * cols, 3.0).iter().map(|v| v + 2.0).collect();
            let r = rng.vec(rows * cols, 1.0);
            let gm = rng.vec(cols, 1.0);
            let mut rec = Recorder::new(g);
            let rt = up(&r, &[rows, cols]);
            let y = record_rmsnorm(&mut rec, &up(&x, &[rows, cols]), with_res.then_some(&rt), &up(&gm, &[cols]), eps).unwrap();
            rec.submit().unwrap();
            let want = rmsnorm_cpu(&x, with_res.then_some(&r[..]), &gm, cols, eps);
            check(&format!("rmsnorm {rows}x{cols} eps={eps}"), &y.to_vec(g).unwrap(), &want, 2e-6);
        }
    }
    // A zero row stays zero (rsqrt(eps) · 0), and a weight of the wrong width is refused by name.
    let mut rec = Recorder::new(g);
    let y = record_rmsnorm(&mut rec, &up(&[0.0; 6], &[2, 3]), None, &up(&[1.0; 3], &[3]), 1e-6).unwrap();
    let e = record_rmsnorm(&mut rec, &up(&[0.0; 6], &[2, 3]), None, &up(&[1.0; 4], &[4]), 1e-6).unwrap_err().to_string();
    assert!(e.contains("rmsnorm weight"), "{e}");
    rec.submit().unwrap();
    assert_eq!(y.to_vec(g).unwrap(), vec![0.0; 6]);
}

#[test]
fn layernorm_constant_rows_give_beta() {
    let g = gpu();
    let (rows, cols) = (4, 100);
    let x = vec![3.25f32; rows * cols];
    let gm = Rng::new(1).vec(cols, 1.0);
    let bt = Rng::new(2).vec(cols, 1.0);
    for eps in [1e-12f32, 1e-5] {
        let mut rec = Recorder::new(g);
        let y = record_layernorm(&mut rec, &up(&x, &[rows, cols]), None, &up(&gm, &[cols]), &up(&bt, &[cols]), eps).unwrap();
        rec.submit().unwrap();
        let got = y.to_vec(g).unwrap();
        for r in 0..rows {
            assert_eq!(&got[r * cols..(r + 1) * cols], &bt[..], "constant row, eps {eps}");
        }
    }
}

#[test]
fn copy_rows_and_add_rows_match_cpu() {
    let g = gpu();
    let mut rng = Rng::new(4);
    // broadcast [1, 7, 65] over a batch of 3, into rows 2..9 of a [3, 12, 65] destination
    let src = rng.vec(7 * 65, 1.0);
    let dst0 = rng.vec(3 * 12 * 65, 1.0);
    let (st, dt) = (up(&src, &[1, 7, 65]), up(&dst0, &[3, 12, 65]));
    let mut rec = Recorder::new(g);
    record_copy_rows(&mut rec, &st, 0, &dt, 2, 7).unwrap();
    rec.submit().unwrap();
    let mut want = dst0.clone();
    copy_rows_cpu(&src, [1, 7, 65], 0, &mut want, [3, 12, 65], 2, 7);
    assert_eq!(dt.to_vec(g).unwrap(), want);
    // per-frame embedding add: rows grouped by 5, 3 frames
    let e = rng.vec(3 * 65, 1.0);
    let x = rng.vec(2 * 3 * 5 * 65, 1.0);
    let xt = up(&x, &[30, 65]);
    let mut rec = Recorder::new(g);
    record_add_rows(&mut rec, &xt, &up(&e, &[3, 65]), 5, 3).unwrap();
    rec.submit().unwrap();
    let mut want = x.clone();
    add_rows_cpu(&mut want, &e, 65, 5, 3);
    assert_eq!(xt.to_vec(g).unwrap(), want);
}

#[test]
fn big_grids_wrap_into_two_dimensions() {
    // > 65535 workgroups of 256 threads: 17M elements
    let g = gpu();
    let n = 65536 * 256 + 77;
    let x: Vec<f32> = (0..n).map(|i| (i % 1000) as f32 - 500.0).collect();
    let mut rec = Recorder::new(g);
    let y = record_activation(&mut rec, &up(&x, &[n]), Activation::Relu).unwrap();
    rec.submit().unwrap();
    let got = y.to_vec(g).unwrap();
    assert!(got.iter().zip(&x).all(|(a, b)| *a == b.max(0.0)));
}

#[test]
fn linear_weights_past_the_binding_limit_are_split_into_row_blocks() {
    // A device whose storage bindings hold only 64 KiB: a 1000 × 65 weight (260 KB) becomes
    // several row blocks, each a GEMM into its column block of the output.
    let g =
        vlm_connectors::Gpu::new_with(vlm_connectors::GpuOptions { cap_storage_binding: Some(64 * 1024), ..Default::default() }).unwrap();
    assert_eq!(g.limits().max_storage_buffer_binding_size, 64 * 1024);
    let mut rng = Rng::new(21);
    let (m, k, n) = (7, 65, 1000);
    let (x, w, b, r) = (rng.vec(m * k, 1.0), rng.vec(n * k, 0.2), rng.vec(n, 0.5), rng.vec(m * n, 1.0));
    let lin = vlm_connectors::nn::Linear::from_host(&g, &w, Some(&b), k, n, vlm_connectors::DType::F32).unwrap();
    assert!(lin.parts.len() >= 4, "expected a split, got {} part(s)", lin.parts.len());
    let xt = Tensor::from_slice(&g, &x, &[1, m, k]).unwrap();
    let rt = Tensor::from_slice(&g, &r, &[1, m, n]).unwrap();
    let mut rec = Recorder::new(&g);
    let y = lin.forward(&mut rec, &xt, Activation::Gelu).unwrap();
    let z = lin.forward_residual(&mut rec, &xt, &rt, 0.5).unwrap();
    rec.submit().unwrap();
    check("split linear", &y.to_vec(&g).unwrap(), &linear_cpu(&x, &w, Some(&b), m, k, n, Activation::Gelu, None), 1e-5);
    check(
        "split linear + residual",
        &z.to_vec(&g).unwrap(),
        &linear_cpu(&x, &w, Some(&b), m, k, n, Activation::Identity, Some((&r, 0.5))),
        1e-5,
    );
    // a tensor past the limit is refused with the limit's name, not a wgpu panic
    let e = Tensor::from_slice(&g, &vec![0.0; 20_000], &[20_000]).err().unwrap().to_string();
    assert!(e.contains("max_storage_buffer_binding_size"), "{e}");
}

#[test]
fn ceiling_kernels_match_cpu() {
    let g = gpu();
    let (threads, iters) = (1000, 37);
    let mut rec = Recorder::new(g);
    let y = vlm_connectors::kernels::ceiling::record_fma_peak(&mut rec, threads, iters).unwrap();
    let src: Vec<f32> = Rng::new(2).vec(4 * 777, 1.0);
    let c = vlm_connectors::kernels::ceiling::record_copy(&mut rec, &up(&src, &[4 * 777])).unwrap();
    rec.submit().unwrap();
    let got = y.to_vec(g).unwrap();
    let want: Vec<f32> = (0..threads).flat_map(|i| vlm_connectors::kernels::ceiling::fma_peak_cpu(i, iters)).collect();
    check("fma_peak", &got, &want, 1e-6);
    assert_eq!(c.to_vec(g).unwrap(), src);
}

#[test]
fn grids_past_the_workgroup_limit_wrap_or_are_refused_by_name() {
    // A device that allows only 16 workgroups per grid dimension.
    let g =
        vlm_connectors::Gpu::new_with(vlm_connectors::GpuOptions { cap_workgroups_per_dimension: Some(16), ..Default::default() }).unwrap();
    // 1-D kernels wrap into a 2-D grid: 100 × 256 elements need 100 workgroups.
    let x: Vec<f32> = (0..25_600).map(|i| (i % 13) as f32 - 6.0).collect();
    let xt = Tensor::from_slice(&g, &x, &[x.len()]).unwrap();
    let mut rec = Recorder::new(&g);
    let y = record_activation(&mut rec, &xt, Activation::Relu).unwrap();
    rec.submit().unwrap();
    assert!(y.to_vec(&g).unwrap().iter().zip(&x).all(|(a, b)| *a == b.max(0.0)));
    // a GEMM whose rows need 17 tiles of 64 is refused with the limit's name, not a wgpu panic
    let (m, k, n) = (17 * 64, 4, 4);
    let mut rec = Recorder::new(&g);
    let e = record_linear(
        &mut rec,
        &Tensor::from_slice(&g, &vec![0.0; m * k], &[m, k]).unwrap(),
        &Tensor::from_slice(&g, &vec![0.0; n * k], &[n, k]).unwrap(),
        None,
        Activation::Identity,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("max_compute_workgroups_per_dimension"), "{e}");
    // attention over more query blocks (8 rows each) than the grid allows, likewise
    let q = Tensor::from_slice(&g, &vec![0.0; (16 * 8 + 1) * 8], &[1, 16 * 8 + 1, 8]).unwrap();
    let e = record_attention(&mut rec, Heads::all(&q), Heads::all(&q), Heads::all(&q), 1, 8, 1.0, AttnOpts::default(), None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_compute_workgroups_per_dimension"), "{e}");
}

#[test]
fn split_k_plans_fill_a_large_gpu_only_where_the_tiles_do_not() {
    use vlm_connectors::kernels::gemm::{split_k, TARGET_WORKGROUPS};
    // Q-Former 32×768×768 (12 tiles): 6 splits (K / 128 caps it); LLaVA 576×1024×4096: 576 tiles, none.
    assert_eq!(split_k(32, 768, 768), 6);
    assert_eq!(split_k(576, 4096, 1024), 1);
    assert_eq!(split_k(64, 64, 100), 1, "K below 128 does not split");
    assert_eq!(split_k(0, 64, 4096), 1);
    let s = split_k(64, 1024, 8192);
    assert!(16 * s >= TARGET_WORKGROUPS && 8192 / s >= 128, "{s}");
}

#[test]
fn every_seed_gemm_fills_a_large_gpu_or_splits_k() {
    use vlm_connectors::kernels::gemm::{split_k, TARGET_WORKGROUPS};
    // (M, N, K) of the demo connectors' GEMMs: LLaVA-1.5's projector; the Q-Former's query-side
    // projections, FFN and language projection, and its cross-attention K/V over 257 ViT-g tokens;
    // the Perceiver's (4 media × 64 latents, and K/V over 4 × (257 + 64) tokens) and FFN; the gated
    // block's (128 text tokens; K/V over 4 × 64 media tokens).
    let seeds: [(usize, usize, usize); 17] = [
        (576, 4096, 1024),
        (576, 4096, 4096),
        (32, 768, 768),
        (32, 3072, 768),
        (32, 768, 3072),
        (32, 2560, 768),
        (257, 1536, 1408),
        (256, 512, 1024),
        (1284, 1024, 1024),
        (256, 1024, 512),
        (256, 4096, 1024),
        (256, 1024, 4096),
        (128, 512, 4096),
        (256, 1024, 1024),
        (128, 4096, 512),
        (128, 16384, 4096),
        (128, 4096, 16384),
    ];
    for (m, n, k) in seeds {
        let tiles = m.div_ceil(64) * n.div_ceil(64);
        assert!(tiles >= TARGET_WORKGROUPS || split_k(m, n, k) > 1, "{m}×{n}×{k}: {tiles} tiles and no split");
    }
}
