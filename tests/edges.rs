//! Inputs at the edges that the references accept, against what they compute there
//! (`tests/data/edge`, written by `tests/data/tools/make_edge_cases.py` with OpenFlamingo 2.0.1):
//! zero frames or tokens per frame, more `<image>` tokens than media, `<image>` counts above 1,
//! one media row shared by every text row, one-row embedding tables that broadcast, and zero layers.

mod common;
use common::*;

use vlm_connectors::checkpoint::{Config, WeightSource};
use vlm_connectors::connectors::{Connector, Inputs};
use vlm_connectors::Tensor;

fn edge(name: &str) -> WeightSource {
    WeightSource::open_file(data_dir().join("edge").join(name)).unwrap()
}

fn tensor(ws: &WeightSource, name: &str) -> Tensor {
    let h = ws.get_any(name).unwrap();
    Tensor::from_slice(gpu(), &h.data, &h.shape).unwrap()
}

fn check_output(c: &Connector, inputs: Inputs, want: &WeightSource, key: &str, name: &str) {
    let w = want.get_any(key).unwrap();
    let outs = c.run_inputs(gpu(), &inputs).unwrap_or_else(|e| panic!("{name}: {e}"));
    let got = outs.get("output").unwrap();
    assert_eq!(got.shape, w.shape, "{name}: shape");
    assert_close(name, &got.data, &w.data, 1e-5);
}

#[test]
fn perceiver_with_no_media_tokens_attends_the_latents_alone() {
    let c = Connector::from_dir(gpu(), case_dir("perceiver_tiny")).unwrap();
    let e = edge("perceiver_tiny_empty_media.safetensors");
    for (x, out) in [("v0_vision_features", "v0_output"), ("f0_vision_features", "f0_output")] {
        check_output(&c, Inputs::new().with_tensor("vision_features", tensor(&e, x)), &e, out, out);
    }
}

#[test]
fn gated_layers_take_extra_images_counts_and_shared_media() {
    for case in ["gated_xattn_tiny", "gated_xattn_all_previous"] {
        let c = Connector::from_dir(gpu(), case_dir(case)).unwrap();
        let e = edge(&format!("{case}_extra_images.safetensors"));
        for (media, locations, out) in [("media", "media_locations", "output"), ("shared_media", "shared_locations", "shared_output")] {
            let (shape, values) = e.get_int(locations).unwrap();
            let inputs = Inputs::new()
                .with_tensor("hidden_states", tensor(&e, "hidden_states"))
                .with_tensor("media", tensor(&e, media))
                .with_ints("media_locations", &shape, values);
            check_output(&c, inputs, &e, out, &format!("{case}/{out}"));
        }
    }
}

#[test]
fn one_row_embedding_tables_broadcast_over_frames_and_media() {
    let cfg = Config::from_value(serde_json::json!({
        "model_type": "open_flamingo",
        "perceiver": { "dim": 16, "depth": 1, "dim_head": 4, "heads": 2, "num_latents": 3 }
    }));
    let e = edge("perceiver_one_row_embs.safetensors");
    let c = Connector::load(gpu(), &cfg, Some(&e)).unwrap();
    check_output(&c, Inputs::new().with_tensor("vision_features", tensor(&e, "vision_features")), &e, "output", "one-row embs");
}

/// Zero layers build fine in transformers (`Blip2QFormerConfig(num_hidden_layers=0)`) and
/// OpenFlamingo (`depth=0`): the queries / latents are only normalised (and projected).
#[test]
fn zero_layers_normalise_the_queries_and_latents() {
    use vlm_connectors::kernels::layernorm::layernorm_cpu;
    let g = gpu();
    let ws = WeightSource::random(11);
    let host = |name: &str, shape: &[usize]| ws.get_host(name, shape).unwrap().data;
    // BLIP-2: language_projection(LayerNorm(query_tokens)) for every image.
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case_dir("blip2_tiny").join("config.json")).unwrap()).unwrap();
    v["qformer_config"]["num_hidden_layers"] = serde_json::json!(0);
    let (q, h, eps) =
        (v["num_query_tokens"].as_u64().unwrap() as usize, 64, v["qformer_config"]["layer_norm_eps"].as_f64().unwrap() as f32);
    let c = Connector::load(g, &Config::from_value(v), Some(&ws)).unwrap();
    let x = Tensor::from_slice(g, &vec![0.3; 2 * 5 * 48], &[2, 5, 48]).unwrap();
    let out = c.run_inputs(g, &Inputs::new().with_tensor("image_embeds", x)).unwrap();
    let n = layernorm_cpu(
        &host("query_tokens", &[1, q, h]),
        None,
        &host("qformer.layernorm.weight", &[h]),
        &host("qformer.layernorm.bias", &[h]),
        h,
        eps,
    );
    let got = out.get("qformer_output").unwrap();
    assert_eq!(got.shape, [2, q, h]);
    assert_close("qformer 0 layers", &got.data[..q * h], &n, 1e-6);
    assert_eq!(got.data[..q * h], got.data[q * h..], "every image gets the same queries");
    // OpenFlamingo: LayerNorm(latents) for every media.
    let cfg = Config::from_value(serde_json::json!({
        "model_type": "open_flamingo", "perceiver": { "dim": 16, "depth": 0, "dim_head": 4, "heads": 2, "num_latents": 3 }
    }));
    let c = Connector::load(g, &cfg, Some(&ws)).unwrap();
    let x = Tensor::from_slice(g, &vec![0.3; 2 * 4 * 16], &[1, 2, 1, 4, 16]).unwrap();
    let out = c.run_inputs(g, &Inputs::new().with_tensor("vision_features", x)).unwrap();
    let n = layernorm_cpu(
        &host("perceiver.latents", &[3, 16]),
        None,
        &host("perceiver.norm.weight", &[16]),
        &host("perceiver.norm.bias", &[16]),
        16,
        1e-5,
    );
    let got = out.get("output").unwrap();
    assert_eq!(got.shape, [1, 2, 3, 16]);
    assert_close("perceiver depth 0", &got.data[..48], &n, 1e-6);
    assert_close("perceiver depth 0, media 2", &got.data[48..], &n, 1e-6);
}

/// The grid resampling kernels against torch itself (`edge/resample.safetensors`):
/// `F.interpolate(bilinear, align_corners=False)` down, up and mixed, `MaxPool2d(3)` (one input
/// -inf) and `AvgPool2d(3)` on grids that are not multiples of 3.
#[test]
fn grid_resampling_matches_torch() {
    use vlm_connectors::kernels::pool::{record_pool2d, record_resize_bilinear, PoolMode};
    let g = gpu();
    let e = edge("resample.safetensors");
    let mut rec = vlm_connectors::Recorder::new(g);
    let mut runs = Vec::new();
    for (name, hw, out) in [("down", [5, 5], [3, 3]), ("up", [3, 4], [7, 9]), ("mixed", [7, 3], [12, 2])] {
        runs.push((format!("{name}_y"), record_resize_bilinear(&mut rec, &tensor(&e, &format!("{name}_x")), hw, out).unwrap()));
    }
    runs.push(("max3_y".into(), record_pool2d(&mut rec, &tensor(&e, "pool_x"), [7, 8], 3, PoolMode::Max).unwrap()));
    runs.push(("avg3_y".into(), record_pool2d(&mut rec, &tensor(&e, "pool_x_finite"), [7, 8], 3, PoolMode::Average).unwrap()));
    rec.submit().unwrap();
    for (name, y) in runs {
        let want = e.get_any(&name).unwrap();
        let got = y.to_vec(g).unwrap();
        assert_eq!(y.shape(), &want.shape[..], "{name}");
        assert_close(&name, &got, &want.data, 1e-6);
    }
}
