//! Video paths against their CPU references: LLaVA-OneVision's `get_video_features` (projector,
//! bilinear pooling of each frame to ⌈side/2⌉², one newline after the video) on SigLIP's geometry
//! (image_size 76, patch 14: 5×5 → 3×3, like 27×27 → 14×14 in the real model), and
//! LLaVA-NeXT-Video's pooler (average or max, any stride, the grid from the token count).

mod common;
use common::{case_dir, gpu};

use vlm_connectors::checkpoint::{Config, WeightSource};
use vlm_connectors::connectors::{Connector, Inputs, LlavaOnevision};
use vlm_connectors::kernels::pool::{pool2d_cpu, resize_bilinear_cpu, PoolMode};
use vlm_connectors::kernels::rel_l2;
use vlm_connectors::util::Rng;
use vlm_connectors::Tensor;

fn model(image_size: usize) -> (Connector, WeightSource) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case_dir("llava_onevision_anyres").join("config.json")).unwrap()).unwrap();
    v["vision_config"]["image_size"] = serde_json::json!(image_size);
    let ws = WeightSource::random(3);
    (Connector::load(gpu(), &Config::from_value(v), Some(&ws)).unwrap(), ws)
}

#[test]
fn video_frames_are_pooled_bilinearly_after_the_projector() {
    let g = gpu();
    for (image_size, frames) in [(76, 3), (30, 1), (14 * 7, 2)] {
        let (c, ws) = model(image_size);
        let side = image_size / 14;
        let half = side.div_ceil(2);
        let ov: &LlavaOnevision = c.model().unwrap();
        let cv = ov.projector.in_features;
        let x = Rng::new(side as u64).vec(frames * side * side * cv, 1.0);
        let inputs = Inputs::new().with_tensor("video_features", Tensor::from_slice(g, &x, &[frames, side * side, cv]).unwrap());
        let outs = c.run_inputs(g, &inputs).unwrap();
        let (projected, shape) = ov.projector.run(g, &x, &[frames, side * side, cv]).unwrap();
        let ct = shape[2];
        let pooled = resize_bilinear_cpu(&projected, frames, [side, side], ct, [half, half]);
        let newline = ws.get_host("image_newline", &[ct]).unwrap().data;
        let want: Vec<f32> = pooled.iter().chain(&newline).copied().collect();
        let got = outs.get("output").unwrap();
        assert_eq!(got.shape, [frames * half * half + 1, ct], "side {side}");
        assert!(rel_l2(&got.data, &want) < 1e-6, "side {side}: {}", rel_l2(&got.data, &want));
        assert_eq!(outs.get("pooled").unwrap().shape, [frames, half * half, ct]);
    }
    // Another token count per frame, and video with image features, are errors naming the input.
    let (c, _) = model(76);
    let bad = Inputs::new().with_tensor("video_features", Tensor::from_slice(g, &[0.0; 2 * 24 * 16], &[2, 24, 16]).unwrap());
    let e = c.run_inputs(g, &bad).unwrap_err().to_string();
    assert!(e.contains("video_features") && e.contains("25 (= 5²"), "{e}");
    let both = bad.with_tensor("image_features", Tensor::from_slice(g, &[0.0; 25 * 16], &[1, 25, 16]).unwrap());
    assert!(c.run_inputs(g, &both).unwrap_err().to_string().contains("not both"));
}

#[test]
fn llava_next_video_pools_average_or_max_at_any_stride() {
    let g = gpu();
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case_dir("llava_next_square").join("config.json")).unwrap()).unwrap();
    for (mode, stride, side) in [("average", 2, 6), ("max", 2, 7), ("average", 3, 7), ("max", 4, 9)] {
        let mut v = base.clone();
        v["model_type"] = serde_json::json!("llava_next_video");
        v["spatial_pool_mode"] = serde_json::json!(mode);
        v["spatial_pool_stride"] = serde_json::json!(stride);
        let c = Connector::load(g, &Config::from_value(v), Some(&WeightSource::random(5))).unwrap();
        let p: &vlm_connectors::connectors::LlavaNextVideo = c.model().unwrap();
        let cv = p.projector.in_features;
        let x = Rng::new(side as u64).vec(2 * side * side * cv, 1.0);
        let outs = c
            .run_inputs(g, &Inputs::new().with_tensor("image_features", Tensor::from_slice(g, &x, &[2, side * side, cv]).unwrap()))
            .unwrap();
        let pm = if mode == "max" { PoolMode::Max } else { PoolMode::Average };
        let o = side / stride;
        let pooled = pool2d_cpu(&x, 2, [side, side], cv, stride, pm);
        let (want, _) = p.projector.run(g, &pooled, &[2, o * o, cv]).unwrap();
        let got = outs.get("output").unwrap();
        assert_eq!(got.shape[1], o * o, "{mode}/{stride}");
        assert!(rel_l2(&got.data, &want) < 1e-6, "{mode}/{stride}: {}", rel_l2(&got.data, &want));
    }
    // A token count that is not a square is refused, as the pooler's view fails on it.
    let mut v = base.clone();
    v["model_type"] = serde_json::json!("llava_next_video");
    let c = Connector::load(g, &Config::from_value(v.clone()), Some(&WeightSource::random(5))).unwrap();
    let e = c
        .run_inputs(g, &Inputs::new().with_tensor("image_features", Tensor::from_slice(g, &[0.0; 10 * 32], &[1, 10, 32]).unwrap()))
        .unwrap_err();
    assert!(e.to_string().contains("not one"), "{e}");
    v["spatial_pool_mode"] = serde_json::json!("conv");
    let e = Connector::load(g, &Config::from_value(v), Some(&WeightSource::random(5))).unwrap_err();
    assert!(e.to_string().contains("spatial_pool_mode") && e.to_string().contains("not implemented"), "{e}");
}
