//! From pixels (issue "From pixels", first part): the `patchify` kernel against its CPU reference,
//! and LLaVA, LLaVA-NeXT and BLIP-2 from `pixel_values` (tower + connector) against transformers
//! 5.24 (`tests/data/pixels/*`, copied from `../shared/golden`; each `inputs.safetensors` holds the
//! golden `pixel_values`) through the library, in f16, and through `vlmc run`.

mod common;
use common::{assert_close, data_dir, gpu};

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::connectors::{Connector, Inputs, LoadOptions};

use vlm_connectors::kernels::pool::{patchify_cpu, record_patchify};
use vlm_connectors::kernels::rel_l2;
use vlm_connectors::util::Rng;
use vlm_connectors::{DType, Recorder, Tensor};

fn case() -> std::path::PathBuf {
    data_dir().join("pixels/pixels_llava_clip")
}

fn tower_opts(dtype: DType) -> LoadOptions {
    LoadOptions { overrides: vec![("load_vision_tower".into(), serde_json::Value::Bool(true))], dtype }
}

#[test]
fn patchify_matches_cpu_exactly_over_awkward_sizes() {
    let g = gpu();
    let f16 = g.features().contains(vlm_connectors::wgpu::Features::SHADER_F16);
    let mut rng = Rng::new(14);
    // (b, c, h, w, k): sides that are not multiples of k are floored (SigLIP's 384 / 14).
    for &(b, c, h, w, k) in &[(1, 1, 1, 1, 1), (2, 3, 7, 9, 2), (1, 3, 30, 30, 14), (1, 3, 56, 63, 14), (3, 2, 65, 17, 8)] {
        let x: Vec<f32> = rng.vec(b * c * h * w, 2.0).iter().map(|v| half::f16::from_f32(*v).to_f32()).collect();
        let want = patchify_cpu(&x, [b, c, h, w], k);
        for dtype in [DType::F32, DType::F16].into_iter().filter(|&d| d == DType::F32 || f16) {
            let mut rec = Recorder::new(g);
            let y = record_patchify(&mut rec, &Tensor::from_host(g, &x, &[b, c, h, w], dtype).unwrap(), k).unwrap();
            rec.submit().unwrap();
            assert_eq!(y.shape(), &[b, (h / k) * (w / k), c * k * k]);
            assert_eq!(y.to_vec(g).unwrap(), want, "b{b} c{c} {h}×{w} k{k} {dtype:?}");
        }
    }
    let mut rec = Recorder::new(g);
    let e = record_patchify(&mut rec, &Tensor::from_slice(g, &[0.0; 27], &[1, 3, 3, 3]).unwrap(), 4).unwrap_err().to_string();
    assert!(e.contains("pixel_values") && e.contains("[1, 3, 3, 3]"), "{e}");
    rec.discard();
}

/// CLIP up to layer −2 (the last layer not run), CLS dropped, then LLaVA's connector; BLIP-2's EVA
/// tower (fused qkv, post_layernorm, CLS kept), then the Q-Former: every expected tensor against
/// transformers, in f32 (≤ 1e-5) and f16 (≤ 5e-3). LLaVA-NeXT: 21 AnyRes tiles of a 400×600 photo.
#[test]
fn llava_and_llava_next_run_from_pixel_values_like_transformers() {
    let g = gpu();
    for (name, outputs) in [
        ("pixels_llava_clip", &["vision_features", "output"][..]),
        ("pixels_llava_next", &["vision_features", "projected", "output"][..]),
        ("pixels_blip2", &["vision_features", "qformer_output", "output"][..]),
    ] {
        let dir = data_dir().join("pixels").join(name);
        let want = WeightSource::open_file(dir.join("expected.safetensors")).unwrap();
        for (dtype, tol) in [(DType::F32, 1e-5), (DType::F16, 5e-3)] {
            if dtype == DType::F16 && !g.features().contains(vlm_connectors::wgpu::Features::SHADER_F16) {
                continue;
            }
            let c = Connector::from_dir_opts(g, &dir, &tower_opts(dtype)).unwrap();
            assert_eq!(c.input_names()[0], "pixel_values");
            let out = c.run(g, &WeightSource::open_file(dir.join("inputs.safetensors")).unwrap()).unwrap();
            for &o in outputs {
                let (got, w) = (out.get(o).unwrap(), want.get_any(o).unwrap());
                assert_eq!(got.shape, w.shape, "{name} {o}");
                let e = rel_l2(&got.data, &w.data);
                eprintln!("{name} {o} {dtype:?}: rel L2 {e:.2e}");
                if dtype == DType::F32 {
                    assert_close(&format!("{name} {o}"), &got.data, &w.data, tol);
                } else {
                    assert!(e <= tol, "{name} {o} {dtype:?}: rel L2 {e:.2e}");
                }
            }
        }
        // Without the option the folder loads as the connector alone, as before.
        let c = Connector::from_dir(g, &dir).unwrap();
        assert!(["image_features", "image_embeds"].contains(&c.input_names()[0]), "{:?}", c.input_names());
    }
}

#[test]
fn pixel_values_of_the_wrong_size_and_feature_layers_that_do_not_fit_are_errors() {
    let g = gpu();
    let c = Connector::from_dir_opts(g, case(), &tower_opts(DType::F32)).unwrap();
    let i = Inputs::new().with_tensor("pixel_values", Tensor::from_slice(g, &vec![0.5; 3 * 42 * 42], &[1, 3, 42, 42]).unwrap());
    let e = c.run_inputs(g, &i).unwrap_err().to_string();
    assert!(e.contains("pixel_values") && e.contains("[B, 3, 56, 56]") && e.contains("[1, 3, 42, 42]"), "{e}");
    let mut o = tower_opts(DType::F32);
    o.overrides.push(("vision_feature_layer".into(), serde_json::json!([-2, -1])));
    // Two layers concatenated are 64 channels: the 32-wide projector is refused, naming its weight.
    let e = Connector::from_dir_opts(g, case(), &o).unwrap_err().to_string();
    assert!(e.contains("multi_modal_projector.linear_1.weight") && e.contains("[48, 64]"), "{e}");
    for bad in [serde_json::json!([]), serde_json::json!("last"), serde_json::json!([-1, 5])] {
        let mut o = tower_opts(DType::F32);
        o.overrides.push(("vision_feature_layer".into(), bad.clone()));
        let e = Connector::from_dir_opts(g, case(), &o).unwrap_err().to_string();
        assert!(e.contains("vision_feature_layer"), "{bad}: {e}");
    }
    let mut o = tower_opts(DType::F32);
    o.overrides.push(("vision_feature_layer".into(), serde_json::json!(-4)));
    let e = Connector::from_dir_opts(g, case(), &o).unwrap_err().to_string();
    assert!(e.contains("vision_feature_layer") && e.contains("3 hidden states"), "{e}");
}

/// `vlmc run` on a pixel_values file runs the tower too and writes every output.
#[test]
fn vlmc_run_takes_pixel_values() {
    for (name, outputs) in [
        ("pixels_llava_clip", &["output", "vision_features"][..]),
        ("pixels_llava_next", &["output", "projected", "vision_features"][..]),
        ("pixels_blip2", &["output", "qformer_output", "vision_features"][..]),
    ] {
        let dir = data_dir().join("pixels").join(name);
        let out = std::env::temp_dir().join(format!("vlmc-pixels-{}-{name}.safetensors", std::process::id()));
        let st = std::process::Command::new(env!("CARGO_BIN_EXE_vlmc"))
            .env("VLMC_AUTOTUNE", "off")
            .args(["run", dir.to_str().unwrap(), "--inputs"])
            .arg(dir.join("inputs.safetensors"))
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap();
        assert!(st.status.success(), "{name}: {}", String::from_utf8_lossy(&st.stderr));
        // vlmc info says the folder also runs from pixels, and with the flag lists pixel_values.
        let info = |set: &[&str]| {
            let st =
                std::process::Command::new(env!("CARGO_BIN_EXE_vlmc")).args(["info", dir.to_str().unwrap()]).args(set).output().unwrap();
            String::from_utf8_lossy(&st.stdout).to_string()
        };
        assert!(info(&[]).contains("from pixels: `vlmc run`"), "{name}");
        assert!(info(&[]).contains("images: `vlmc encode` runs"), "{name}");
        assert!(info(&["--set", "load_vision_tower=true"]).contains("inputs: pixel_values"), "{name}");
        let (got, want) = (WeightSource::open_file(&out).unwrap(), WeightSource::open_file(dir.join("expected.safetensors")).unwrap());
        for &o in outputs {
            assert_close(&format!("vlmc run {name} {o}"), &got.get_any(o).unwrap().data, &want.get_any(o).unwrap().data, 1e-5);
        }
        std::fs::remove_file(&out).ok();
    }
}

/// What the golden cases leave out, checked against the tower itself: a batch of two equals the
/// image twice; `vision_feature_layer` 1 and 0 equal −2 and −3 (Python indexing over embeddings +
/// 2 layers); `full` keeps the CLS row in front of what `default` returns.
#[test]
fn batches_layer_indices_and_the_full_strategy_agree_with_the_tower() {
    let g = gpu();
    let dir = data_dir().join("pixels/pixels_llava_clip");
    let px = WeightSource::open_file(dir.join("expected.safetensors")).unwrap().get_any("pixel_values").unwrap();
    let features = |extra: &[(&str, serde_json::Value)], batch: usize| {
        let mut o = tower_opts(DType::F32);
        o.overrides.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let c = Connector::from_dir_opts(g, &dir, &o).unwrap();
        let data: Vec<f32> = (0..batch).flat_map(|_| px.data.iter().copied()).collect();
        let mut shape = px.shape.clone();
        shape[0] = batch;
        let i = Inputs::new().with_tensor("pixel_values", Tensor::from_slice(g, &data, &shape).unwrap());
        let out = c.run_inputs(g, &i).unwrap();
        let f = out.get("vision_features").unwrap();
        (f.data.clone(), f.shape.clone())
    };
    let (one, s1) = features(&[], 1);
    let (two, s2) = features(&[], 2);
    assert_eq!(s2, [2, s1[1], s1[2]]);
    assert_eq!(&two[..one.len()], &one[..]);
    assert_eq!(&two[one.len()..], &one[..]);
    assert_eq!(features(&[("vision_feature_layer", serde_json::json!(1))], 1).0, one);
    let (l0, _) = features(&[("vision_feature_layer", serde_json::json!(0))], 1);
    assert_eq!(features(&[("vision_feature_layer", serde_json::json!(-3))], 1).0, l0);
    assert_ne!(l0, one);
    let (full, sf) = features(&[("vision_feature_select_strategy", serde_json::json!("full"))], 1);
    assert_eq!(sf, [1, s1[1] + 1, s1[2]]);
    assert_eq!(&full[s1[2]..], &one[..]);
}

/// A tower asked for where the model has none, a flag that is not a bool, a strategy that is not
/// `default` / `full`, and LLaVA-NeXT tiles that disagree with `image_sizes`: errors that say so.
#[test]
fn tower_requests_and_tile_counts_that_cannot_run_are_errors() {
    let g = gpu();
    let e = Connector::from_dir_opts(g, data_dir().join("zoo/gemma3_projector"), &tower_opts(DType::F32)).unwrap_err().to_string();
    assert!(e.contains("load_vision_tower") && e.contains("gemma3"), "{e}");
    let mut o = tower_opts(DType::F32);
    o.overrides[0].1 = serde_json::json!(1);
    let e = Connector::from_dir_opts(g, data_dir().join("pixels/pixels_llava_clip"), &o).unwrap_err().to_string();
    assert!(e.contains("load_vision_tower") && e.contains("true or false"), "{e}");
    let mut o = tower_opts(DType::F32);
    o.overrides.push(("vision_feature_select_strategy".into(), serde_json::json!("patch")));
    let e = Connector::from_dir_opts(g, data_dir().join("pixels/pixels_llava_clip"), &o).unwrap_err().to_string();
    assert!(e.contains("vision_feature_select_strategy"), "{e}");
    let dir = data_dir().join("pixels/pixels_llava_next");
    let c = Connector::from_dir_opts(g, &dir, &tower_opts(DType::F32)).unwrap();
    let px = Tensor::from_slice(g, &vec![0.1; 5 * 3 * 28 * 28], &[1, 5, 3, 28, 28]).unwrap();
    let i = Inputs::new().with_tensor("pixel_values", px).with_ints("image_sizes", &[1, 2], vec![400, 600]);
    let e = c.run_inputs(g, &i).unwrap_err().to_string();
    assert!(e.contains("pixel_values") && e.contains("21 tiles"), "{e}");
}
