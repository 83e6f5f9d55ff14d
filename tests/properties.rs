//! Property tests: kernels against their CPU references on random shapes (1 and non-multiples of
//! every tile included) and random magnitudes. A fast tier runs by default; set PROPTEST_CASES
//! (e.g. 2000) for a long local run.

mod common;
use common::gpu;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use vlm_connectors::kernels::anyres::{anyres_pack_cpu, record_anyres_pack, AnyResLayout};
use vlm_connectors::kernels::attention::{
    attention_cpu, media_ranges_cpu, pack_locations, record_attention, record_media_ranges, AttnOpts, AttnVariant, Heads,
};
use vlm_connectors::kernels::elementwise::{add_rows_cpu, copy_rows_cpu, record_activation, record_add_rows, record_copy_rows};
use vlm_connectors::kernels::gemm::{linear_cpu, record_gemm_into, GemmVariant};
use vlm_connectors::kernels::layernorm::{layernorm_cpu, record_layernorm};
use vlm_connectors::kernels::pool::{avg_pool2x2_cpu, record_avg_pool2x2};
use vlm_connectors::kernels::tome::{effective_r, record_tome, tome_cpu};
use vlm_connectors::kernels::{rel_l2, Activation};
use vlm_connectors::util::Rng;
use vlm_connectors::{Recorder, Tensor};

/// The attention version a property case runs (both run at every query count).
fn variant(q8: bool) -> AttnVariant {
    if q8 {
        AttnVariant::Q8
    } else {
        AttnVariant::V2
    }
}

/// A fixed seed, so CI replays the same cases; VLMC_PROPTEST_SEED explores others.
fn seed() -> RngSeed {
    RngSeed::Fixed(std::env::var("VLMC_PROPTEST_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_c0de))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(24)
}

fn up(d: &[f32], s: &[usize]) -> Tensor {
    Tensor::from_slice(gpu(), d, s).unwrap()
}

/// Random values of magnitude up to 10^mag.
fn values(rng: &mut Rng, n: usize, mag: i32) -> Vec<f32> {
    rng.vec(n, 10f32.powi(mag))
}

/// Smallest gap between two A tokens' best cosine scores (f64), over every batch row.
fn min_score_gap(metric: &[f32], b: usize, t: usize, cm: usize) -> f64 {
    let row = |bi: usize, tok: usize| {
        let v: Vec<f64> = metric[(bi * t + tok) * cm..(bi * t + tok + 1) * cm].iter().map(|x| *x as f64).collect();
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.into_iter().map(move |x| x / n)
    };
    let mut gap = f64::INFINITY;
    for bi in 0..b {
        let mut best: Vec<f64> = (0..t.div_ceil(2))
            .map(|i| {
                (0..t / 2)
                    .map(|j| row(bi, 2 * i).zip(row(bi, 2 * j + 1)).map(|(a, c)| a * c).sum::<f64>())
                    .fold(f64::NEG_INFINITY, f64::max)
            })
            .collect();
        best.sort_by(|a, c| a.total_cmp(c));
        gap = best.windows(2).map(|w| w[1] - w[0]).fold(gap, f64::min);
    }
    gap
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, rng_seed: seed(), ..ProptestConfig::default() })]

    #[test]
    fn gemm_any_shape(m in 1usize..300, k in 1usize..300, n in 1usize..300, act in 0usize..6, bias: bool, version in 0usize..3, mag in -2i32..4, seed: u64) {
        let g = gpu();
        let mut rng = Rng::new(seed);
        let act = Activation::ALL[act];
        let (x, w, b) = (values(&mut rng, m * k, mag), rng.vec(n * k, 1.0 / (k as f32).sqrt()), rng.vec(n, 1.0));
        let mut rec = Recorder::new(g);
        let bt = up(&b, &[n]);
        let variant = [GemmVariant::T64, GemmVariant::T128, GemmVariant::Reg8][version];
        let y = up(&vec![f32::NAN; m * n], &[m, n]);
        record_gemm_into(&mut rec, &up(&x, &[m, k]), &up(&w, &[n, k]), bias.then_some(&bt), &y, 0, act, None, Some(variant)).unwrap();
        rec.submit().unwrap();
        let want = linear_cpu(&x, &w, bias.then_some(&b[..]), m, k, n, act, None);
        let e = rel_l2(&y.to_vec(g).unwrap(), &want);
        prop_assert!(e < 2e-5, "gemm {variant:?} {m}x{k}x{n} {act:?}: {e:e}");
    }

    #[test]
    fn layernorm_any_shape(rows in 1usize..70, cols in 1usize..700, mag in -3i32..4, offset in -100f32..100f32, seed: u64) {
        let g = gpu();
        let mut rng = Rng::new(seed);
        let x: Vec<f32> = values(&mut rng, rows * cols, mag).iter().map(|v| v + offset).collect();
        let (gm, bt) = (rng.vec(cols, 1.0), rng.vec(cols, 1.0));
        let mut rec = Recorder::new(g);
        let y = record_layernorm(&mut rec, &up(&x, &[rows, cols]), None, &up(&gm, &[cols]), &up(&bt, &[cols]), 1e-5).unwrap();
        rec.submit().unwrap();
        let want = layernorm_cpu(&x, None, &gm, &bt, cols, 1e-5);
        // LayerNorm's condition number is max|x| / std(x) per row (x − mean cancels in float32),
        // e.g. a large offset over a small spread, or two nearly equal values in a row of two.
        let cond = x
            .chunks(cols)
            .map(|r| {
                let mean = r.iter().map(|v| *v as f64).sum::<f64>() / cols as f64;
                let std = (r.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / cols as f64 + 1e-5).sqrt();
                r.iter().fold(0f64, |m, v| m.max(v.abs() as f64)) / std
            })
            .fold(1f64, f64::max);
        let tol = 2e-5f64.max(8.0 * f32::EPSILON as f64 * cond);
        let e = rel_l2(&y.to_vec(g).unwrap(), &want);
        prop_assert!(e < tol, "layernorm {rows}x{cols}: {e:e} (tol {tol:e})");
    }

    #[test]
    fn attention_any_shape(b in 1usize..3, lq in 1usize..70, lk in 1usize..300, heads in 1usize..4, d in 1usize..129, q8: bool, seed: u64) {
        let g = gpu();
        let mut rng = Rng::new(seed);
        let w = heads * d;
        let (q, k, v) = (rng.vec(b * lq * w, 1.0), rng.vec(b * lk * w, 1.0), rng.vec(b * lk * w, 1.0));
        let scale = 1.0 / (d as f32).sqrt();
        let (qt, kt, vt) = (up(&q, &[b, lq, w]), up(&k, &[b, lk, w]), up(&v, &[b, lk, w]));
        let mut rec = Recorder::new(g);
        let o = record_attention(&mut rec, Heads::all(&qt), Heads::all(&kt), Heads::all(&vt), heads, d, scale, AttnOpts::default(), Some(variant(q8))).unwrap();
        rec.submit().unwrap();
        let e = rel_l2(&o.to_vec(g).unwrap(), &attention_cpu(&q, &k, &v, b, lq, lk, heads, d, scale, None, None));
        prop_assert!(e < 1e-5, "attention {:?} b{b} lq{lq} lk{lk} h{heads} d{d}: {e:e}", variant(q8));
    }

    #[test]
    fn tome_any_shape(b in 1usize..3, t in 2usize..80, c in 1usize..20, frac in 0f64..1.0, class_token: bool, seed: u64) {
        let g = gpu();
        let mut rng = Rng::new(seed);
        let r = (effective_r(t, usize::MAX, class_token) as f64 * frac) as usize;
        let (x, m) = (rng.vec(b * t * c, 3.0), rng.vec(b * t * 5, 1.0));
        let size: Vec<f32> = (0..b * t).map(|_| (1 + rng.below(4)) as f32).collect();
        // The order of A tokens follows their best-match scores; scores closer than float32 can
        // resolve (here 1e-5) may rank either way on the GPU (f32) and the reference (f64). Exact ties
        // are tested in tests/budget.rs; here such near-ties are skipped.
        prop_assume!(min_score_gap(&m, b, t, 5) > 1e-5);
        let mut rec = Recorder::new(g);
        let (y, s) = record_tome(&mut rec, &up(&x, &[b, t, c]), &up(&m, &[b, t, 5]), &up(&size, &[b, t, 1]), r, class_token).unwrap();
        rec.submit().unwrap();
        let (wy, ws) = tome_cpu(&x, &m, &size, b, t, c, 5, r, class_token);
        prop_assert_eq!(s.to_vec(g).unwrap(), ws);
        let e = rel_l2(&y.to_vec(g).unwrap(), &wy);
        prop_assert!(e < 1e-6, "tome t{t} r{r}: {e:e}");
    }

    #[test]
    fn activation_any_length(n in 1usize..5000, act in 0usize..6, mag in -3i32..3, seed: u64) {
        let g = gpu();
        let x = values(&mut Rng::new(seed), n, mag);
        let act = Activation::ALL[act];
        let mut rec = Recorder::new(g);
        let y = record_activation(&mut rec, &up(&x, &[n]), act).unwrap();
        rec.submit().unwrap();
        let want: Vec<f32> = x.iter().map(|v| act.apply(*v as f64) as f32).collect();
        let e = rel_l2(&y.to_vec(g).unwrap(), &want);
        prop_assert!(e < 1e-6, "{act:?} n{n}: {e:e}");
    }

    #[test]
    fn copy_and_add_rows_any_shape(b in 1usize..4, sb_one: bool, rows in 1usize..20, extra in 0usize..5, cols in 1usize..70, div in 1usize..6, modulo in 1usize..6, seed: u64) {
        let g = gpu();
        let mut rng = Rng::new(seed);
        let sb = if sb_one { 1 } else { b };
        let (src, dst0) = (rng.vec(sb * rows * cols, 1.0), rng.vec(b * (rows + extra) * cols, 1.0));
        let dt = up(&dst0, &[b, rows + extra, cols]);
        let mut rec = Recorder::new(g);
        record_copy_rows(&mut rec, &up(&src, &[sb, rows, cols]), 0, &dt, extra, rows).unwrap();
        let e = rng.vec(modulo * cols, 1.0);
        record_add_rows(&mut rec, &dt, &up(&e, &[modulo, cols]), div, modulo).unwrap();
        rec.submit().unwrap();
        let mut want = dst0.clone();
        copy_rows_cpu(&src, [sb, rows, cols], 0, &mut want, [b, rows + extra, cols], extra, rows);
        add_rows_cpu(&mut want, &e, cols, div, modulo);
        prop_assert_eq!(dt.to_vec(g).unwrap(), want);
    }

    #[test]
    fn pool_any_grid(b in 1usize..3, h in 2usize..30, w in 2usize..30, c in 1usize..20, seed: u64) {
        let g = gpu();
        let x = Rng::new(seed).vec(b * h * w * c, 100.0);
        let mut rec = Recorder::new(g);
        let y = record_avg_pool2x2(&mut rec, &up(&x, &[b, h * w, c]), h, w).unwrap();
        rec.submit().unwrap();
        let e = rel_l2(&y.to_vec(g).unwrap(), &avg_pool2x2_cpu(&x, b, h, w, c));
        prop_assert!(e < 1e-6, "pool {h}x{w}: {e:e}");
    }

    #[test]
    fn anyres_pack_any_image(ih in 1usize..400, iw in 1usize..400, c in 1usize..9, single: bool, seed: u64) {
        let g = gpu();
        let pins = [[42, 84], [84, 42], [84, 84], [126, 42], [42, 126], [126, 126], [42, 42]];
        let l = AnyResLayout::new([ih, iw], &pins, 42, 14).unwrap();
        let tiles = if single { 1 } else { l.tiles() };
        let mut rng = Rng::new(seed);
        let (t, nl) = (rng.vec(tiles * 9 * c, 1.0), rng.vec(c, 1.0));
        let mut rec = Recorder::new(g);
        let y = record_anyres_pack(&mut rec, &up(&t, &[tiles, 9, c]), &up(&nl, &[c]), &l).unwrap();
        rec.submit().unwrap();
        prop_assert_eq!(y.to_vec(g).unwrap(), anyres_pack_cpu(&t, &nl, tiles, &l, c));
    }

    #[test]
    fn media_masked_attention_any_layout(b in 1usize..4, len in 1usize..40, t_img in 1usize..5, n in 1usize..9, immediate: bool, q8: bool, seed: u64) {
        let g = gpu();
        let mut rng = Rng::new(seed);
        let mut locs = vec![0u8; b * len];
        for row in 0..b {
            for _ in 0..rng.below(t_img + 1) {
                locs[row * len + rng.below(len)] = 1;
            }
        }
        let packed = pack_locations(&locs, b, len);
        let mut rec = Recorder::new(g);
        let r = record_media_ranges(&mut rec, &Tensor::from_u32(g, &packed, &[packed.len()]).unwrap(), b, len, t_img, n, immediate).unwrap();
        let (heads, d) = (2, 5);
        let lk = t_img * n;
        let (q, kv) = (rng.vec(b * len * heads * d, 1.0), rng.vec(b * lk * heads * d, 1.0));
        let (qt, kt) = (up(&q, &[b, len, heads * d]), up(&kv, &[b, lk, heads * d]));
        let o = record_attention(&mut rec, Heads::all(&qt), Heads::all(&kt), Heads::all(&kt), heads, d, 0.4, AttnOpts { ranges: Some(&r), ..Default::default() }, Some(variant(q8))).unwrap();
        rec.submit().unwrap();
        let want_ranges = media_ranges_cpu(&locs, b, len, t_img, n, immediate);
        prop_assert_eq!(&r.to_vec_u32(g).unwrap(), &want_ranges);
        let e = rel_l2(&o.to_vec(g).unwrap(), &attention_cpu(&q, &kv, &kv, b, len, lk, heads, d, 0.4, None, Some(&want_ranges)));
        prop_assert!(e < 1e-5, "masked attention: {e:e}");
    }
}
