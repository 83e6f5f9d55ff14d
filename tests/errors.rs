//! Hostile inputs: each a clear `Err` naming the tensor / field, never a panic.

mod common;
use common::*;

use std::path::{Path, PathBuf};

use vlm_connectors::checkpoint::{save_f32, Config, WeightSource};
use vlm_connectors::connectors::{Connector, LlavaProjector, OpenFlamingo};
use vlm_connectors::kernels::Activation;
use vlm_connectors::{Error, Recorder, Tensor};

/// A fresh folder holding `config` and the given f32 tensors as model.safetensors.
fn checkpoint(name: &str, config: &str, tensors: &[(&str, Vec<usize>)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vlmc-err-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), config).unwrap();
    let data: Vec<Vec<f32>> = tensors.iter().map(|(_, s)| vec![0.5; s.iter().product()]).collect();
    let views: Vec<(&str, &[usize], &[f32])> = tensors.iter().zip(&data).map(|((n, s), d)| (*n, s.as_slice(), d.as_slice())).collect();
    save_f32(dir.join("model.safetensors"), &views).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    match Connector::from_dir(gpu(), dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

const HF: &str = r#"{"model_type": "llava", "projector_hidden_act": "gelu"}"#;

fn hf_tensors(w2: Vec<usize>) -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("multi_modal_projector.linear_1.weight", vec![8, 4]),
        ("multi_modal_projector.linear_1.bias", vec![8]),
        ("multi_modal_projector.linear_2.weight", w2),
        ("multi_modal_projector.linear_2.bias", vec![8]),
    ]
}

#[test]
fn missing_tensor_is_named() {
    let mut t = hf_tensors(vec![8, 8]);
    t.remove(3);
    let e = load_err(&checkpoint("missing", HF, &t));
    assert!(e.contains("missing weight `multi_modal_projector.linear_2.bias`"), "{e}");
}

#[test]
fn wrong_shape_names_tensor_expected_and_actual() {
    let e = load_err(&checkpoint("shape", HF, &hf_tensors(vec![8, 5])));
    assert!(e.contains("multi_modal_projector.linear_2.weight") && e.contains("[8, 8]") && e.contains("[8, 5]"), "{e}");
}

#[test]
fn config_width_disagreeing_with_weights_is_an_error() {
    let cfg = r#"{"model_type": "llava", "vision_config": {"hidden_size": 6}}"#;
    let e = load_err(&checkpoint("cfgwidth", cfg, &hf_tensors(vec![8, 8])));
    assert!(e.contains("linear_1.weight") && e.contains("[8, 6]") && e.contains("[8, 4]"), "{e}");
}

#[test]
fn unknown_activation_projector_type_and_model_type() {
    let cfg = r#"{"model_type": "llava", "projector_hidden_act": "mish2"}"#;
    assert!(load_err(&checkpoint("act", cfg, &hf_tensors(vec![8, 8]))).contains("unknown activation `mish2`"));
    let cfg = r#"{"model_type": "llava_llama", "mm_projector_type": "qformer9"}"#;
    assert!(load_err(&checkpoint("ptype", cfg, &[])).contains("unknown mm_projector_type `qformer9`"));
    let cfg = r#"{"model_type": "whisper"}"#;
    assert!(load_err(&checkpoint("mtype", cfg, &[])).contains("unknown model_type `whisper`"));
    let cfg = r#"{"architectures": []}"#;
    assert!(load_err(&checkpoint("notype", cfg, &[])).contains("config field `model_type`: missing"));
    assert!(matches!(Activation::from_name("xielu"), Err(Error::UnknownActivation(_))), "needs learned parameters");
}

#[test]
fn corrupt_and_truncated_safetensors_are_errors() {
    let dir = checkpoint("corrupt", HF, &hf_tensors(vec![8, 8]));
    let file = dir.join("model.safetensors");
    let bytes = std::fs::read(&file).unwrap();
    // truncated data section
    std::fs::write(&file, &bytes[..bytes.len() - 7]).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("not a valid safetensors file"), "{e}");
    // garbage header length
    let mut bad = bytes.clone();
    bad[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    std::fs::write(&file, &bad).unwrap();
    assert!(load_err(&dir).contains("not a valid safetensors file"));
    // empty file
    std::fs::write(&file, b"").unwrap();
    assert!(load_err(&dir).contains("not a valid safetensors file"));
    // a header declaring a huge shape the file does not hold
    let header = br#"{"multi_modal_projector.linear_1.weight":{"dtype":"F32","shape":[4000000000,4000000000],"data_offsets":[0,16]}}"#;
    let mut huge = (header.len() as u64).to_le_bytes().to_vec();
    huge.extend_from_slice(header);
    huge.extend_from_slice(&[0u8; 16]);
    std::fs::write(&file, &huge).unwrap();
    assert!(load_err(&dir).contains("not a valid safetensors file"));
}

#[test]
fn bad_config_json_is_an_error() {
    let dir = checkpoint("badjson", "{ not json", &[]);
    assert!(load_err(&dir).contains("invalid JSON"));
    let dir = checkpoint("negwidth", r#"{"model_type": "llava_llama", "mm_projector_type": "identity", "mm_hidden_size": -3}"#, &[]);
    assert!(load_err(&dir).contains("mm_hidden_size"), "negative width must be refused");
    assert!(Config::from_str("[1, 2]").is_err());
}

#[test]
fn integer_weights_are_refused_with_their_dtype() {
    let dir = checkpoint("dtype", HF, &hf_tensors(vec![8, 8]));
    // rewrite one tensor as I32
    let ws = WeightSource::open_dir(&dir).unwrap();
    let mut tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for n in [
        "multi_modal_projector.linear_1.weight",
        "multi_modal_projector.linear_1.bias",
        "multi_modal_projector.linear_2.weight",
        "multi_modal_projector.linear_2.bias",
    ] {
        let h = ws.get_any(n).unwrap();
        let dt = if n.ends_with("2.bias") { safetensors::Dtype::I32 } else { safetensors::Dtype::F32 };
        tensors.push((n.into(), dt, h.shape, bytemuck::cast_slice(&h.data).to_vec()));
    }
    drop(ws);
    let views: Vec<_> =
        tensors.iter().map(|(n, d, s, b)| (n.clone(), safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap())).collect();
    safetensors::serialize_to_file(views, None, &dir.join("model.safetensors")).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("linear_2.bias") && e.contains("I32"), "{e}");
}

#[test]
fn wrong_input_rank_or_width_is_an_error() {
    let g = gpu();
    let p = LlavaProjector::from_dir(g, case_dir("llava_tiny")).unwrap();
    for shape in [vec![63usize], vec![2, 36, 63]] {
        let x = Tensor::from_slice(g, &vec![0.0; shape.iter().product()], &shape).unwrap();
        let mut rec = Recorder::new(g);
        let e = p.forward(&mut rec, &x).expect_err("bad input accepted").to_string();
        assert!(e.contains("image_features") && e.contains("64"), "{e}");
    }
    // Any rank ≥ 1 is what nn.Linear takes: one feature vector gives one token.
    let one = Tensor::from_slice(g, &vec![0.5; 64], &[64]).unwrap();
    let (y, shape) = p.run(g, &one.to_vec(g).unwrap(), &[64]).unwrap();
    let (y2, _) = p.run(g, &one.to_vec(g).unwrap(), &[1, 1, 64]).unwrap();
    assert_eq!((shape, &y), (vec![96], &y2));
    assert!(Tensor::from_slice(g, &[1.0, 2.0], &[3]).is_err());
}

#[test]
fn values_round_trip_exactly() {
    // Upload/download is bit-exact (approx here documents the intent: no tolerance needed).
    let g = gpu();
    let v: Vec<f32> = (0..1000).map(|i| (i as f32).sin() * 1e3).collect();
    let back = Tensor::from_slice(g, &v, &[10, 100]).unwrap().to_vec(g).unwrap();
    for (a, b) in v.iter().zip(&back) {
        approx::assert_relative_eq!(*a, *b, max_relative = 0.0);
    }
}

/// blip2_tiny copied with its config edited by `edit`.
fn blip2_variant(name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("vlmc-err-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(case_dir("blip2_tiny").join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case_dir("blip2_tiny").join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

#[test]
fn qformer_config_errors_are_clear() {
    // the vision width (Blip2Config writes it over encoder_hidden_size) disagrees with the
    // cross-attention key weights [64, 48]; the Q-Former's own encoder_hidden_size is not read
    let e = load_err(&blip2_variant("enc", |c| c["vision_config"]["hidden_size"] = 50.into()));
    assert!(e.contains("crossattention.attention.key.weight") && e.contains("[64, 50]") && e.contains("[64, 48]"), "{e}");
    // a layer the checkpoint does not have
    let e = load_err(&blip2_variant("layers", |c| c["qformer_config"]["num_hidden_layers"] = 5.into()));
    assert!(e.contains("missing weight `qformer.encoder.layer.4."), "{e}");
    // heads that do not divide the width
    let e = load_err(&blip2_variant("heads", |c| c["qformer_config"]["num_attention_heads"] = 5.into()));
    assert!(e.contains("num_attention_heads") && e.contains("5 heads do not divide the width 64"), "{e}");
    // no qformer_config at all: transformers' defaults (hidden 768), which these weights contradict
    let e = load_err(&blip2_variant("nocfg", |c| {
        c.as_object_mut().unwrap().remove("qformer_config");
    }));
    assert!(e.contains("query_tokens") && e.contains("[1, 8, 768]"), "{e}");
}

#[test]
fn qformer_input_width_and_rank_are_checked() {
    let g = gpu();
    let q = vlm_connectors::connectors::QFormer::from_dir(g, case_dir("blip2_tiny")).unwrap();
    for shape in [vec![2usize, 17, 47], vec![17, 48]] {
        let x = Tensor::from_slice(g, &vec![0.0; shape.iter().product()], &shape).unwrap();
        let mut rec = Recorder::new(g);
        let e = q.forward(&mut rec, &x).expect_err("bad input accepted").to_string();
        assert!(e.contains("image_embeds") && e.contains("48"), "{e}");
    }
}

fn flamingo(case: &str) -> OpenFlamingo {
    Connector::from_dir(gpu(), case_dir(case)).unwrap().into_model().unwrap()
}

#[test]
fn gated_xattn_input_errors() {
    let g = gpu();
    let f = flamingo("gated_xattn_tiny");
    let gx = f.gated.as_ref().expect("a gated block");
    // dim 96, dim_visual 64
    let x = Tensor::from_slice(g, &vec![0.1; 2 * 12 * 96], &[2, 12, 96]).unwrap();
    let media = Tensor::from_slice(g, &vec![0.1; 2 * 3 * 8 * 64], &[2, 3, 8, 64]).unwrap();
    // More <image> tokens than media and counts above 1 are accepted as OpenFlamingo accepts them
    // (tests/edges.rs checks the values); a wrong length is an error.
    let mut locs = vec![0u8; 24];
    for i in [0, 2, 4, 6] {
        locs[i] = 1;
    }
    locs[13] = 2;
    assert!(gx.upload_locations(g, &locs, 2, 12, 3).is_ok());
    assert!(gx.upload_locations(g, &[0u8; 23], 2, 12, 3).is_err());
    let packed = gx.upload_locations(g, &[0u8; 24], 2, 12, 3).unwrap();
    // locations checked against other media counts or text lengths than forward gets
    let mut rec = Recorder::new(g);
    for (b, len, t) in [(2, 12, 2), (1, 24, 3), (2, 12, 4)] {
        let other = gx.upload_locations(g, &vec![0u8; b * len], b, len, t).unwrap();
        let e = gx.forward(&mut rec, &x, &media, &other).expect_err("mismatched locations accepted").to_string();
        assert!(e.contains("media_locations") && e.contains(&format!("[{b}, {len}] for {t} media")), "{e}");
    }
    // wrong ranks and widths
    let mut rec = Recorder::new(g);
    let e = gx.forward(&mut rec, &x.reshape(&[24, 96]).unwrap(), &media, &packed).err().unwrap().to_string();
    assert!(e.contains("hidden_states") && e.contains("96"), "{e}");
    let bad_media = Tensor::from_slice(g, &vec![0.1; 2 * 3 * 8 * 65], &[2, 3, 8, 65]).unwrap();
    let e = gx.forward(&mut rec, &x, &bad_media, &packed).err().unwrap().to_string();
    assert!(e.contains("media") && e.contains("64"), "{e}");
    let e = gx.forward(&mut rec, &x, &media.reshape(&[2, 24, 64]).unwrap(), &packed).err().unwrap().to_string();
    assert!(e.contains("media"), "{e}");
    // a media batch that differs from the text batch (one media row is shared: tests/edges.rs)
    let three = Tensor::from_slice(g, &vec![0.1; 3 * 3 * 8 * 64], &[3, 3, 8, 64]).unwrap();
    assert!(gx.forward(&mut rec, &x, &three, &packed).is_err());
    rec.discard();
}

#[test]
fn perceiver_input_errors() {
    let g = gpu();
    let f = flamingo("perceiver_video");
    let p = f.perceiver.as_ref().expect("a perceiver");
    // dim 48, max_num_frames 3, max_num_media 4
    let mut rec = Recorder::new(g);
    for (shape, needle) in [
        (vec![1usize, 2, 3, 5, 47], "48"),
        (vec![2, 15, 48], "vision_features"),
        (vec![1, 2, 4, 5, 48], "max_num_frames"),
        (vec![1, 5, 3, 5, 48], "max_num_media"),
    ] {
        let x = Tensor::from_slice(g, &vec![0.0; shape.iter().product()], &shape).unwrap();
        let e = p.forward(&mut rec, &x).err().unwrap_or_else(|| panic!("{shape:?} accepted")).to_string();
        assert!(e.contains(needle), "{shape:?}: {e}");
    }
}

#[test]
fn flamingo_config_errors() {
    let e = load_err(&checkpoint("flamingo-empty", r#"{"model_type": "open_flamingo"}"#, &[]));
    assert!(e.contains("perceiver") && e.contains("gated_xattn"), "{e}");
    let e =
        load_err(&checkpoint("flamingo-nolayer", r#"{"model_type": "open_flamingo", "gated_xattn": {"dim": 8, "dim_visual": 8}}"#, &[]));
    assert!(e.contains("gated_cross_attn_layers"), "{e}");
    // heads × dim_head that disagree with the stored to_q
    let cfg = std::fs::read_to_string(case_dir("perceiver_tiny").join("config.json")).unwrap().replace("\"heads\": 4", "\"heads\": 2");
    let dir = std::env::temp_dir().join(format!("vlmc-err-{}-perc-heads", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(case_dir("perceiver_tiny").join("model.safetensors"), dir.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("config.json"), cfg).unwrap();
    let e = load_err(&dir);
    assert!(e.contains("to_q.weight") && e.contains("[32, 64]") && e.contains("[64, 64]"), "{e}");
}

/// perceiver_tiny's weights (its config has no `max_num_frames` / `max_num_media`) with `name` added
/// at `shape`.
fn perceiver_with(name: &str, tag: &str, shape: &[usize]) -> std::path::PathBuf {
    let src = WeightSource::open_dir(case_dir("perceiver_tiny")).unwrap();
    let mut hs: Vec<(String, Vec<usize>, Vec<f32>)> =
        src.names().iter().map(|n| (n.to_string(), src.get_any(n).unwrap())).map(|(n, h)| (n, h.shape, h.data)).collect();
    hs.push((format!("perceiver.{name}"), shape.to_vec(), vec![0.5; shape.iter().product()]));
    let dir = std::env::temp_dir().join(format!("vlmc-err-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(case_dir("perceiver_tiny").join("config.json"), dir.join("config.json")).unwrap();
    let views: Vec<(&str, &[usize], &[f32])> = hs.iter().map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
    vlm_connectors::checkpoint::save_f32(dir.join("model.safetensors"), &views).unwrap();
    dir
}

#[test]
fn perceiver_time_embeddings_without_max_counts_are_shape_checked() {
    // perceiver_tiny: dim 64, no max_num_frames / max_num_media in its config.
    for (tag, shape) in [("scalar", vec![]), ("folded", vec![4, 32]), ("rank3", vec![2, 1, 64])] {
        let e = load_err(&perceiver_with("frame_embs", tag, &shape));
        assert!(e.contains("perceiver.frame_embs") && e.contains("[count, 64]") && e.contains(&format!("{shape:?}")), "{shape:?}: {e}");
    }
    for (tag, shape) in [("t-scalar", vec![]), ("t-flat", vec![3, 64]), ("t-folded", vec![3, 2, 32])] {
        let e = load_err(&perceiver_with("media_time_embs", tag, &shape));
        assert!(
            e.contains("perceiver.media_time_embs") && e.contains("[count, 1, 64]") && e.contains(&format!("{shape:?}")),
            "{shape:?}: {e}"
        );
    }
    // A well-shaped one loads, and its frame count bounds the input.
    let f: OpenFlamingo = Connector::from_dir(gpu(), perceiver_with("frame_embs", "ok", &[2, 64])).unwrap().into_model().unwrap();
    let x = Tensor::from_slice(gpu(), &vec![0.0; 3 * 5 * 64], &[1, 1, 3, 5, 64]).unwrap();
    let e = f.perceiver.unwrap().forward(&mut Recorder::new(gpu()), &x).err().unwrap().to_string();
    assert!(e.contains("3 frames") && e.contains("frame_embs has 2"), "{e}");
}

#[test]
fn media_locations_out_of_range_name_the_real_value() {
    let g = gpu();
    let c = Connector::from_dir(g, case_dir("gated_xattn_tiny")).unwrap();
    let inp = inputs("gated_xattn_tiny");
    let (x, media) = (inp.get_any("hidden_states").unwrap(), inp.get_any("media").unwrap());
    let (shape, _) = inp.get_int("media_locations").unwrap();
    for bad in [300i64, 256, -1, -7] {
        let mut locs = vec![0i64; shape.iter().product()];
        locs[shape[1] + 1] = bad; // row 1
        let inputs = vlm_connectors::connectors::Inputs::new()
            .with_tensor("hidden_states", Tensor::from_slice(g, &x.data, &x.shape).unwrap())
            .with_tensor("media", Tensor::from_slice(g, &media.data, &media.shape).unwrap())
            .with_ints("media_locations", &shape, locs);
        let e = c.run_inputs(g, &inputs).err().unwrap_or_else(|| panic!("{bad} accepted")).to_string();
        assert!(e.contains("media_locations") && e.contains(&format!("row 1 holds {bad};")), "{bad}: {e}");
    }
}

#[test]
fn kernel_parameters_past_u32_are_errors_not_wrapped() {
    // 2^33 iterations would wrap to 0 in a u32 uniform.
    let mut rec = Recorder::new(gpu());
    let e = vlm_connectors::kernels::ceiling::record_fma_peak(&mut rec, 4, 1 << 33).expect_err("wrapped silently").to_string();
    assert!(e.contains("fma_peak iters") && e.contains("8589934592"), "{e}");
}

#[test]
fn llava_next_tile_count_error_names_the_shape_the_user_passed() {
    // llava_next_square's 5 tiles against the image size of llava_next_wide (4 tiles).
    let g = gpu();
    let c = Connector::from_dir(g, case_dir("llava_next_square")).unwrap();
    let x = inputs("llava_next_square").get_any("image_features").unwrap();
    let (shape, size) = inputs("llava_next_wide").get_int("image_size").unwrap();
    let inp = vlm_connectors::connectors::Inputs::new()
        .with_tensor("image_features", Tensor::from_slice(g, &x.data, &x.shape).unwrap())
        .with_ints("image_size", &shape, size);
    let e = c.run_inputs(g, &inp).expect_err("wrong tile count accepted").to_string();
    assert!(e.contains("image_features") && e.contains("[5, 9, 32]") && e.contains("4 tiles"), "{e}");
}

#[test]
fn instructblip_instruction_errors_name_the_input() {
    let g = gpu();
    let c = Connector::from_dir(g, case_dir("instructblip")).unwrap();
    let inp = inputs("instructblip");
    let x = inp.get_any("image_embeds").unwrap();
    let (shape, ids) = inp.get_int("qformer_input_ids").unwrap();
    let run = |shape: &[usize], ids: Vec<i64>, mask: Vec<i64>| {
        let i = vlm_connectors::connectors::Inputs::new()
            .with_tensor("image_embeds", Tensor::from_slice(g, &x.data, &x.shape).unwrap())
            .with_ints("qformer_input_ids", shape, ids)
            .with_ints("qformer_attention_mask", shape, mask);
        c.run_inputs(g, &i).unwrap_err().to_string()
    };
    let mut bad = ids.clone();
    bad[3] = 1 << 40;
    let e = run(&shape, bad, vec![1; ids.len()]);
    assert!(e.contains("qformer_input_ids") && e.contains("id 1099511627776 at position 3"), "{e}");
    let t = 40; // past qformer_config.max_position_embeddings (32)
    let e = run(&[2, t], vec![0; 2 * t], vec![1; 2 * t]);
    assert!(e.contains("qformer_input_ids") && e.contains("max_position_embeddings"), "{e}");
    let e = run(&[1, ids.len()], ids.clone(), vec![1; ids.len()]);
    assert!(e.contains("qformer_input_ids"), "{e}");
    let e = run(&[5, 0], vec![], vec![]);
    assert!(e.contains("qformer_input_ids") && e.contains("[2, T]"), "{e}");
    // A mask of another shape is an error; any nonzero value attends (transformers 5 reads it as
    // bool), and no mask at all is all ones (InstructBlipForConditionalGeneration).
    let i = vlm_connectors::connectors::Inputs::new()
        .with_tensor("image_embeds", Tensor::from_slice(g, &x.data, &x.shape).unwrap())
        .with_ints("qformer_input_ids", &shape, ids.clone());
    let e = c.run_inputs(g, &i.clone().with_ints("qformer_attention_mask", &[shape[0] * shape[1]], vec![1; ids.len()])).unwrap_err();
    assert!(e.to_string().contains("qformer_attention_mask"), "{e}");
    let ones = c.run_inputs(g, &i.clone().with_ints("qformer_attention_mask", &shape, vec![1; ids.len()])).unwrap();
    let mut odd = vec![1i64; ids.len()];
    odd[4] = 2;
    odd[5] = -3;
    let odd = c.run_inputs(g, &i.clone().with_ints("qformer_attention_mask", &shape, odd)).unwrap();
    let none = c.run_inputs(g, &i).unwrap();
    assert_eq!(odd.get("output").unwrap().data, ones.get("output").unwrap().data);
    assert_eq!(none.get("output").unwrap().data, ones.get("output").unwrap().data);
}
