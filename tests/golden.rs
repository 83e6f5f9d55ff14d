//! Every golden case (PyTorch float32 references in tests/data) through the library.

mod common;
use common::*;

use vlm_connectors::checkpoint::{save_f32, Config, WeightSource};
use vlm_connectors::connectors::{Connector, LlavaProjector};
use vlm_connectors::{Recorder, Tensor};

#[test]
fn llava_cases_match_pytorch() {
    let g = gpu();
    let names = cases("llava");
    let plain: Vec<&String> = names.iter().filter(|n| !n.starts_with("llava_next") && !n.starts_with("llava_onevision")).collect();
    assert!(plain.len() >= 5, "llava golden cases missing: {names:?}");
    for case in plain {
        let proj = LlavaProjector::from_dir(g, case_dir(case)).unwrap_or_else(|e| panic!("{case}: {e}"));
        let x = inputs(case).get_any("image_features").unwrap();
        let want = expected(case).get_any("output").unwrap();
        let (got, shape) = proj.run(g, &x.data, &x.shape).unwrap();
        assert_eq!(shape, want.shape, "{case}: output shape");
        assert_close(case, &got, &want.data, 1e-5);
    }
}

#[test]
fn llava_projector_kinds_are_read_from_the_config() {
    let g = gpu();
    let p = LlavaProjector::from_dir(g, case_dir("llava_linear")).unwrap();
    assert_eq!((p.depth(), p.in_features, p.out_features), (1, 32, 48));
    let p = LlavaProjector::from_dir(g, case_dir("llava_original")).unwrap();
    assert_eq!((p.depth(), p.in_features, p.out_features), (2, 48, 80));
    let p = LlavaProjector::from_dir(g, case_dir("llava_tanh_legacy")).unwrap();
    assert_eq!(p.activation(), vlm_connectors::kernels::Activation::GeluTanh);
    // mlp1x_gelu and mlp0x_gelu are one Linear inside nn.Sequential: llava_linear's weights under
    // `.0.` give llava_linear's output.
    let src = WeightSource::open_dir(case_dir("llava_linear")).unwrap();
    let dir = std::env::temp_dir().join(format!("vlmc-mlp1x-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (w, b) = (src.get_any("model.mm_projector.weight").unwrap(), src.get_any("model.mm_projector.bias").unwrap());
    let views: [(&str, &[usize], &[f32]); 2] =
        [("model.mm_projector.0.weight", &w.shape, &w.data), ("model.mm_projector.0.bias", &b.shape, &b.data)];
    save_f32(dir.join("model.safetensors"), &views).unwrap();
    for kind in ["mlp1x_gelu", "mlp0x_gelu"] {
        let cfg = serde_json::json!({ "model_type": "llava_llama", "mm_projector_type": kind, "mm_hidden_size": 32, "hidden_size": 48 });
        std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
        let out = Connector::from_dir(g, &dir).unwrap().run(g, &inputs("llava_linear")).unwrap();
        assert_close(kind, &out.get("output").unwrap().data, &expected("llava_linear").get_any("output").unwrap().data, 1e-5);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn connector_dispatch_runs_llava_by_model_type() {
    let g = gpu();
    let case = "llava_tiny";
    let c = Connector::from_dir(g, case_dir(case)).unwrap();
    let outs = c.run(g, &inputs(case)).unwrap();
    let want = expected(case).get_any("output").unwrap();
    assert_eq!(outs[0].name, "output");
    assert_close("connector llava_tiny", &outs[0].data, &want.data, 1e-5);
}

#[test]
fn weights_in_f16_and_bf16_load_and_match_within_their_rounding() {
    // Re-save llava_tiny's projector in F16 and BF16: the loader widens to f32.
    let g = gpu();
    let ws = WeightSource::open_dir(case_dir("llava_tiny")).unwrap();
    let dir = std::env::temp_dir().join(format!("vlmc-halfs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = inputs("llava_tiny").get_any("image_features").unwrap();
    let want = expected("llava_tiny").get_any("output").unwrap();
    for (dtype, tol) in [(safetensors::Dtype::F16, 2e-3), (safetensors::Dtype::BF16, 2e-2)] {
        let names = [
            "multi_modal_projector.linear_1.weight",
            "multi_modal_projector.linear_1.bias",
            "multi_modal_projector.linear_2.weight",
            "multi_modal_projector.linear_2.bias",
        ];
        let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = names
            .iter()
            .map(|n| {
                let h = ws.get_any(n).unwrap();
                let bytes: Vec<u8> = h
                    .data
                    .iter()
                    .flat_map(|v| match dtype {
                        safetensors::Dtype::F16 => half::f16::from_f32(*v).to_le_bytes(),
                        _ => half::bf16::from_f32(*v).to_le_bytes(),
                    })
                    .collect();
                (n.to_string(), h.shape, bytes)
            })
            .collect();
        let views: Vec<(String, safetensors::tensor::TensorView)> =
            tensors.iter().map(|(n, s, b)| (n.clone(), safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap())).collect();
        safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
        std::fs::copy(case_dir("llava_tiny").join("config.json"), dir.join("config.json")).unwrap();
        let proj = LlavaProjector::from_dir(g, &dir).unwrap();
        let (got, _) = proj.run(g, &x.data, &x.shape).unwrap();
        let err = vlm_connectors::kernels::rel_l2(&got, &want.data);
        assert!(err < tol, "{dtype:?}: rel L2 {err:e}");
        assert!(err > 1e-6, "{dtype:?}: weights were not actually rounded (err {err:e})");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn sharded_checkpoints_load_through_the_index() {
    // Split llava_original into two shards plus model.safetensors.index.json.
    let g = gpu();
    let src = WeightSource::open_dir(case_dir("llava_original")).unwrap();
    let dir = std::env::temp_dir().join(format!("vlmc-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut names: Vec<String> = src.names().into_iter().map(String::from).collect();
    names.sort();
    let mut map = serde_json::Map::new();
    for (i, chunk) in names.chunks(names.len().div_ceil(2)).enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i + 1);
        let hs: Vec<_> = chunk.iter().map(|n| (n.clone(), src.get_any(n).unwrap())).collect();
        let views: Vec<(&str, &[usize], &[f32])> = hs.iter().map(|(n, h)| (n.as_str(), h.shape.as_slice(), h.data.as_slice())).collect();
        vlm_connectors::checkpoint::save_f32(dir.join(&file), &views).unwrap();
        for n in chunk {
            map.insert(n.clone(), serde_json::Value::String(file.clone()));
        }
    }
    std::fs::write(dir.join("model.safetensors.index.json"), serde_json::json!({ "metadata": {}, "weight_map": map }).to_string()).unwrap();
    std::fs::copy(case_dir("llava_original").join("config.json"), dir.join("config.json")).unwrap();
    let cfg = Config::from_file(dir.join("config.json")).unwrap();
    let proj = LlavaProjector::load(g, &cfg, &WeightSource::open_dir(&dir).unwrap()).unwrap();
    let x = inputs("llava_original").get_any("image_features").unwrap();
    let t = Tensor::from_slice(g, &x.data, &x.shape).unwrap();
    let mut rec = Recorder::new(g);
    let y = proj.forward(&mut rec, &t).unwrap();
    rec.submit().unwrap();
    assert_close("sharded llava_original", &y.to_vec(g).unwrap(), &expected("llava_original").get_any("output").unwrap().data, 1e-5);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn blip2_cases_match_pytorch() {
    let g = gpu();
    let names = cases("blip2");
    assert_eq!(names.len(), 2, "{names:?}");
    for case in &names {
        let q = vlm_connectors::connectors::QFormer::from_dir(g, case_dir(case)).unwrap_or_else(|e| panic!("{case}: {e}"));
        let x = inputs(case).get_any("image_embeds").unwrap();
        let t = Tensor::from_slice(g, &x.data, &x.shape).unwrap();
        let mut rec = Recorder::new(g);
        let (h, out) = q.forward(&mut rec, &t).unwrap();
        rec.submit().unwrap();
        let want = expected(case);
        let (wo, wq) = (want.get_any("output").unwrap(), want.get_any("qformer_output").unwrap());
        assert_eq!(out.shape(), wo.shape.as_slice(), "{case}: output shape");
        assert_eq!(h.shape(), wq.shape.as_slice(), "{case}: qformer_output shape");
        assert_close(&format!("{case}/qformer_output"), &h.to_vec(g).unwrap(), &wq.data, 1e-5);
        assert_close(&format!("{case}/output"), &out.to_vec(g).unwrap(), &wo.data, 1e-5);
    }
}

fn run_connector_case(case: &str) -> vlm_connectors::connectors::Outputs {
    let g = gpu();
    let c = Connector::from_dir(g, case_dir(case)).unwrap_or_else(|e| panic!("{case}: {e}"));
    c.run(g, &inputs(case)).unwrap_or_else(|e| panic!("{case}: {e}"))
}

#[test]
fn perceiver_cases_match_openflamingo() {
    let names = cases("perceiver");
    assert_eq!(names.len(), 2, "{names:?}");
    for case in &names {
        check_outputs(case, &["output"]);
    }
}

#[test]
fn gated_xattn_cases_match_openflamingo() {
    let names = cases("gated_xattn");
    assert_eq!(names.len(), 3, "{names:?}");
    for case in &names {
        check_outputs(case, &["output"]);
    }
}

#[test]
fn zero_gates_give_the_text_back_exactly() {
    let case = "gated_xattn_zero_gates";
    let outs = run_connector_case(case);
    let x = inputs(case).get_any("hidden_states").unwrap();
    assert_eq!(outs[0].data, x.data, "tanh(0) gates must return x bit for bit");
    assert_eq!(outs[0].data, expected(case).get_any("output").unwrap().data);
}

fn check_outputs(case: &str, names: &[&str]) {
    let outs = run_connector_case(case);
    let want = expected(case);
    for name in names {
        let got = outs.iter().find(|o| o.name == *name).unwrap_or_else(|| panic!("{case}: no output {name}"));
        let w = want.get_any(name).unwrap();
        assert_eq!(got.shape, w.shape, "{case}/{name}: shape");
        assert_close(&format!("{case}/{name}"), &got.data, &w.data, 1e-5);
    }
}

#[test]
fn llava_next_cases_match_pytorch() {
    let names = cases("llava_next");
    assert_eq!(names.len(), 2, "{names:?}");
    for case in &names {
        check_outputs(case, &["output", "projected"]);
    }
}

#[test]
fn pool_cases_match_avg_pool2d() {
    for case in cases("pool") {
        check_outputs(&case, &["output"]);
    }
}

#[test]
fn tome_cases_match_tome_and_sizes_exactly() {
    let names = cases("tome");
    assert_eq!(names.len(), 2, "{names:?}");
    for case in &names {
        check_outputs(case, &["output"]);
        let outs = run_connector_case(case);
        let size = outs.iter().find(|o| o.name == "size").unwrap();
        assert_eq!(size.data, expected(case).get_any("size").unwrap().data, "{case}: sizes must match exactly");
    }
}

#[test]
fn llava_next_video_pools_each_frame_before_the_projector() {
    // llava_tiny's projector under a llava_next_video config: 6×6 tokens per frame (84 / 14).
    let g = gpu();
    let dir = std::env::temp_dir().join(format!("vlmc-video-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(case_dir("llava_tiny").join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let cfg = r#"{"model_type": "llava_next_video", "projector_hidden_act": "gelu", "spatial_pool_mode": "average",
                  "spatial_pool_stride": 2, "vision_config": {"hidden_size": 64, "image_size": 84, "patch_size": 14}}"#;
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let c = Connector::from_dir(g, &dir).unwrap();
    let outs = c.run(g, &inputs("llava_tiny")).unwrap();
    assert_eq!(outs[0].shape, vec![2, 9, 96]);
    // reference: pooled on the CPU, then the projector (checked against PyTorch above)
    let x = inputs("llava_tiny").get_any("image_features").unwrap();
    let pooled = vlm_connectors::kernels::pool::avg_pool2x2_cpu(&x.data, 2, 6, 6, 64);
    let (want, _) = LlavaProjector::from_dir(g, case_dir("llava_tiny")).unwrap().run(g, &pooled, &[2, 9, 64]).unwrap();
    assert_close("llava_next_video", &outs[0].data, &want, 1e-6);
    std::fs::write(dir.join("config.json"), cfg.replace("average", "bilinear")).unwrap();
    assert!(Connector::from_dir(g, &dir).err().unwrap().to_string().contains("spatial_pool_mode"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bug_cases_the_reference_accepts_match_it() {
    // A tile that is not a multiple of the patch (transformers floors image_size // patch_size), and a
    // ToMe r that clamps to 0 (merge.py returns the tokens unchanged).
    let names = cases("bug_");
    assert_eq!(names, ["bug_tile_not_multiple", "bug_tome_r_clamped"]);
    check_outputs("bug_tile_not_multiple", &["output", "projected"]);
    check_outputs("bug_tome_r_clamped", &["output", "size"]);
    let x = inputs("bug_tome_r_clamped").get_any("tokens").unwrap();
    assert_eq!(run_connector_case("bug_tome_r_clamped")[0].data, x.data, "r clamped to 0 returns the tokens bit for bit");
}

#[test]
fn instructblip_matches_transformers() {
    check_outputs("instructblip", &["output", "qformer_output"]);
    // Padding masks keys only: with the last two tokens of row 1 padded, their ids change nothing,
    // while the unpadded row's output is the same as with no padding at all... for that row only.
    let g = gpu();
    let c = Connector::from_dir(g, case_dir("instructblip")).unwrap();
    let inp = inputs("instructblip");
    let x = inp.get_any("image_embeds").unwrap();
    let (shape, ids) = inp.get_int("qformer_input_ids").unwrap();
    let run = |ids: Vec<i64>, mask: Vec<i64>| {
        let i = vlm_connectors::connectors::Inputs::new()
            .with_tensor("image_embeds", vlm_connectors::Tensor::from_slice(g, &x.data, &x.shape).unwrap())
            .with_ints("qformer_input_ids", &shape, ids)
            .with_ints("qformer_attention_mask", &shape, mask);
        c.run_inputs(g, &i).unwrap().get("output").unwrap().data.clone()
    };
    let t = shape[1];
    let mut mask = vec![1i64; 2 * t];
    mask[2 * t - 2..].fill(0);
    let a = run(ids.clone(), mask.clone());
    let mut other = ids.clone();
    other[2 * t - 1] = (other[2 * t - 1] + 5) % 20;
    other[2 * t - 2] = (other[2 * t - 2] + 3) % 20;
    assert_eq!(a, run(other, mask), "padded ids must not matter");
    let full = run(ids, vec![1; 2 * t]);
    let half = a.len() / 2;
    assert_eq!(a[..half], full[..half], "row 0 has no padding");
    assert!(vlm_connectors::kernels::rel_l2(&a[half..], &full[half..]) > 1e-4, "padding row 1 must change row 1");
}

#[test]
fn llava_onevision_matches_transformers() {
    // anyres_max_9 on a 100×190 image: grid 4×6, unpadded 6×12, ratio √2 → bilinear to 4×8.
    check_outputs("llava_onevision_anyres", &["output", "projected"]);
    let c: vlm_connectors::connectors::LlavaOnevision =
        Connector::from_dir(gpu(), case_dir("llava_onevision_anyres")).unwrap().into_model().unwrap();
    assert_eq!(c.resized(6, 12, 2).unwrap(), Some([4, 8]));
    assert_eq!(c.resized(6, 6, 2).unwrap(), None, "ratio ≤ 1.1 keeps the map as LLaVA-NeXT does");
    // Python's float floor division: 10 // (10/6) is 5.0 although 10 / (10/6) rounds to 6.0.
    assert_eq!(c.resized(10, 10, 2).unwrap(), Some([5, 5]));
    // The token counts of the three paths, through the connector: a 150×150 image (5×5 grid,
    // 10×10 map → 5×5), a 30×60 one (1×2 grid, 2×4 map, kept), and the base tile alone.
    let g = gpu();
    let count = |tiles: usize, size: [usize; 2]| {
        let x = vlm_connectors::Tensor::from_slice(g, &vec![0.1; tiles * 4 * 16], &[tiles, 4, 16]).unwrap();
        let mut rec = vlm_connectors::Recorder::new(g);
        let (packed, _) = c.forward(&mut rec, &x, size).unwrap();
        rec.submit().unwrap();
        assert!(packed.to_vec(g).unwrap().iter().all(|v| v.is_finite()));
        packed.shape()[0]
    };
    assert_eq!(count(26, [150, 150]), 4 + 5 * (5 + 1));
    assert_eq!(count(3, [30, 60]), 4 + 2 * (4 + 1));
    assert_eq!(count(1, [150, 150]), 4 + 1);
}

#[test]
fn instructblip_without_an_instruction_runs_the_queries_alone() {
    // T = 0: the embeddings are the queries alone; the output keeps its [B, Q, ·] shape.
    let g = gpu();
    let c = Connector::from_dir(g, case_dir("instructblip")).unwrap();
    let x = inputs("instructblip").get_any("image_embeds").unwrap();
    let i = vlm_connectors::connectors::Inputs::new()
        .with_tensor("image_embeds", vlm_connectors::Tensor::from_slice(g, &x.data, &x.shape).unwrap())
        .with_ints("qformer_input_ids", &[2, 0], vec![])
        .with_ints("qformer_attention_mask", &[2, 0], vec![]);
    let outs = c.run_inputs(g, &i).unwrap();
    assert_eq!(outs.get("output").unwrap().shape, [2, 6, 40]);
    assert!(outs.get("output").unwrap().data.iter().all(|v| v.is_finite()));
}
