//! The connector zoo against transformers 5.24 (`tests/data/zoo`, copied from `../shared/golden`):
//! Qwen2-VL / Qwen2.5-VL mergers, InternVL and Idefics3 pixel shuffles, Gemma 3 and PaliGemma
//! projectors, Mistral 3, Mllama's cross-attention layer and Idefics2's connector, through the
//! library in f32 (rel-L2 ≤ 1e-5) and f16 (≤ 5e-3) (`vlmc run` in tests/cli.rs); inputs the golden
//! cases leave out (`edge/zoo_edges.safetensors`); the errors the references raise.

mod common;
use common::{assert_close, data_dir, gpu};

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::connectors::{Connector, Inputs, LoadOptions};
use vlm_connectors::kernels::rel_l2;
use vlm_connectors::{DType, Tensor};

const CASES: &[&str] = &[
    "qwen2_vl_merger",
    "qwen2_5_vl_merger",
    "internvl_pixel_shuffle",
    "idefics3_connector",
    "gemma3_projector",
    "paligemma_projector",
    "mistral3_projector",
    "mllama_xattn",
    "idefics2_connector",
];

fn run(case: &str, dtype: DType) -> (Vec<f32>, Vec<usize>) {
    let g = gpu();
    let dir = data_dir().join("zoo").join(case);
    let c = Connector::from_dir_opts(g, &dir, &LoadOptions { dtype, ..Default::default() }).unwrap_or_else(|e| panic!("{case}: {e}"));
    let outs = c.run(g, &WeightSource::open_file(dir.join("inputs.safetensors")).unwrap()).unwrap_or_else(|e| panic!("{case}: {e}"));
    let o = outs.get("output").unwrap();
    (o.data.clone(), o.shape.clone())
}

fn expected(case: &str) -> vlm_connectors::checkpoint::HostTensor {
    WeightSource::open_file(data_dir().join("zoo").join(case).join("expected.safetensors")).unwrap().get_any("output").unwrap()
}

#[test]
fn zoo_connectors_match_transformers_in_f32() {
    for case in CASES {
        let (got, shape) = run(case, DType::F32);
        let want = expected(case);
        assert_eq!(shape, want.shape, "{case}: shape");
        eprintln!("{case}: f32 rel L2 {:.2e}", rel_l2(&got, &want.data));
        assert_close(case, &got, &want.data, 1e-5);
    }
    // Mllama's projected states too (`projected` [b·n·t, P, d]).
    let dir = data_dir().join("zoo/mllama_xattn");
    let c = Connector::from_dir(gpu(), &dir).unwrap();
    let outs = c.run(gpu(), &WeightSource::open_file(dir.join("inputs.safetensors")).unwrap()).unwrap();
    let want = WeightSource::open_file(dir.join("expected.safetensors")).unwrap().get_any("projected").unwrap();
    let got = outs.get("projected").unwrap();
    assert_eq!(got.shape, want.shape);
    assert_close("mllama projected", &got.data, &want.data, 1e-5);
    for case in ["mllama_xattn", "idefics2_connector"] {
        assert!(CASES.contains(&case));
    }
}

#[test]
fn zoo_connectors_match_transformers_in_f16() {
    if !gpu().features().contains(vlm_connectors::wgpu::Features::SHADER_F16) {
        eprintln!("adapter without SHADER_F16: the f16 zoo cases are not run here");
        return;
    }
    for case in CASES {
        let (got, _) = run(case, DType::F16);
        let e = rel_l2(&got, &expected(case).data);
        eprintln!("{case}: f16 rel L2 {e:.2e}");
        assert!(e <= 5e-3, "{case}: f16 rel L2 {e:.2e}");
    }
}

#[test]
fn qwen2_5_vl_window_order_is_undone() {
    // The README's 1×4×10 image: 2×5 merge units, 4×4-unit windows → window_index
    // [0, 1, 2, 3, 5, 6, 7, 8, 4, 9]; the output takes rows argsort(window_index).
    let ids = vlm_connectors::connectors::qwen2_vl::unpermute(&[[1, 4, 10]], 2, 4);
    assert_eq!(ids, [0, 1, 2, 3, 8, 4, 5, 6, 7, 9]);
    // Two images: the second's units follow the first's.
    let ids = vlm_connectors::connectors::qwen2_vl::unpermute(&[[1, 2, 2], [1, 4, 10]], 2, 4);
    assert_eq!(ids, [0, 1, 2, 3, 4, 9, 5, 6, 7, 8, 10]);
}

#[test]
fn grids_that_disagree_with_the_tokens_are_errors() {
    let g = gpu();
    let c = Connector::from_dir(g, data_dir().join("zoo/qwen2_vl_merger")).unwrap();
    let x = Tensor::from_slice(g, &vec![0.5; 24 * 16], &[24, 16]).unwrap();
    for (grid, want) in [(vec![1, 4, 4], "hold 16 patches"), (vec![1, 3, 8], "merge units")] {
        let i = Inputs::new().with_tensor("hidden_states", x.clone()).with_ints("image_grid_thw", &[1, 3], grid);
        let e = c.run_inputs(g, &i).unwrap_err().to_string();
        assert!(e.contains("image_grid_thw") && e.contains(want), "{e}");
    }
    // Qwen2.5-VL too; a grid of the wrong rank, non-positive values, a length that disagrees.
    let c25 = Connector::from_dir(g, data_dir().join("zoo/qwen2_5_vl_merger")).unwrap();
    let x40 = Tensor::from_slice(g, &vec![0.5; 40 * 16], &[40, 16]).unwrap();
    let bad: [(&[usize], Vec<i64>, &str); 4] = [
        (&[1, 3], vec![1, 4, 6], "hold 24 patches; hidden_states has 40 rows"),
        (&[3], vec![1, 4, 10], "expected [n, 3]"),
        (&[1, 3], vec![1, 0, 10], "expected [n, 3]"),
        (&[2, 3], vec![1, 4, 10], "expected [2, 3], got 3 values"),
    ];
    for (shape, v, want) in bad {
        let i = Inputs::new().with_tensor("hidden_states", x40.clone()).with_ints("image_grid_thw", shape, v);
        let e = c25.run_inputs(g, &i).unwrap_err().to_string();
        assert!(e.contains("image_grid_thw") && e.contains(want), "{want}: {e}");
    }
    // Pixel shuffle: 15 grid tokens (no CLS) is no square; a 3×3 grid does not split into 2×2.
    let c = Connector::from_dir(g, data_dir().join("zoo/internvl_pixel_shuffle")).unwrap();
    for (tokens, want) in [(16, "[2, 16, 16]"), (10, "[2, 10, 16]")] {
        let x = Tensor::from_slice(g, &vec![0.5; 2 * tokens * 16], &[2, tokens, 16]).unwrap();
        let e = c.run_inputs(g, &Inputs::new().with_tensor("image_features", x)).unwrap_err().to_string();
        assert!(e.contains("image_features") && e.contains("s a multiple of 2") && e.contains(want), "{e}");
    }
    let c = Connector::from_dir(g, data_dir().join("zoo/idefics3_connector")).unwrap();
    let x = Tensor::from_slice(g, &vec![0.5; 9 * 16], &[1, 9, 16]).unwrap();
    let e = c.run_inputs(g, &Inputs::new().with_tensor("image_hidden_states", x)).unwrap_err().to_string();
    assert!(e.contains("image_hidden_states") && e.contains("[1, 9, 16]"), "{e}");
    // Gemma 3: the patch count its config gives (8×8), not another.
    let c = Connector::from_dir(g, data_dir().join("zoo/gemma3_projector")).unwrap();
    let x = Tensor::from_slice(g, &vec![0.5; 2 * 49 * 16], &[2, 49, 16]).unwrap();
    let e = c.run_inputs(g, &Inputs::new().with_tensor("vision_outputs", x)).unwrap_err().to_string();
    assert!(e.contains("vision_outputs") && e.contains("64 (= 8² patches)") && e.contains("[2, 49, 16]"), "{e}");
    // Mllama: states of another batch; a float mask where ints are needed.
    let c = Connector::from_dir(g, data_dir().join("zoo/mllama_xattn")).unwrap();
    let h = Tensor::from_slice(g, &vec![0.1; 2 * 6 * 32], &[2, 6, 32]).unwrap();
    let s = Tensor::from_slice(g, &vec![0.1; 3 * 2 * 5 * 32], &[3, 1, 2, 5, 32]).unwrap();
    let i = Inputs::new().with_tensor("hidden_states", h.clone()).with_tensor("cross_attention_states", s).with_ints(
        "cross_attention_mask",
        &[2, 6, 1, 2],
        vec![1; 24],
    );
    let e = c.run_inputs(g, &i).unwrap_err().to_string();
    assert!(e.contains("cross_attention_states") && e.contains("[2, images, tiles, P, 32]"), "{e}");
    let s = Tensor::from_slice(g, &vec![0.1; 2 * 2 * 5 * 32], &[2, 1, 2, 5, 32]).unwrap();
    let m = Tensor::from_slice(g, &[1.0; 24], &[2, 6, 1, 2]).unwrap();
    let i = Inputs::new().with_tensor("hidden_states", h).with_tensor("cross_attention_states", s).with_tensor("cross_attention_mask", m);
    let e = c.run_inputs(g, &i).unwrap_err().to_string();
    assert!(e.contains("cross_attention_mask") && e.contains("integer"), "{e}");
}

/// `space_to_depth` is a gather: f32 and f16 outputs equal the CPU reference exactly, for both
/// block orders, with and without a skipped CLS row, over awkward grids and channel counts.
#[test]
fn space_to_depth_matches_cpu_exactly_in_both_orders_and_dtypes() {
    use vlm_connectors::kernels::pool::{record_space_to_depth, space_to_depth_cpu, BlockOrder};
    let g = gpu();
    let f16 = g.features().contains(vlm_connectors::wgpu::Features::SHADER_F16);
    let mut rng = vlm_connectors::util::Rng::new(57);
    for &(b, skip, [h, w], c, k) in
        &[(1, 0, [1, 1], 1, 1), (2, 1, [2, 2], 7, 2), (1, 1, [24, 24], 63, 2), (3, 0, [6, 9], 65, 3), (1, 2, [4, 14], 257, 2)]
    {
        let rows = skip + h * w + 1; // one trailing row the grid does not use
        let x: Vec<f32> = rng.vec(b * rows * c, 2.0).iter().map(|v| half::f16::from_f32(*v).to_f32()).collect();
        for order in [BlockOrder::PixelShuffle, BlockOrder::Unfold] {
            let want = space_to_depth_cpu(&x, b, rows, skip, [h, w], c, k, order);
            for dtype in [DType::F32, DType::F16].into_iter().filter(|d| *d == DType::F32 || f16) {
                let mut rec = vlm_connectors::Recorder::new(g);
                let xt = Tensor::from_host(g, &x, &[b, rows, c], dtype).unwrap();
                let y = record_space_to_depth(&mut rec, &xt, skip, [h, w], k, order).unwrap();
                rec.submit().unwrap();
                assert_eq!(y.shape(), &[b, (h / k) * (w / k), k * k * c]);
                assert_eq!(y.to_vec(g).unwrap(), want, "b{b} skip{skip} {h}×{w} c{c} k{k} {order:?} {dtype:?}");
            }
        }
    }
    let mut rec = vlm_connectors::Recorder::new(g);
    let xt = Tensor::from_slice(g, &[0.0; 2 * 7 * 3], &[2, 7, 3]).unwrap();
    let e = record_space_to_depth(&mut rec, &xt, 1, [2, 3], 2, BlockOrder::PixelShuffle).unwrap_err().to_string();
    assert!(e.contains("2×3 does not split into 2×2"), "{e}");
    let e = record_space_to_depth(&mut rec, &xt, 2, [2, 3], 1, BlockOrder::Unfold).unwrap_err().to_string();
    assert!(e.contains("tokens"), "{e}");
}

/// Mistral 3 on three images with their own grids, two odd (F.unfold floors), against
/// transformers (`edge/zoo_edges.safetensors`, `tools/make_zoo_edges.py`); and the errors the
/// reference raises: sizes that disagree with the rows, a grid side below the merge size.
#[test]
fn mistral3_merges_each_image_on_its_own_grid() {
    let g = gpu();
    let c = Connector::from_dir(g, data_dir().join("zoo/mistral3_projector")).unwrap();
    let e = WeightSource::open_file(data_dir().join("edge/zoo_edges.safetensors")).unwrap();
    let x = e.get_any("mistral3_image_features").unwrap();
    let (sizes_shape, sizes) = e.get_int("mistral3_image_sizes").unwrap();
    let xt = Tensor::from_slice(g, &x.data, &x.shape).unwrap();
    let i = Inputs::new().with_tensor("image_features", xt.clone()).with_ints("image_sizes", &sizes_shape, sizes);
    let y = c.run_inputs(g, &i).unwrap();
    let want = e.get_any("mistral3_output").unwrap();
    let got = y.get("output").unwrap();
    assert_eq!(got.shape, want.shape);
    assert_close("mistral3 three grids", &got.data, &want.data, 1e-5);
    for (sizes, msg) in [(vec![16, 24, 12, 16], "hold 36 patches"), (vec![216, 4], "has no 2×2 block")] {
        let i = Inputs::new().with_tensor("image_features", xt.clone()).with_ints("image_sizes", &[sizes.len() / 2, 2], sizes);
        let err = c.run_inputs(g, &i).unwrap_err().to_string();
        assert!(err.contains("image_sizes") && err.contains(msg), "{err}");
    }
}

/// Mllama with masks the golden case leaves out, against transformers (`edge/zoo_edges.safetensors`):
/// rows before the first image (all-zero bias, MLP branch zeroed), a padded tile, images with
/// different tile counts, a mask value of 2 (masked); in f32 and f16. And masks of the wrong shape.
#[test]
fn mllama_masks_match_transformers() {
    let g = gpu();
    let e = WeightSource::open_file(data_dir().join("edge/zoo_edges.safetensors")).unwrap();
    let (mshape, mask) = e.get_int("mllama_cross_attention_mask").unwrap();
    let t = |name: &str, dtype: DType| {
        let h = e.get_any(name).unwrap();
        Tensor::from_host(g, &h.data, &h.shape, dtype).unwrap()
    };
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::F16, 5e-3)] {
        if dtype == DType::F16 && !g.features().contains(vlm_connectors::wgpu::Features::SHADER_F16) {
            continue;
        }
        let c = Connector::from_dir_opts(g, data_dir().join("zoo/mllama_xattn"), &LoadOptions { dtype, ..Default::default() }).unwrap();
        let i = Inputs::new()
            .with_tensor("hidden_states", t("mllama_hidden_states", dtype))
            .with_tensor("cross_attention_states", t("mllama_cross_attention_states", dtype))
            .with_ints("cross_attention_mask", &mshape, mask.clone());
        let y = c.run_inputs(g, &i).unwrap();
        for name in ["output", "projected"] {
            let want = e.get_any(&format!("mllama_{name}")).unwrap();
            let got = y.get(name).unwrap();
            assert_eq!(got.shape, want.shape, "{name}");
            let err = rel_l2(&got.data, &want.data);
            assert!(err <= tol, "mllama {name} {dtype:?}: rel L2 {err:.2e}");
        }
    }
    let c = Connector::from_dir(g, data_dir().join("zoo/mllama_xattn")).unwrap();
    let i = Inputs::new()
        .with_tensor("hidden_states", t("mllama_hidden_states", DType::F32))
        .with_tensor("cross_attention_states", t("mllama_cross_attention_states", DType::F32))
        .with_ints("cross_attention_mask", &[2, 7, 2, 1], vec![1; 28]);
    let err = c.run_inputs(g, &i).unwrap_err().to_string();
    assert!(err.contains("cross_attention_mask") && err.contains("[2, 7, 2, 2]"), "{err}");
}

/// Idefics2 with padded patches masked (a BOOL `patch_attention_mask` read from safetensors),
/// against transformers (`edge/zoo_edges.safetensors`), in f32 and f16; and a mask of the wrong shape.
#[test]
fn idefics2_masks_padded_patches_like_transformers() {
    let g = gpu();
    let e = WeightSource::open_file(data_dir().join("edge/zoo_edges.safetensors")).unwrap();
    let (mshape, mask) = e.get_int("idefics2_patch_attention_mask").unwrap();
    assert!(mask.contains(&0) && mask.contains(&1));
    // As int64 2s and 0s: transformers treats any nonzero value as a real patch (make_zoo_edges.py checks it).
    let (_, mask2) = e.get_int("idefics2_patch_attention_mask_int2").unwrap();
    assert!(mask2.contains(&2));
    let x = e.get_any("idefics2_image_hidden_states").unwrap();
    let want = e.get_any("idefics2_output").unwrap();
    for (dtype, tol) in [(DType::F32, 1e-5), (DType::F16, 5e-3)] {
        if dtype == DType::F16 && !g.features().contains(vlm_connectors::wgpu::Features::SHADER_F16) {
            continue;
        }
        let c =
            Connector::from_dir_opts(g, data_dir().join("zoo/idefics2_connector"), &LoadOptions { dtype, ..Default::default() }).unwrap();
        for m in [&mask, &mask2] {
            let x = Tensor::from_host(g, &x.data, &x.shape, dtype).unwrap();
            let i = Inputs::new().with_tensor("image_hidden_states", x).with_ints("patch_attention_mask", &mshape, m.clone());
            let got = c.run_inputs(g, &i).unwrap();
            let err = rel_l2(&got.get("output").unwrap().data, &want.data);
            assert!(err <= tol, "idefics2 {dtype:?}: rel L2 {err:.2e}");
        }
    }
    let c = Connector::from_dir(g, data_dir().join("zoo/idefics2_connector")).unwrap();
    let i = Inputs::new().with_tensor("image_hidden_states", Tensor::from_slice(g, &x.data, &x.shape).unwrap()).with_ints(
        "patch_attention_mask",
        &[2, 15],
        vec![1; 30],
    );
    let err = c.run_inputs(g, &i).unwrap_err().to_string();
    assert!(err.contains("patch_attention_mask") && err.contains("[2, 16]"), "{err}");
}

/// Each zoo checkpoint with its connector's keys moved to the other layout transformers uses
/// (`save_pretrained`'s vs the in-memory `model.`-prefixed one; Idefics2's without `model.`) and
/// nothing else in the file: the same output.
#[test]
fn zoo_connectors_load_from_either_key_layout() {
    let g = gpu();
    let moves: &[(&str, &str, &str)] = &[
        ("qwen2_vl_merger", "visual.merger.", "model.visual.merger."),
        ("qwen2_5_vl_merger", "visual.merger.", "model.visual.merger."),
        ("internvl_pixel_shuffle", "multi_modal_projector.", "model.multi_modal_projector."),
        ("idefics3_connector", "model.connector.", "connector."),
        ("gemma3_projector", "multi_modal_projector.", "model.multi_modal_projector."),
        ("paligemma_projector", "multi_modal_projector.", "model.multi_modal_projector."),
        ("mistral3_projector", "multi_modal_projector.", "model.multi_modal_projector."),
        ("mllama_xattn", "language_model.model.layers.", "model.language_model.layers."),
        ("idefics2_connector", "model.connector.", "connector."),
    ];
    for &(case, from, to) in moves {
        let src = data_dir().join("zoo").join(case);
        let ws = WeightSource::open_file(src.join("model.safetensors")).unwrap();
        // Mllama's projector moves too (multi_modal_projector → model.multi_modal_projector).
        let rename = |n: &str| -> Option<String> {
            if let Some(rest) = n.strip_prefix(from) {
                return Some(format!("{to}{rest}"));
            }
            n.strip_prefix("multi_modal_projector.")
                .filter(|_| case == "mllama_xattn")
                .map(|rest| format!("model.multi_modal_projector.{rest}"))
        };
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = ws
            .names()
            .into_iter()
            .filter_map(|n| rename(n).map(|m| (n.to_string(), m)))
            .map(|(n, m)| {
                let h = ws.get_any(&n).unwrap();
                (m, h.shape, h.data.iter().flat_map(|v| v.to_le_bytes()).collect())
            })
            .collect();
        assert!(!tensors.is_empty(), "{case}: nothing under {from}");
        let dir = std::env::temp_dir().join(format!("vlmc-zoo-layout-{}-{case}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap()))
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
        std::fs::copy(src.join("config.json"), dir.join("config.json")).unwrap();
        let c = Connector::from_dir(g, &dir).unwrap_or_else(|e| panic!("{case} under {to}: {e}"));
        let outs = c.run(g, &WeightSource::open_file(src.join("inputs.safetensors")).unwrap()).unwrap();
        assert_close(&format!("{case} under {to}"), &outs.get("output").unwrap().data, &expected(case).data, 1e-5);
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// Idefics2's SwiGLU projection on a device whose storage-binding size holds fewer rows of its
/// [rows, 2·hidden] intermediate than the input has (Idefics2-8B at 980 px needs 537 MiB there;
/// lavapipe and WebGPU bind 128 MiB): the rows go through in blocks (here 200 rows of 128 floats
/// under a 32 KiB cap: blocks of 64, 64, 64, 8) and give what the one-block path gives.
#[test]
fn swiglu_runs_in_row_blocks_past_the_binding_limit() {
    use vlm_connectors::kernels::Activation;
    use vlm_connectors::nn::{Bias, GatedFeedForward, Linear};
    let capped = vlm_connectors::Gpu::new_with(vlm_connectors::GpuOptions {
        cap_storage_binding: Some(32 * 1024),
        autotune: vlm_connectors::runtime::tune::AutotuneSettings { enabled: false, cache: None },
        ..Default::default()
    })
    .unwrap();
    let (rows, dim, hidden, out) = (200, 4, 64, 5);
    let x: Vec<f32> = vlm_connectors::util::Rng::new(3).vec(rows * dim, 2.0);
    let run = |g: &vlm_connectors::Gpu| {
        let ws = WeightSource::random(9);
        let down = Linear::load(g, &ws.pp("down_proj"), Some(hidden), Some(out), Bias::None).unwrap();
        let mlp = GatedFeedForward::load(g, &ws, dim, hidden, Activation::Silu, Some(down)).unwrap();
        let mut rec = vlm_connectors::Recorder::new(g);
        let y = mlp.forward(&mut rec, &Tensor::from_slice(g, &x, &[2, rows / 2, dim]).unwrap()).unwrap();
        let copies = rec.labels().iter().filter(|l| **l == "copy_rows").count();
        rec.submit().unwrap();
        assert_eq!(y.shape(), &[2, rows / 2, out]);
        (y.to_vec(g).unwrap(), copies)
    };
    let ((blocked, copies), (plain, none)) = (run(&capped), run(gpu()));
    assert_eq!((copies, none), (8, 0), "4 blocks, each copied in and out");
    assert_close("SwiGLU in row blocks", &blocked, &plain, 1e-6);
}
