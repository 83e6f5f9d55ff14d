//! Each kernel against its CPU reference on random data over awkward shapes
//! (1, 7, 63, 65, 257, 577; non-multiples of every tile size).

mod common;
use common::gpu;

use vlm_connectors::kernels::attention::{
    attention_cpu, media_ranges_cpu, pack_locations, record_attention, record_media_ranges, AttnOpts, AttnVariant, Heads,
};
use vlm_connectors::kernels::elementwise::{add_rows_cpu, copy_rows_cpu, record_activation, record_add_rows, record_copy_rows};
use vlm_connectors::kernels::gemm::{linear_cpu, record_gemm_into, record_linear, GemmVariant, Residual};
use vlm_connectors::kernels::layernorm::{layernorm_cpu, record_layernorm};
use vlm_connectors::kernels::Variant;
use vlm_connectors::kernels::{rel_l2, Activation};
use vlm_connectors::util::Rng;
use vlm_connectors::{Recorder, Tensor};

fn up(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(gpu(), data, shape).unwrap()
}

fn check(what: &str, got: &[f32], want: &[f32], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(got.iter().zip(want).all(|(a, b)| a.is_finite() == b.is_finite()), "{what}: non-finite mismatch");
    let e = rel_l2(got, want);
    assert!(e <= tol, "{what}: rel L2 {e:.3e} > {tol:.0e}");
}

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
    ];
    for &(m, k, n) in &shapes {
        for (bias, variant) in [
            (false, GemmVariant::T64),
            (true, GemmVariant::T64),
            (false, GemmVariant::T128),
            (true, GemmVariant::T128),
            (true, GemmVariant::Reg8),
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
fn gemm_fused_activations_and_residual() {
    let g = gpu();
    let mut rng = Rng::new(12);
    let (m, k, n) = (65, 63, 129);
    let x = rng.vec(m * k, 2.0);
    let w = rng.vec(n * k, 0.3);
    let b = rng.vec(n, 1.0);
    let r = rng.vec(m * n, 1.0);
    for act in Activation::ALL {
        let mut rec = Recorder::new(g);
        let y = record_linear(&mut rec, &up(&x, &[1, m, k]), &up(&w, &[n, k]), Some(&up(&b, &[n])), act, None).unwrap();
        rec.submit().unwrap();
        assert_eq!(y.shape(), &[1, m, n]);
        check(&format!("gemm+{act:?}"), &y.to_vec(g).unwrap(), &linear_cpu(&x, &w, Some(&b), m, k, n, act, None), 1e-5);
    }
    for alpha in [0.0f32, 0.37, 1.0] {
        let mut rec = Recorder::new(g);
        let rt = up(&r, &[m, n]);
        let y = record_linear(
            &mut rec,
            &up(&x, &[m, k]),
            &up(&w, &[n, k]),
            Some(&up(&b, &[n])),
            Activation::Identity,
            Some(Residual { res: &rt, alpha }),
        )
        .unwrap();
        rec.submit().unwrap();
        let got = y.to_vec(g).unwrap();
        if alpha == 0.0 {
            assert_eq!(got, r, "alpha = 0 must give the residual back exactly");
        }
        check(
            &format!("gemm residual α={alpha}"),
            &got,
            &linear_cpu(&x, &w, Some(&b), m, k, n, Activation::Identity, Some((&r, alpha))),
            1e-5,
        );
    }
}

#[test]
fn activations_match_f64_reference() {
    let g = gpu();
    // A sweep over [-12, 12] plus random values: covers both tails of erf and tanh.
    let mut xs: Vec<f32> = (0..2401).map(|i| -12.0 + i as f32 * 0.01).collect();
    xs.extend(Rng::new(3).vec(1000, 5.0));
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

fn run_attention(b: usize, lq: usize, lk: usize, heads: usize, d: usize, scale_logits: f32, masked: bool, seed: u64) {
    let g = gpu();
    let mut rng = Rng::new(seed);
    let w = heads * d;
    let q = rng.vec(b * lq * w, scale_logits);
    let k = rng.vec(b * lk * w, 1.0);
    let v = rng.vec(b * lk * w, 1.0);
    let mask: Vec<f32> = (0..b * lk).map(|i| if masked && i % 3 == 1 { -1e4 } else { rng.uniform(-1.0, 0.0) }).collect();
    let scale = 1.0 / (d as f32).sqrt();
    let (qt, kt, vt, mt) = (up(&q, &[b, lq, w]), up(&k, &[b, lk, w]), up(&v, &[b, lk, w]), up(&mask, &[b, lk]));
    let opts = AttnOpts { mask: masked.then_some(&mt), ranges: None };
    let want = attention_cpu(&q, &k, &v, b, lq, lk, heads, d, scale, masked.then_some(&mask[..]), None);
    // softmax(s) moves by |δs| when the logits move by δs; float32 rounding of logits of size L is
    // ~ε·L, so the achievable relative error is max(1e-5, a few ε·L). L ≈ 1 in the ordinary cases.
    let max_logit = (0..b * lq)
        .flat_map(|r| (0..heads).map(move |h| (r, h)))
        .map(|(r, h)| {
            let bi = r / lq;
            (0..lk)
                .map(|j| (0..d).map(|c| q[r * w + h * d + c] as f64 * k[(bi * lk + j) * w + h * d + c] as f64).sum::<f64>().abs())
                .fold(0f64, f64::max)
        })
        .fold(0f64, f64::max)
        * scale as f64;
    if scale_logits > 100.0 {
        assert!(max_logit > 5e3, "the huge-logit case must reach |logit| ~1e4 (got {max_logit:.0})");
    }
    let tol = 1e-5f64.max(8.0 * f32::EPSILON as f64 * max_logit);
    // Every version at every query count (the tuner would pick v2 below 8 rows and q8 from 8 up).
    for &variant in AttnVariant::ALL {
        let mut rec = Recorder::new(g);
        let o =
            record_attention(&mut rec, Heads::all(&qt), Heads::all(&kt), Heads::all(&vt), heads, d, scale, opts, Some(variant)).unwrap();
        rec.submit().unwrap();
        check(
            &format!("attention {variant:?} b{b} lq{lq} lk{lk} h{heads} d{d} x{scale_logits} mask={masked}"),
            &o.to_vec(g).unwrap(),
            &want,
            tol,
        );
    }
}

#[test]
fn attention_matches_cpu_over_lengths_and_head_dims() {
    let mut seed = 100;
    for &(lq, lk) in &[(1, 1), (7, 7), (32, 257), (1, 577), (32, 577), (257, 32), (7, 2880), (9, 2880), (33, 1100)] {
        for &(heads, d) in &[(2, 8), (2, 64), (1, 96)] {
            for masked in [false, true] {
                seed += 1;
                run_attention(2, lq, lk, heads, d, 1.0, masked, seed);
            }
        }
    }
}

#[test]
fn attention_is_stable_for_huge_logits() {
    // Q scaled so logits reach ±1e4: the online softmax must neither overflow nor produce NaN.
    run_attention(1, 33, 577, 2, 64, 7500.0, false, 7);
    run_attention(1, 7, 65, 1, 96, 7500.0, true, 8);
}

#[test]
fn attention_reads_k_and_v_from_column_slices() {
    // K and V interleaved in one [b, lk, 2·w] buffer (a `to_kv` output): offsets 0 and w.
    let g = gpu();
    let (b, lq, lk, heads, d) = (2, 5, 9, 3, 8);
    let w = heads * d;
    let mut rng = Rng::new(9);
    let q = rng.vec(b * lq * w, 1.0);
    let kv = rng.vec(b * lk * 2 * w, 1.0);
    let (mut k, mut v) = (vec![], vec![]);
    for row in kv.chunks(2 * w) {
        k.extend_from_slice(&row[..w]);
        v.extend_from_slice(&row[w..]);
    }
    let (qt, kvt) = (up(&q, &[b, lq, w]), up(&kv, &[b, lk, 2 * w]));
    for &variant in AttnVariant::ALL {
        let mut rec = Recorder::new(g);
        let o = record_attention(
            &mut rec,
            Heads::all(&qt),
            Heads { t: &kvt, offset: 0 },
            Heads { t: &kvt, offset: w },
            heads,
            d,
            0.3,
            AttnOpts::default(),
            Some(variant),
        )
        .unwrap();
        rec.submit().unwrap();
        check(
            &format!("attention kv slices {variant:?}"),
            &o.to_vec(g).unwrap(),
            &attention_cpu(&q, &k, &v, b, lq, lk, heads, d, 0.3, None, None),
            1e-5,
        );
    }
}

fn media_case(locs: &[u8], batch: usize, len: usize, n_media: usize, n: usize) {
    let g = gpu();
    for immediate in [true, false] {
        let packed = pack_locations(locs, batch, len);
        let pt = Tensor::from_u32(g, &packed, &[packed.len()]).unwrap();
        let mut rec = Recorder::new(g);
        let r = record_media_ranges(&mut rec, &pt, batch, len, n_media, n, immediate).unwrap();
        rec.submit().unwrap();
        let got = r.to_vec_u32(g).unwrap();
        assert_eq!(got, media_ranges_cpu(locs, batch, len, n_media, n, immediate), "locs {locs:?} immediate={immediate}");
        // and the masked attention over those ranges matches the CPU reference
        let (heads, d) = (2, 8);
        let mut rng = Rng::new(len as u64);
        let lk = n_media * n;
        let q = rng.vec(batch * len * heads * d, 1.0);
        let kv = rng.vec(batch * lk * heads * d, 1.0);
        let (qt, kt) = (up(&q, &[batch, len, heads * d]), up(&kv, &[batch, lk, heads * d]));
        for &variant in AttnVariant::ALL {
            let mut rec = Recorder::new(g);
            let o = record_attention(
                &mut rec,
                Heads::all(&qt),
                Heads::all(&kt),
                Heads::all(&kt),
                heads,
                d,
                0.5,
                AttnOpts { mask: None, ranges: Some(&r) },
                Some(variant),
            )
            .unwrap();
            rec.submit().unwrap();
            let want = attention_cpu(&q, &kv, &kv, batch, len, lk, heads, d, 0.5, None, Some(&got));
            check(&format!("masked attention {variant:?}"), &o.to_vec(g).unwrap(), &want, 1e-5);
        }
    }
}

#[test]
fn media_masking_matches_cpu() {
    media_case(&[0, 0, 0, 0, 0], 1, 5, 1, 3); // no images: immediate → zeros, all-previous → uniform
    media_case(&[1, 0, 0, 0, 0, 0, 0], 1, 7, 1, 4); // image at position 0
    media_case(&[0, 1, 1, 1, 0, 0, 0, 0, 0], 1, 9, 3, 2); // several in a row
                                                          // batch rows with different image counts
    media_case(&[0, 1, 0, 0, 1, 0, 0, 0, /**/ 1, 0, 0, 0, 0, 0, 0, 0, /**/ 0, 0, 0, 0, 0, 0, 0, 0], 3, 8, 2, 5);
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
