//! Token-budget tools: AnyRes geometry against hand-checked cases, pooling / packing / ToMe against
//! their CPU references on random data, and their errors.

mod common;
use common::gpu;

use vlm_connectors::connectors::{AnyResPacker, TokenMerger};
use vlm_connectors::kernels::anyres::{anyres_pack_cpu, record_anyres_pack, select_best_resolution, AnyResLayout};
use vlm_connectors::kernels::pool::{avg_pool2x2_cpu, record_avg_pool2x2};
use vlm_connectors::kernels::rel_l2;
use vlm_connectors::kernels::tome::{effective_r, record_tome, tome_cpu};
use vlm_connectors::util::Rng;
use vlm_connectors::{Recorder, Tensor};

fn up(data: &[f32], shape: &[usize]) -> Tensor {
    Tensor::from_slice(gpu(), data, shape).unwrap()
}

#[test]
fn select_best_resolution_and_token_counts_match_hand_checked_cases() {
    let p = AnyResPacker::llava_next_default();
    // (image h, w) → (best pinpoint, grid, kept rows × cols, tokens); checked by hand against
    // transformers' select_best_resolution / unpad_image.
    type Case = ([usize; 2], [usize; 2], [usize; 2], [usize; 2], usize);
    let table: &[Case] = &[
        ([672, 672], [672, 672], [2, 2], [48, 48], 2928),   // square
        ([336, 1008], [336, 1008], [1, 3], [24, 72], 2328), // wide
        ([1008, 336], [1008, 336], [3, 1], [72, 24], 2376), // tall
        ([10, 10], [336, 672], [1, 2], [24, 24], 1176),     // tiny: every pinpoint ties, least waste first
        ([2000, 3000], [672, 672], [2, 2], [32, 48], 2144), // larger than every pinpoint
        ([800, 600], [672, 672], [2, 2], [48, 36], 2352),   // portrait, padded columns cropped
    ];
    for &(img, best, grid, kept, tokens) in table {
        assert_eq!(select_best_resolution(img, &p.pinpoints), Some(best), "{img:?}");
        let l = p.layout(img).unwrap();
        assert_eq!((l.grid, [l.rows, l.cols]), (grid, kept), "{img:?}");
        assert_eq!(p.token_count(img).unwrap(), tokens, "{img:?}");
        assert_eq!(p.tile_count(img).unwrap(), 1 + grid[0] * grid[1]);
    }
    // the golden cases' geometry (42-pixel tiles, 14-pixel patches)
    let tiny = AnyResPacker { pinpoints: vec![[42, 84], [84, 42], [84, 84], [126, 42], [42, 126]], tile: 42, patch: 14 };
    assert_eq!(tiny.token_count([50, 120]).unwrap(), 33);
    assert_eq!(tiny.token_count([80, 80]).unwrap(), 51);
    // pooled tiles: 12×12 per tile
    assert_eq!(p.layout([672, 672]).unwrap().pooled([672, 672]).tokens(), 144 + 24 * 25);
}

#[test]
fn anyres_errors() {
    let p = AnyResPacker::llava_next_default();
    assert!(p.layout([0, 10]).unwrap_err().to_string().contains("image_size"));
    let empty = AnyResPacker { pinpoints: vec![], ..p.clone() };
    assert!(empty.layout([10, 10]).unwrap_err().to_string().contains("image_grid_pinpoints"));
    // a tile count that does not match the grid
    let g = gpu();
    let layout = AnyResLayout::new([80, 80], &[[84, 84]], 42, 14).unwrap(); // 2×2 grid → 5 tiles
    let tiles = up(&vec![0.0; 4 * 9 * 8], &[4, 9, 8]);
    let nl = up(&[0.0; 8], &[8]);
    let mut rec = Recorder::new(g);
    let e = record_anyres_pack(&mut rec, &tiles, &nl, &layout).unwrap_err().to_string();
    assert!(e.contains("image_features") && e.contains("5 tiles"), "{e}");
    // tokens per tile that do not match the tile grid
    let tiles = up(&vec![0.0; 5 * 10 * 8], &[5, 10, 8]);
    assert!(record_anyres_pack(&mut rec, &tiles, &nl, &layout).is_err());
}

#[test]
fn anyres_pack_matches_cpu_for_many_image_sizes() {
    let g = gpu();
    let mut rng = Rng::new(77);
    let pins = [[42, 84], [84, 42], [84, 84], [126, 42], [42, 126], [126, 126]];
    for img in [[80, 80], [50, 120], [120, 50], [7, 300], [300, 7], [97, 65], [1, 1], [126, 126]] {
        let l = AnyResLayout::new(img, &pins, 42, 14).unwrap();
        let c = 5;
        for n_tiles in [l.tiles(), 1] {
            let tiles = rng.vec(n_tiles * 9 * c, 1.0);
            let nl = rng.vec(c, 1.0);
            let mut rec = Recorder::new(g);
            let y = record_anyres_pack(&mut rec, &up(&tiles, &[n_tiles, 9, c]), &up(&nl, &[c]), &l).unwrap();
            rec.submit().unwrap();
            let want = anyres_pack_cpu(&tiles, &nl, n_tiles, &l, c);
            assert_eq!(y.to_vec(g).unwrap(), want, "{img:?} tiles {n_tiles}");
            if n_tiles > 1 {
                assert_eq!(y.shape()[0], l.tokens());
            }
        }
    }
}

#[test]
fn pooling_matches_cpu_on_odd_grids() {
    let g = gpu();
    let mut rng = Rng::new(3);
    for (b, h, w, c) in [(1, 24, 24, 7), (2, 7, 5, 3), (3, 2, 2, 65), (1, 9, 1 + 2, 1), (2, 33, 17, 4)] {
        let x = rng.vec(b * h * w * c, 1.0);
        let mut rec = Recorder::new(g);
        let y = record_avg_pool2x2(&mut rec, &up(&x, &[b, h * w, c]), h, w).unwrap();
        rec.submit().unwrap();
        assert_eq!(y.shape(), &[b, (h / 2) * (w / 2), c]);
        let e = rel_l2(&y.to_vec(g).unwrap(), &avg_pool2x2_cpu(&x, b, h, w, c));
        assert!(e < 1e-6, "{h}x{w}: {e}");
    }
    let mut rec = Recorder::new(g);
    let e = record_avg_pool2x2(&mut rec, &up(&vec![0.0; 35 * 2], &[1, 35, 2]), 6, 6).unwrap_err().to_string();
    assert!(e.contains("tokens") && e.contains("36"), "{e}");
    assert!(record_avg_pool2x2(&mut rec, &up(&[0.0; 3], &[1, 3, 1]), 1, 3).is_err());
}

#[test]
fn bilinear_resize_matches_cpu_on_awkward_grids() {
    use vlm_connectors::kernels::pool::{record_resize_bilinear, resize_bilinear_cpu};
    let g = gpu();
    let mut rng = Rng::new(4);
    // Down by ceil(side / 2) as OneVision's video pooling (27 → 14, 5 → 3), up, to 1×1, and 1×N.
    for (b, [h, w], c, out) in
        [(1, [27, 27], 7, [14, 14]), (3, [5, 5], 65, [3, 3]), (2, [7, 3], 3, [12, 5]), (1, [1, 9], 2, [1, 4]), (2, [6, 6], 1, [1, 1])]
    {
        let x = rng.vec(b * h * w * c, 1.0);
        let mut rec = Recorder::new(g);
        let y = record_resize_bilinear(&mut rec, &up(&x, &[b, h * w, c]), [h, w], out).unwrap();
        rec.submit().unwrap();
        assert_eq!(y.shape(), &[b, out[0] * out[1], c]);
        let e = rel_l2(&y.to_vec(g).unwrap(), &resize_bilinear_cpu(&x, b, [h, w], c, out));
        assert!(e < 1e-6, "{h}x{w} → {out:?}: {e}");
    }
    // Same size: the identity, bit for bit.
    let x = rng.vec(2 * 4 * 3 * 5, 1.0);
    let mut rec = Recorder::new(g);
    let y = record_resize_bilinear(&mut rec, &up(&x, &[2, 12, 5]), [4, 3], [4, 3]).unwrap();
    let e = record_resize_bilinear(&mut rec, &up(&x, &[2, 12, 5]), [4, 3], [0, 3]).unwrap_err().to_string();
    assert!(e.contains("at least one token"), "{e}");
    rec.submit().unwrap();
    assert_eq!(y.to_vec(g).unwrap(), x);
}

fn tome_case(b: usize, t: usize, c: usize, r: usize, class_token: bool, metric: Vec<f32>, seed: u64) {
    let g = gpu();
    let mut rng = Rng::new(seed);
    let x = rng.vec(b * t * c, 2.0);
    let size: Vec<f32> = (0..b * t).map(|_| (1 + rng.below(3)) as f32).collect();
    let cm = metric.len() / (b * t);
    let run = || {
        let mut rec = Recorder::new(g);
        let (y, s) = record_tome(&mut rec, &up(&x, &[b, t, c]), &up(&metric, &[b, t, cm]), &up(&size, &[b, t, 1]), r, class_token).unwrap();
        rec.submit().unwrap();
        (y.to_vec(g).unwrap(), s.to_vec(g).unwrap())
    };
    let (y, s) = run();
    let (wy, ws) = tome_cpu(&x, &metric, &size, b, t, c, cm, r, class_token);
    let er = effective_r(t, r, class_token);
    assert_eq!(s.len(), b * (t - er));
    assert_eq!(s, ws, "sizes: t {t} r {r} cls {class_token}");
    let e = rel_l2(&y, &wy);
    assert!(e < 1e-6, "t {t} r {r} cls {class_token}: {e}");
    assert_eq!(run(), (y, s), "same input, same output");
}

#[test]
fn tome_matches_cpu_for_every_r_up_to_the_cap() {
    let mut rng = Rng::new(1);
    for (b, t, c) in [(2, 20, 16), (1, 17, 12), (1, 65, 7), (3, 7, 3), (1, 2, 4)] {
        for class_token in [false, true] {
            let cap = effective_r(t, usize::MAX, class_token);
            for r in 0..=cap {
                let metric = rng.vec(b * t * 9, 1.0);
                tome_case(b, t, c, r, class_token, metric, r as u64);
            }
        }
    }
}

#[test]
fn tome_ties_resolve_the_same_way_every_run() {
    // Every A token's best match scores exactly 1 (metric rows repeat): all scores tie.
    let (b, t, c) = (1, 16, 4);
    let metric: Vec<f32> = (0..b * t).flat_map(|i| [1.0f32, (i / 4) as f32 * 0.0, 0.5, 0.25]).collect();
    for r in [1, 3, 8] {
        tome_case(b, t, c, r, false, metric.clone(), 9);
        tome_case(b, t, c, r, true, metric.clone(), 10);
    }
}

#[test]
fn tome_rounds_compose_and_r_past_the_tokens_clamps() {
    let g = gpu();
    let mut rng = Rng::new(5);
    let (t, c) = (24, 8);
    let x = rng.vec(t * c, 1.0);
    let merger = TokenMerger { r: 5, class_token: true };
    let mut rec = Recorder::new(g);
    let (y1, s1) = merger.forward(&mut rec, &up(&x, &[1, t, c]), &up(&x, &[1, t, c]), &up(&[1.0; 24], &[1, t, 1])).unwrap();
    let (y2, s2) = merger.forward(&mut rec, &y1, &y1, &s1).unwrap();
    rec.submit().unwrap();
    assert_eq!(y2.shape(), &[1, t - 10, c]);
    let sizes = s2.to_vec(g).unwrap();
    assert_eq!(sizes.iter().sum::<f32>(), t as f32, "sizes add up over rounds");
    assert_eq!(sizes[0], 1.0, "the class token is never merged");
    // r beyond the mergeable tokens clamps as ToMe's merge.py does: min(24, (24 - 1) // 2) = 11
    let mut rec = Recorder::new(g);
    let (xt, st) = (up(&x, &[1, t, c]), up(&[1.0; 24], &[1, t, 1]));
    let (big, _) = record_tome(&mut rec, &xt, &xt, &st, 24, true).unwrap();
    let (eleven, _) = record_tome(&mut rec, &xt, &xt, &st, 11, true).unwrap();
    rec.submit().unwrap();
    assert_eq!(big.shape(), &[1, 13, c]);
    assert_eq!(big.to_vec(g).unwrap(), eleven.to_vec(g).unwrap());
    // No tokens or no channels: ToMe returns what it gets (t = 0), or merges sizes only (C = 0).
    let mut rec = Recorder::new(g);
    let (none, none_size) = record_tome(&mut rec, &up(&[], &[2, 0, c]), &up(&[], &[2, 0, c]), &up(&[], &[2, 0, 1]), 3, false).unwrap();
    let (bare, bare_size) = record_tome(&mut rec, &up(&[], &[1, t, 0]), &xt, &st, 5, true).unwrap();
    let (full, full_size) = record_tome(&mut rec, &xt, &xt, &st, 5, true).unwrap();
    rec.submit().unwrap();
    assert_eq!((none.shape(), none_size.shape()), (&[2, 0, c][..], &[2, 0, 1][..]));
    assert_eq!((bare.shape(), bare.to_vec(g).unwrap()), (&[1, t - 5, 0][..], vec![]));
    assert_eq!(bare_size.to_vec(g).unwrap(), full_size.to_vec(g).unwrap(), "the sizes do not depend on the channels");
    assert_eq!(full.shape(), &[1, t - 5, c]);
}

#[test]
fn anyres_resize_pack_matches_cpu_over_awkward_sizes() {
    use vlm_connectors::kernels::anyres_resize::{anyres_resize_pack_cpu, record_anyres_resize_pack};
    let g = gpu();
    let pinpoints: Vec<[usize; 2]> = (1..=6).flat_map(|i| (1..=6).map(move |j| [i * 30, j * 30])).collect();
    let mut rng = Rng::new(77);
    for &(image, out, c) in &[
        ([100usize, 190usize], [4usize, 8usize], 24usize),
        ([177, 61], [7, 1], 7),
        ([30, 30], [1, 1], 1),
        ([180, 180], [9, 5], 65),
        ([61, 177], [2, 13], 3),
    ] {
        let layout = AnyResLayout::new(image, &pinpoints, 30, 14).unwrap();
        let hw = layout.h * layout.w;
        let tiles = rng.vec(layout.tiles() * hw * c, 1.0);
        let newline = rng.vec(c, 1.0);
        let mut rec = Recorder::new(g);
        let y = record_anyres_resize_pack(&mut rec, &up(&tiles, &[layout.tiles(), hw, c]), &up(&newline, &[c]), &layout, out).unwrap();
        rec.submit().unwrap();
        let want = anyres_resize_pack_cpu(&tiles, &newline, &layout, c, out);
        assert_eq!(y.shape(), &[hw + out[0] * (out[1] + 1), c]);
        let got = y.to_vec(g).unwrap();
        let err = rel_l2(&got, &want);
        assert!(err < 1e-6, "{image:?} → {out:?}, c {c}: rel L2 {err:e}");
    }
}

/// Qwen2-VL's smart_resize and Pixtral's token grid against transformers 5.24 (values computed
/// with `image_processing_qwen2_vl.smart_resize`; halves round to even as Python's round does).
#[test]
fn dynamic_resolution_grids_match_the_processors() {
    use vlm_connectors::connectors::budget::{pixtral_grid, qwen_grid};
    for (image, grid) in [
        ([672, 672], [48, 48]),
        ([1000, 300], [72, 22]),
        ([4000, 3000], [82, 60]),
        ([20, 20], [4, 4]),
        ([70, 70], [4, 4]),
        ([42, 126], [4, 8]),
        ([20, 1000], [2, 72]),
        ([28, 5000], [2, 358]),
    ] {
        assert_eq!(qwen_grid(image, 28).unwrap(), grid, "{image:?}");
    }
    let e = qwen_grid([10, 3000], 28).unwrap_err().to_string();
    assert!(e.contains("aspect ratio"), "{e}");
    // Pixtral: ⌈side / 28⌉ cells, longest edge scaled down to 1540; a break token per row.
    assert_eq!(pixtral_grid([672, 672], 28), ([48, 48], 24 * 25));
    assert_eq!(pixtral_grid([1000, 300], 28), ([72, 22], 36 * 12));
    assert_eq!(pixtral_grid([3080, 1000], 28), ([110, 36], 55 * 19));
}

/// `vlmc info`'s tokens-per-image line for every zoo checkpoint and the seed connectors.
#[test]
fn tokens_per_image_follows_each_config() {
    use vlm_connectors::checkpoint::Config;
    use vlm_connectors::connectors::tokens::tokens_per_image;
    let dir = common::data_dir();
    for (case, want) in [
        ("zoo/qwen2_vl_merger", "for 672×672"),
        ("zoo/internvl_pixel_shuffle", "4 per tile (4×4 patches, pixel shuffle 2×2); dynamic"),
        ("zoo/idefics3_connector", "4 per tile (4×4 patches, pixel shuffle 2×2)"),
        ("zoo/gemma3_projector", "4 (mm_tokens_per_image)"),
        ("zoo/paligemma_projector", "16 (4×4 patches)"),
        ("zoo/mistral3_projector", "of 8-px cells (a break token per row): 7140 for 672×672"),
        ("zoo/mllama_xattn", "up to 2 tiles × 5 tokens"),
        ("zoo/idefics2_connector", "4 per image or crop"),
        ("llava_tiny", "4 (one per tower token: 2×2 patches)"),
        ("blip2_tiny", "8 (num_query_tokens)"),
    ] {
        let cfg = Config::from_file(dir.join(case).join("config.json")).unwrap();
        let line = tokens_per_image(&cfg).unwrap();
        assert!(line.contains(want), "{case}: {line}");
    }
}
