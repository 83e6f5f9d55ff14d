//! LLaVA-OneVision / LLaVA-NeXT-Video: the video paths against their CPU references: LLaVA-OneVision's `get_video_features` (projector,
//! bilinear pooling of each frame to ⌈side/2⌉², one newline after the video) on SigLIP's geometry
//! (image_size 76, patch 14: 5×5 → 3×3, like 27×27 → 14×14 in the real model), and
//! LLaVA-NeXT-Video's pooler (average or max, any stride, the grid from the token count).

mod common;
use common::{case_dir, gpu};

use vlm_connectors::checkpoint::{Config, WeightSource};
use vlm_connectors::connectors::{AnyResPacker, Connector, Inputs, LlavaOnevision};
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
    // Video and a (single-tile) image in one run, as one forward of the reference takes both.
    let both = Inputs::new()
        .with_tensor("video_features", Tensor::from_slice(g, &[0.5; 2 * 25 * 16], &[2, 25, 16]).unwrap())
        .with_tensor("image_features", Tensor::from_slice(g, &[0.25; 25 * 16], &[1, 25, 16]).unwrap());
    let outs = c.run_inputs(g, &both).unwrap();
    let names: Vec<&str> = outs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["output", "projected", "video_output", "pooled"]);
    assert_eq!(outs.get("output").unwrap().shape[0], 26);
    assert_eq!(outs.get("video_output").unwrap().shape[0], 2 * 9 + 1);
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

/// What `pack_image_features` and the configs accept: one tile of any token count with no image
/// size, `image_sizes` as [1, 2], `vision_aspect_ratio` "9", and the family defaults.
#[test]
fn anyres_inputs_and_defaults_follow_transformers() {
    let g = gpu();
    let base: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case_dir("llava_onevision_anyres").join("config.json")).unwrap()).unwrap();
    let load = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = base.clone();
        edit(&mut v);
        Connector::load(g, &Config::from_value(v), Some(&WeightSource::random(2))).unwrap()
    };
    // One tile: the base view's tokens (any count, e.g. with the CLS kept) and a newline.
    let c = load(&|_| {});
    let x = Rng::new(1).vec(5 * 16, 1.0);
    let outs = c.run_inputs(g, &Inputs::new().with_tensor("image_features", Tensor::from_slice(g, &x, &[1, 5, 16]).unwrap())).unwrap();
    let ov: &LlavaOnevision = c.model().unwrap();
    let (projected, _) = ov.projector.run(g, &x, &[1, 5, 16]).unwrap();
    assert_eq!(outs.get("output").unwrap().shape, [6, 24]);
    assert_eq!(&outs.get("output").unwrap().data[..5 * 24], &projected[..]);
    let newline = WeightSource::random(2).get_host("image_newline", &[24]).unwrap().data;
    assert_eq!(&outs.get("output").unwrap().data[5 * 24..], &newline[..], "the last row is image_newline");
    // Several tiles need the size, as [2] or [1, 2].
    let tiles = Tensor::from_slice(g, &vec![0.1; 3 * 4 * 16], &[3, 4, 16]).unwrap();
    let e = c.run_inputs(g, &Inputs::new().with_tensor("image_features", tiles.clone())).unwrap_err().to_string();
    assert!(e.contains("image_size") && e.contains("missing"), "{e}");
    let run = |shape: &[usize]| {
        c.run_inputs(g, &Inputs::new().with_tensor("image_features", tiles.clone()).with_ints("image_size", shape, vec![30, 60]))
    };
    assert_eq!(run(&[2]).unwrap().get("output").unwrap().data, run(&[1, 2]).unwrap().get("output").unwrap().data);
    // vision_aspect_ratio as transformers strips it; no positive N is an error only where it is read.
    for (v, n) in [("anyres_max_9", 9), ("9", 9), ("anyres_max_4", 4), ("anyres_max_0", 0), ("bad", 0)] {
        let c = load(&|c: &mut serde_json::Value| c["vision_aspect_ratio"] = serde_json::json!(v));
        let ov: &LlavaOnevision = c.model().unwrap();
        assert_eq!(ov.max_num_patches, n, "{v}");
        assert_eq!(ov.resized(6, 6, 2).is_err(), n == 0, "{v}");
    }
    // Defaults: OneVision without pinpoints or vision_config is SigLIP/384 on the 6×6 grid of 384s;
    // a vision_config without sizes takes its tower's own (CLIP 224 / 32, SigLIP 224 / 16).
    let packer = |v: serde_json::Value| AnyResPacker::from_config(&Config::from_value(v)).unwrap();
    let p = packer(serde_json::json!({ "model_type": "llava_onevision" }));
    assert_eq!((p.tile, p.patch, p.pinpoints.len(), p.pinpoints[1], p.pinpoints[35]), (384, 14, 36, [384, 768], [2304, 2304]));
    assert_eq!(p.tile_count([336, 336]).unwrap(), 2, "a 336×336 image is one 384 tile + the base view");
    let p = packer(serde_json::json!({ "model_type": "llava_next" }));
    assert_eq!((p.tile, p.patch, p.pinpoints.len()), (336, 14, 5));
    for (family, tower, want) in [
        ("llava_onevision", None, (224, 16)),
        ("llava_next", None, (224, 32)),
        ("llava_next", Some("siglip_vision_model"), (224, 16)),
        ("llava_onevision", Some("clip_vision_model"), (224, 32)),
    ] {
        let vc = match tower {
            Some(t) => serde_json::json!({ "model_type": t, "hidden_size": 16 }),
            None => serde_json::json!({ "hidden_size": 16 }),
        };
        let p = packer(serde_json::json!({ "model_type": family, "vision_config": vc }));
        assert_eq!((p.tile, p.patch), want, "{family} {tower:?}");
    }
    let e = AnyResPacker::from_config(&Config::from_value(
        serde_json::json!({ "model_type": "llava_next", "vision_config": { "model_type": "intern_vit_6b" } }),
    ));
    assert!(e.unwrap_err().to_string().contains("vision_config.image_size"));
}
