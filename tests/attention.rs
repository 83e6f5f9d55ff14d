//! Attention (both versions at every query count) and Flamingo's media masking against their CPU
//! references: lengths 1..2880, head dims 8..128, masks, huge logits, K/V as column slices.

mod common;
use common::{check, gpu, up};

use vlm_connectors::kernels::attention::{
    attention_cpu, attention_gqa_cpu, media_ranges_cpu, pack_locations, record_attention, record_media_ranges, AttnOpts, AttnVariant, Heads,
};
use vlm_connectors::kernels::Variant;
use vlm_connectors::util::Rng;
use vlm_connectors::{Recorder, Tensor};

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
    let opts = AttnOpts { mask: masked.then_some(&mt), ..Default::default() };
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
    // Every version at every query count, whatever the tuner would pick.
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
                AttnOpts { ranges: Some(&r), ..Default::default() },
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
    // More <image> tokens than media (OpenFlamingo masks every score there: uniform over all
    // media in the immediate mode, all media in the all-previous one), and counts above 1.
    media_case(&[1, 0, 1, 0, 1, 1, 0], 1, 7, 2, 3);
    media_case(&[2, 0, 0, 3, 0, 255, 0, 0, 0, 0], 2, 5, 4, 2);
}

/// A mask per query [b, lq, lk] (IDEFICS's image_attention_mask: a token sees some images, not
/// others, at -f32::MAX like transformers' finfo.min), with and without key ranges around it.
#[test]
fn attention_per_query_mask_matches_cpu() {
    let g = gpu();
    let mut seed = 700;
    for &(b, lq, lk, heads, d) in &[(1, 1, 1, 1, 8), (2, 7, 65, 2, 8), (1, 9, 7, 3, 24), (2, 63, 257, 2, 16), (1, 65, 12, 1, 128)] {
        seed += 1;
        let mut rng = Rng::new(seed);
        let w = heads * d;
        let (q, k, v) = (rng.vec(b * lq * w, 1.0), rng.vec(b * lk * w, 1.0), rng.vec(b * lk * w, 1.0));
        // Key j of query i is masked when (i + j) % 3 == 1, except the first key of the range,
        // so every row keeps a key (an all-masked row is uniform in f32, not in the f64 reference).
        // Odd queries see only their last key: whole tiles masked before it, so the online softmax
        // runs from -FLT_MAX tiles (kept in range: the last key is ≥ i % lk).
        let masked = |i: usize, j: usize| if i % 2 == 1 { j + 1 != lk } else { (i + j) % 3 == 1 && j != i % lk };
        let mask: Vec<f32> =
            (0..b * lq * lk).map(|x| if masked((x / lk) % lq, x % lk) { -f32::MAX } else { rng.uniform(-1.0, 0.0) }).collect();
        // Ranges start at key i % lk (the unmasked one) and end at lk.
        let ranges: Vec<u32> = (0..b * lq).flat_map(|r| [((r % lq) % lk) as u32, lk as u32, 0, 0]).collect();
        let (qt, kt, vt, mt, rt) = (
            up(&q, &[b, lq, w]),
            up(&k, &[b, lk, w]),
            up(&v, &[b, lk, w]),
            up(&mask, &[b, lq, lk]),
            Tensor::from_u32(g, &ranges, &[b * lq * 4]).unwrap(),
        );
        for with_ranges in [false, true] {
            let r = with_ranges.then_some(&ranges[..]);
            let want = attention_cpu(&q, &k, &v, b, lq, lk, heads, d, 0.4, Some(&mask), r);
            for &variant in AttnVariant::ALL {
                let mut rec = Recorder::new(g);
                let opts = AttnOpts { mask: Some(&mt), ranges: with_ranges.then_some(&rt), kv_heads: None };
                let o = record_attention(&mut rec, Heads::all(&qt), Heads::all(&kt), Heads::all(&vt), heads, d, 0.4, opts, Some(variant))
                    .unwrap();
                rec.submit().unwrap();
                check(
                    &format!("per-query mask {variant:?} b{b} lq{lq} lk{lk} h{heads} d{d} ranges={with_ranges}"),
                    &o.to_vec(g).unwrap(),
                    &want,
                    1e-5,
                );
            }
        }
    }
    // A mask of neither shape is an error naming both.
    let (qt, kt) = (up(&[0.0; 8], &[1, 2, 4]), up(&[0.0; 12], &[1, 3, 4]));
    let bad = up(&[0.0; 5], &[1, 5]);
    let mut rec = Recorder::new(g);
    let opts = AttnOpts { mask: Some(&bad), ..Default::default() };
    let e = record_attention(&mut rec, Heads::all(&qt), Heads::all(&kt), Heads::all(&kt), 1, 4, 1.0, opts, None).unwrap_err().to_string();
    assert!(e.contains("[1, 3] or [1, 2, 3]"), "{e}");
    rec.discard();
}

/// Grouped-query attention (Mllama, Idefics2): query head h reads K/V head h / (heads / kv_heads),
/// in both versions, over awkward lengths, with K/V as column slices of one buffer and a per-query
/// mask; kv_heads that do not divide the heads are an error.
#[test]
fn grouped_query_attention_matches_cpu() {
    let g = gpu();
    let mut rng = Rng::new(41);
    for &(b, lq, lk, heads, kv_heads, d) in
        &[(1, 1, 1, 2, 1, 8), (2, 7, 65, 4, 2, 8), (1, 63, 257, 6, 3, 64), (2, 9, 577, 8, 1, 128), (1, 65, 7, 3, 3, 7)]
    {
        let (w, wk) = (heads * d, kv_heads * d);
        let q = rng.vec(b * lq * w, 1.0);
        let kv = rng.vec(b * lk * 2 * wk, 1.0); // [k | v] per row
        let k: Vec<f32> = kv.chunks(2 * wk).flat_map(|r| r[..wk].to_vec()).collect();
        let v: Vec<f32> = kv.chunks(2 * wk).flat_map(|r| r[wk..].to_vec()).collect();
        let mask: Vec<f32> = (0..b * lq * lk).map(|i| if i % 5 == 2 { -3e38 } else { rng.uniform(-1.0, 0.0) }).collect();
        let (qt, kvt, mt) = (up(&q, &[b, lq, w]), up(&kv, &[b, lk, 2 * wk]), up(&mask, &[b, lq, lk]));
        let want = attention_gqa_cpu(&q, &k, &v, [b, lq, lk], [heads, kv_heads], d, 0.3, Some(&mask), None);
        for &variant in AttnVariant::ALL {
            let mut rec = Recorder::new(g);
            let opts = AttnOpts { mask: Some(&mt), kv_heads: Some(kv_heads), ..Default::default() };
            let o = record_attention(
                &mut rec,
                Heads::all(&qt),
                Heads::all(&kvt),
                Heads { t: &kvt, offset: wk },
                heads,
                d,
                0.3,
                opts,
                Some(variant),
            )
            .unwrap();
            rec.submit().unwrap();
            check(&format!("GQA {variant:?} b{b} lq{lq} lk{lk} h{heads}/{kv_heads} d{d}"), &o.to_vec(g).unwrap(), &want, 1e-5);
        }
    }
    let t = up(&[0.0; 2 * 3 * 8], &[2, 3, 8]);
    let mut rec = Recorder::new(g);
    let opts = AttnOpts { kv_heads: Some(3), ..Default::default() };
    let e = record_attention(&mut rec, Heads::all(&t), Heads::all(&t), Heads::all(&t), 4, 2, 1.0, opts, None).unwrap_err().to_string();
    assert!(e.contains("3 K/V heads do not divide 4"), "{e}");
    rec.discard();
}
