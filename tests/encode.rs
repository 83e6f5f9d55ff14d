//! Image in → LLM embeddings out (issue "From pixels"): the shipped photos through
//! `ImageEncoder` and `vlmc encode` against transformers' `get_image_features` on the same photos
//! (`tests/data/pixels/*/expected.safetensors`): `pixel_values` exact, `output` at rel-L2 ≤ 1e-5
//! (f32) and ≤ 2e-3 (f16); several images at once; what is refused.

mod common;
use common::{assert_close, data_dir, gpu};

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::connectors::{ImageEncoder, LoadOptions};
use vlm_connectors::preprocess::RgbImage;
use vlm_connectors::{DType, Error};

/// (case, photo, the outputs transformers gives besides `output`).
const CASES: [(&str, &str, &[&str]); 3] = [
    ("pixels_llava_clip", "astronaut.png", &["vision_features"]),
    ("pixels_llava_next", "coffee.png", &["vision_features", "projected"]),
    ("pixels_blip2", "coffee.png", &["vision_features", "qformer_output"]),
];

/// Tokens per image in an `output` (all axes but the last).
fn w_tokens(ws: &WeightSource) -> f32 {
    let s = ws.get_any("output").unwrap().shape;
    s[..s.len() - 1].iter().product::<usize>() as f32
}

fn photo(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images").join(name)
}

#[test]
fn photos_encode_like_transformers_get_image_features() {
    let g = gpu();
    let f16 = g.features().contains(vlm_connectors::wgpu::Features::SHADER_F16);
    for (case, image, extras) in CASES {
        let dir = data_dir().join("pixels").join(case);
        let want = WeightSource::open_file(dir.join("expected.safetensors")).unwrap();
        let img = RgbImage::open(photo(image)).unwrap();
        for dtype in [DType::F32, DType::F16].into_iter().filter(|&d| d == DType::F32 || f16) {
            let enc = ImageEncoder::from_dir_opts(g, &dir, &LoadOptions { dtype, ..Default::default() }).unwrap();
            let got = enc.encode(g, std::slice::from_ref(&img)).unwrap().remove(0);
            assert_eq!(got.processed.pixel_values, want.get_any("pixel_values").unwrap().data, "{case}");
            let tol = if dtype == DType::F32 { 1e-5 } else { 2e-3 };
            for name in std::iter::once(&"output").chain(extras) {
                let w = want.get_any(name).unwrap();
                let o = got.outputs.get(name).unwrap();
                assert_eq!(o.shape, w.shape, "{case} {name}");
                if dtype == DType::F32 {
                    assert_close(&format!("{case} {name} from the photo"), &o.data, &w.data, tol);
                } else {
                    let e = vlm_connectors::kernels::rel_l2(&o.data, &w.data);
                    eprintln!("{case} {name} from the photo, f16: rel L2 {e:.2e}");
                    assert!(e <= tol, "{case} {name} f16: rel L2 {e:.2e}");
                }
            }
        }
    }
}

#[test]
fn vlmc_encode_writes_the_embeddings_and_concatenates_images() {
    let tmp = std::env::temp_dir().join(format!("vlmc-encode-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for (case, image, _) in CASES {
        let dir = data_dir().join("pixels").join(case);
        let out = tmp.join(format!("{case}.safetensors"));
        let run = |imgs: &[&str], extra: &[&str]| {
            let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vlmc"));
            cmd.arg("encode").arg(&dir).args(imgs.iter().map(|i| photo(i))).arg("--output").arg(&out).args(extra);
            let st = cmd.output().unwrap();
            assert!(st.status.success(), "{case}: {}", String::from_utf8_lossy(&st.stderr));
            WeightSource::open_file(&out).unwrap()
        };
        let want = WeightSource::open_file(dir.join("expected.safetensors")).unwrap();
        let got = run(&[image], &["--all"]);
        for name in ["pixel_values", "vision_features", "output"] {
            let (g, w) = (got.get_any(name).unwrap(), want.get_any(name).unwrap());
            assert_eq!(g.shape, w.shape, "{case} {name}");
            assert_close(&format!("vlmc encode {case} {name}"), &g.data, &w.data, 1e-5);
        }
        // Without --all only `output`; two photos are concatenated on axis 0 (the same photo
        // twice gives the output twice).
        let two = run(&[image, image], &[]);
        assert!(!two.contains("pixel_values"), "{case}: pixel_values without --all");
        let t = w_tokens(&want);
        assert_eq!(two.get_int("output_tokens").unwrap(), (vec![2], vec![t as i64, t as i64]), "{case}");
        let (o, w) = (two.get_any("output").unwrap(), want.get_any("output").unwrap());
        let mut shape = w.shape.clone();
        shape[0] *= 2;
        assert_eq!(o.shape, shape, "{case}");
        let n = w.data.len();
        assert_close(&format!("{case} second image"), &o.data[n..], &w.data, 1e-5);
    }
    // LLaVA-NeXT's --all file holds image_sizes (int64), so it replays through `vlmc run`.
    let next = data_dir().join("pixels/pixels_llava_next");
    let (enc_out, run_out) = (tmp.join("next_all.safetensors"), tmp.join("next_run.safetensors"));
    let vlmc = || std::process::Command::new(env!("CARGO_BIN_EXE_vlmc"));
    assert!(vlmc()
        .arg("encode")
        .arg(&next)
        .arg(photo("coffee.png"))
        .arg("--all")
        .arg("--output")
        .arg(&enc_out)
        .status()
        .unwrap()
        .success());
    assert_eq!(WeightSource::open_file(&enc_out).unwrap().get_int("image_sizes").unwrap(), (vec![1, 2], vec![400, 600]));
    let st = vlmc().arg("run").arg(&next).arg("--inputs").arg(&enc_out).arg("--output").arg(&run_out).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let (a, b) = (WeightSource::open_file(&enc_out).unwrap(), WeightSource::open_file(&run_out).unwrap());
    assert_eq!(a.get_any("output").unwrap().data, b.get_any("output").unwrap().data);
    // --output that is one of the photos, or an existing file that is not safetensors, or in a
    // folder that does not exist: refused before the model loads; the photo is left as it was.
    let keep = tmp.join("keep.png");
    std::fs::copy(photo("astronaut.png"), &keep).unwrap();
    let before = std::fs::read(&keep).unwrap();
    let notes = tmp.join("notes.txt");
    std::fs::write(&notes, "mine").unwrap();
    let clip = data_dir().join("pixels/pixels_llava_clip");
    for (out, says) in [
        (keep.clone(), "one of the input images"),
        (notes.clone(), "not a .safetensors file"),
        (tmp.join("no/such/dir/o.safetensors"), "folder does not exist"),
    ] {
        let st = vlmc().arg("encode").arg(&clip).arg(&keep).arg("--output").arg(&out).output().unwrap();
        let err = String::from_utf8_lossy(&st.stderr);
        assert!(!st.status.success() && err.contains(says), "{}: {err}", out.display());
    }
    assert_eq!(std::fs::read(&keep).unwrap(), before);
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");
    // A missing photo and a broken one are errors naming the file.
    let dir = data_dir().join("pixels/pixels_llava_clip");
    let bad = tmp.join("broken.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\nnot really").unwrap();
    for img in [tmp.join("missing.png"), bad] {
        let st = std::process::Command::new(env!("CARGO_BIN_EXE_vlmc"))
            .arg("encode")
            .arg(&dir)
            .arg(&img)
            .arg("--output")
            .arg(tmp.join("x.safetensors"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&st.stderr);
        assert!(!st.status.success() && err.contains(&*img.file_name().unwrap().to_string_lossy()), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    std::fs::remove_dir_all(&tmp).ok();
}

#[test]
fn folders_that_cannot_encode_images_are_errors() {
    let g = gpu();
    // A model type whose tower is not here: refused by its model_type, before any processor.
    let e = ImageEncoder::from_dir(g, data_dir().join("zoo/qwen2_vl_merger")).unwrap_err().to_string();
    assert!(e.contains("qwen2_vl") && e.contains("cannot encode images"), "{e}");
    // No preprocessor_config.json: an I/O error naming it.
    let e = ImageEncoder::from_dir(g, data_dir().join("llava_tiny")).unwrap_err();
    assert!(matches!(e, Error::Io { .. }) && e.to_string().contains("preprocessor_config.json"), "{e}");
    // A processor that does not fit the model: BLIP's square resize for LLaVA-NeXT's AnyRes.
    let tmp = std::env::temp_dir().join(format!("vlmc-encode-mismatch-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let next = data_dir().join("pixels/pixels_llava_next");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(next.join(f), tmp.join(f)).unwrap();
    }
    std::fs::copy(data_dir().join("pixels/pixels_blip2/preprocessor_config.json"), tmp.join("preprocessor_config.json")).unwrap();
    let e = ImageEncoder::from_dir(g, &tmp).unwrap_err().to_string();
    assert!(e.contains("BlipImageProcessor") && e.contains("llava_next"), "{e}");
    // The right processor class at the wrong size: the tower names pixel_values and its size.
    std::fs::write(
        tmp.join("preprocessor_config.json"),
        r#"{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 30}, "crop_size": 30}"#,
    )
    .unwrap();
    std::fs::write(tmp.join("config.json"), std::fs::read(data_dir().join("pixels/pixels_llava_clip/config.json")).unwrap()).unwrap();
    std::fs::copy(data_dir().join("pixels/pixels_llava_clip/model.safetensors"), tmp.join("model.safetensors")).unwrap();
    let enc = ImageEncoder::from_dir(g, &tmp).unwrap();
    let e = enc.encode(g, &[RgbImage::new(2, 2, vec![9; 12]).unwrap()]).unwrap_err().to_string();
    assert!(e.contains("pixel_values") && e.contains("56"), "{e}");
    std::fs::remove_dir_all(&tmp).ok();
}

/// LLaVA-OneVision from a photo (no golden `pixels_llava_onevision` case exists): its processor
/// gives LLaVA-NeXT's `pixel_values` bit for bit where the two agree by construction (S×S tiles,
/// no crop: the golden-checked path), and tower + connector in one forward equal the tower's
/// `vision_features` run through the golden-checked `llava_onevision` connector.
#[test]
fn llava_onevision_encodes_a_photo_through_siglip_and_anyres_max() {
    use vlm_connectors::checkpoint::Config;
    use vlm_connectors::connectors::{Connector, Inputs};
    use vlm_connectors::preprocess::ImageProcessor;
    let g = gpu();
    let img = RgbImage::open(photo("coffee.png")).unwrap();
    let pins: Vec<[usize; 2]> = (1..=4).flat_map(|i| (1..=4).map(move |j| [28 * i, 28 * j])).collect();
    let ov = ImageProcessor::from_config(&Config::from_value(serde_json::json!({"image_processor_type": "LlavaOnevisionImageProcessor",
        "size": {"height": 28, "width": 28}, "image_grid_pinpoints": pins, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})))
    .unwrap();
    let next = ImageProcessor::from_config(&Config::from_value(serde_json::json!({"image_processor_type": "LlavaNextImageProcessor",
        "size": {"shortest_edge": 28}, "crop_size": 28, "image_grid_pinpoints": pins, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})))
    .unwrap();
    let (a, b) = (ov.preprocess(&img).unwrap(), next.preprocess(&img).unwrap());
    assert_eq!((a.shape.clone(), a.image_size), (b.shape, b.image_size));
    assert_eq!(a.pixel_values, b.pixel_values);
    // 400×600 over pinpoints up to 112×112 → 84×112 (3×4 tiles) + the global view.
    assert_eq!(a.shape, [1, 13, 3, 28, 28]);
    let cfg = serde_json::json!({"model_type": "llava_onevision", "load_vision_tower": true, "vision_feature_layer": -1,
        "vision_feature_select_strategy": "full", "image_grid_pinpoints": pins, "vision_aspect_ratio": "anyres_max_1",
        "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 24, "num_attention_heads": 2,
            "num_hidden_layers": 2, "image_size": 28, "patch_size": 14},
        "text_config": {"hidden_size": 12}});
    let ws = WeightSource::random(2024);
    let enc = ImageEncoder::new(Connector::load(g, &Config::from_value(cfg.clone()), Some(&ws)).unwrap(), ov.clone()).unwrap();
    let got = enc.encode(g, std::slice::from_ref(&img)).unwrap().remove(0).outputs;
    // LlavaOnevisionConfig's defaults are layer −1 and the `full` strategy (LlavaConfig's: −2, default)
    let mut bare = cfg.clone();
    bare.as_object_mut().unwrap().retain(|k, _| k != "vision_feature_layer" && k != "vision_feature_select_strategy");
    // … and a vision_config without model_type is SigLIP's.
    bare["vision_config"].as_object_mut().unwrap().remove("model_type");
    let enc_bare = ImageEncoder::new(Connector::load(g, &Config::from_value(bare), Some(&ws)).unwrap(), ov).unwrap();
    assert_eq!(enc_bare.encode(g, &[img]).unwrap()[0].outputs.get("output").unwrap().data, got.get("output").unwrap().data);
    let features = got.get("vision_features").unwrap();
    assert_eq!(features.shape, [13, 4, 16]);
    let mut connector_cfg = cfg;
    connector_cfg["load_vision_tower"] = serde_json::json!(false);
    let connector = Connector::load(g, &Config::from_value(connector_cfg), Some(&ws)).unwrap();
    let inputs = Inputs::new()
        .with_tensor("image_features", vlm_connectors::Tensor::from_slice(g, &features.data, &features.shape).unwrap())
        .with_ints("image_size", &[2], vec![400, 600]);
    let want = connector.run_inputs(g, &inputs).unwrap();
    // anyres_max_1: the unpadded token map is past 1.1× one tile's tokens, so the bilinear downsample runs.
    assert_eq!(got.get("output").unwrap().shape, want.get("output").unwrap().shape);
    assert_close("onevision from pixels vs connector", &got.get("output").unwrap().data, &want.get("output").unwrap().data, 1e-6);
}

/// The tower's key layouts (golden README, "Keys"): transformers 5's `vision_tower.*`, Hub
/// checkpoints converted under transformers 4 (`vision_tower.vision_model.*`) and `model.`-prefixed
/// names, for LLaVA; `model.vision_model.*` for BLIP-2: the same embeddings from the photo.
#[test]
fn every_key_layout_of_the_towers_loads() {
    use vlm_connectors::checkpoint::save_f32;
    let g = gpu();
    let tmp = std::env::temp_dir().join(format!("vlmc-layouts-{}", std::process::id()));
    type Rename = fn(&str) -> String;
    let layouts: [(&str, &str, Rename); 4] = [
        ("pixels_llava_clip", "astronaut.png", |k| k.replacen("vision_tower.", "vision_tower.vision_model.", 1)),
        ("pixels_llava_clip", "astronaut.png", |k| format!("model.{k}")),
        ("pixels_llava_clip", "astronaut.png", |k| format!("model.{}", k.replacen("vision_tower.", "vision_tower.vision_model.", 1))),
        ("pixels_blip2", "coffee.png", |k| format!("model.{k}")),
    ];
    for (i, (case, image, rename)) in layouts.into_iter().enumerate() {
        let src = data_dir().join("pixels").join(case);
        let dir = tmp.join(i.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["config.json", "preprocessor_config.json"] {
            std::fs::copy(src.join(f), dir.join(f)).unwrap();
        }
        let ws = WeightSource::open_file(src.join("model.safetensors")).unwrap();
        let tensors: Vec<(String, Vec<usize>, Vec<f32>)> = ws
            .names()
            .iter()
            .map(|n| {
                let t = ws.get_any(n).unwrap();
                (rename(n), t.shape, t.data)
            })
            .collect();
        let views: Vec<(&str, &[usize], &[f32])> = tensors.iter().map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
        save_f32(dir.join("model.safetensors"), &views).unwrap();
        let enc = ImageEncoder::from_dir(g, &dir).unwrap_or_else(|e| panic!("layout {i}: {e}"));
        let got = enc.encode(g, &[RgbImage::open(photo(image)).unwrap()]).unwrap().remove(0);
        let want = WeightSource::open_file(src.join("expected.safetensors")).unwrap().get_any("output").unwrap();
        assert_close(&format!("{case} layout {i}"), &got.outputs.get("output").unwrap().data, &want.data, 1e-5);
    }
    std::fs::remove_dir_all(&tmp).ok();
}
