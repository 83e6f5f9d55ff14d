//! Real checkpoint formats: OpenFlamingo's released `checkpoint.pt` (no config.json; the config is
//! inferred from the tensors), its gated layers in every decoder layout, and hostile PyTorch files.

mod common;
use common::*;

use vlm_connectors::checkpoint::{save_f32, WeightSource};
use vlm_connectors::connectors::Connector;
use vlm_connectors::Error;

fn load_err(dir: &std::path::Path) -> String {
    match Connector::from_dir(gpu(), dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn openflamingo_checkpoint_pt_cases_match_openflamingo() {
    // A released checkpoint.pt and nothing else: the config is inferred from the tensors, the gated
    // layer picked by --layer (case.json's vlmc_args), the path by the inputs given.
    let g = gpu();
    for case in ["openflamingo_pt_llama_perceiver", "openflamingo_pt_llama_xattn"] {
        let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(case_dir(case).join("case.json")).unwrap()).unwrap();
        let layer = meta["vlmc_args"].as_array().map(|a| a[1].as_str().unwrap().parse::<usize>().unwrap());
        let overrides: Vec<(String, serde_json::Value)> =
            layer.map(|l| ("gated_xattn.layer_index".to_string(), serde_json::json!(l))).into_iter().collect();
        let c = Connector::from_dir_with(g, case_dir(case), &overrides).unwrap_or_else(|e| panic!("{case}: {e}"));
        assert!(c.inferred().is_some_and(|i| i.assumed.iter().any(|a| a.contains("heads = 8"))), "{case}");
        let outs = c.run(g, &inputs(case)).unwrap_or_else(|e| panic!("{case}: {e}"));
        let want = expected(case).get_any("output").unwrap();
        assert_eq!(outs.get("output").unwrap().shape, want.shape, "{case}");
        assert_close(case, &outs.get("output").unwrap().data, &want.data, 1e-5);
    }
    // The second gated layer is another block: a different answer, not the same one twice.
    let case = "openflamingo_pt_llama_xattn";
    let c = Connector::from_dir_with(g, case_dir(case), &[("gated_xattn.layer_index".into(), serde_json::json!(1))]).unwrap();
    let other = c.run(g, &inputs(case)).unwrap();
    assert!(vlm_connectors::kernels::rel_l2(&other.get("output").unwrap().data, &expected(case).get_any("output").unwrap().data) > 1e-3);
    // and a third does not exist
    let e =
        Connector::from_dir_with(g, case_dir(case), &[("gated_xattn.layer_index".into(), serde_json::json!(2))]).unwrap_err().to_string();
    assert!(e.contains("gated layer 2") && e.contains("has 2"), "{e}");
}

/// The released llama checkpoint's tensors re-keyed: the gated layers 0 and 1 as `rename(i)`, plus
/// (when `duplicates`) the `gated_cross_attn_layers.{block}` copies an unfiltered state dict holds;
/// written as model.safetensors in a folder without config.json. `drop` leaves matching keys out.
fn rekeyed_flamingo(tag: &str, rename: impl Fn(usize) -> String, duplicates: &[usize], drop: &str) -> std::path::PathBuf {
    let src = vlm_connectors::checkpoint::WeightSource::open_dir(case_dir("openflamingo_pt_llama_xattn")).unwrap();
    let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    for n in src.names() {
        if !drop.is_empty() && n.starts_with(drop) {
            continue;
        }
        let h = src.get_any(n).unwrap();
        match n.strip_prefix("lang_encoder.model.layers.") {
            Some(rest) => {
                let (i, tail) = rest.split_once(".gated_cross_attn_layer.").unwrap();
                let i: usize = i.parse().unwrap();
                out.push((format!("{}.gated_cross_attn_layer.{tail}", rename(i)), h.shape.clone(), h.data.clone()));
                if let Some(&block) = duplicates.get(i) {
                    out.push((format!("lang_encoder.gated_cross_attn_layers.{block}.{tail}"), h.shape, h.data));
                }
            }
            None => out.push((n.to_string(), h.shape, h.data)),
        }
    }
    let dir = std::env::temp_dir().join(format!("vlmc-golden-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let views: Vec<(&str, &[usize], &[f32])> = out.iter().map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
    vlm_connectors::checkpoint::save_f32(dir.join("model.safetensors"), &views).unwrap();
    dir
}

#[test]
fn gated_layers_are_counted_in_decoder_order_whatever_the_layout() {
    // MPT-style blocks with gaps and two digits (gated layers at blocks 3 and 10), with and without
    // the unfiltered `gated_cross_attn_layers.{block}` duplicates: `--layer j` is the j-th gated layer.
    let g = gpu();
    let case = "openflamingo_pt_llama_xattn";
    let run = |dir: &std::path::Path, layer: usize| {
        let c = Connector::from_dir_with(g, dir, &[("gated_xattn.layer_index".into(), serde_json::json!(layer))])
            .unwrap_or_else(|e| panic!("{e}"));
        c.run(g, &inputs(case)).unwrap().get("output").unwrap().data.clone()
    };
    let reference: Vec<Vec<f32>> = (0..2).map(|l| run(&case_dir(case), l)).collect();
    let mpt = |i: usize| format!("lang_encoder.transformer.blocks.{}", [3, 10][i]);
    for (tag, dups) in [("mpt", &[][..]), ("mpt-unfiltered", &[3, 10][..])] {
        let dir = rekeyed_flamingo(tag, mpt, dups, "");
        for (layer, want) in reference.iter().enumerate() {
            assert_eq!(&run(&dir, layer), want, "{tag} --layer {layer}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
    // A perceiver layer missing in the middle is an error naming it, not a shallower model.
    let dir = rekeyed_flamingo("gap", |i| format!("lang_encoder.model.layers.{i}"), &[], "perceiver.layers.0.");
    let e = Connector::from_dir(g, &dir).unwrap_err().to_string();
    std::fs::remove_dir_all(&dir).ok();
    assert!(e.contains("perceiver.layers.0."), "{e}");
}

#[test]
fn openflamingo_inputs_that_would_be_ignored_are_errors() {
    let g = gpu();
    let c = Connector::from_dir(g, case_dir("openflamingo_pt_llama_xattn")).unwrap();
    let (x, p) = (inputs("openflamingo_pt_llama_xattn"), inputs("openflamingo_pt_llama_perceiver"));
    let t = |ws: &vlm_connectors::checkpoint::WeightSource, n: &str| {
        let h = ws.get_any(n).unwrap();
        vlm_connectors::Tensor::from_slice(g, &h.data, &h.shape).unwrap()
    };
    let (shape, locs) = x.get_int("media_locations").unwrap();
    let both = vlm_connectors::connectors::Inputs::new()
        .with_tensor("hidden_states", t(&x, "hidden_states"))
        .with_tensor("media", t(&x, "media"))
        .with_tensor("vision_features", t(&p, "vision_features"))
        .with_ints("media_locations", &shape, locs.clone());
    let e = c.run_inputs(g, &both).unwrap_err().to_string();
    assert!(e.contains("`media` or `vision_features`"), "{e}");
    let no_text = vlm_connectors::connectors::Inputs::new().with_tensor("media", t(&x, "media")).with_ints("media_locations", &shape, locs);
    let e = c.run_inputs(g, &no_text).unwrap_err().to_string();
    assert!(e.contains("hidden_states"), "{e}");
    // --layer on a folder whose config has no gated block names what is missing
    let e = Connector::from_dir_with(g, case_dir("perceiver_tiny"), &[("gated_xattn.layer_index".into(), serde_json::json!(1))])
        .unwrap_err()
        .to_string();
    assert!(e.contains("no `gated_xattn`"), "{e}");
}

#[test]
fn hostile_pytorch_checkpoints_are_errors() {
    let dir = case_dir("torch_hostile");
    for (file, needle) in [("truncated.pt", "truncated.pt"), ("not_a_zip.pt", "not_a_zip.pt"), ("foreign_global.pt", "foreign_global.pt")] {
        let e = WeightSource::open_file(dir.join(file)).expect_err(file);
        assert!(matches!(e, Error::Checkpoint { .. }), "{file}: {e}");
        assert!(e.to_string().contains(needle) && e.to_string().contains("not a readable PyTorch checkpoint"), "{file}: {e}");
    }
    // A storage missing from the zip: the file opens (tensors are read lazily), the load fails
    // naming the tensor whose bytes are gone.
    let folder = std::env::temp_dir().join(format!("vlmc-err-{}-missing-storage", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(dir.join("missing_storage.pt"), folder.join("checkpoint.pt")).unwrap();
    let e = load_err(&folder);
    std::fs::remove_dir_all(&folder).ok();
    assert!(e.contains("checkpoint.pt") && e.contains("not a readable PyTorch checkpoint"), "{e}");
    // Defaults that contradict the stored shapes: heads 16 × dim_head 64 against a stored inner width of 512.
    let set = [("gated_xattn.heads".to_string(), serde_json::json!(16))];
    let e = Connector::from_dir_with(gpu(), case_dir("openflamingo_pt_llama_xattn"), &set).unwrap_err().to_string();
    assert!(e.contains("to_q.weight") && e.contains("[1024, 10]") && e.contains("[512, 10]"), "{e}");
    // A folder of several checkpoints and no config.json asks which file is meant.
    let e = load_err(&case_dir("torch_hostile"));
    assert!(e.contains("4 PyTorch checkpoints and no checkpoint.pt: name one file"), "{e}");
    // A folder whose only checkpoint is not OpenFlamingo's has no config to infer: says so.
    let folder = std::env::temp_dir().join(format!("vlmc-err-{}-not-flamingo", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    save_f32(folder.join("model.safetensors"), &[("encoder.weight", &[2, 2], &[0.0; 4])]).unwrap();
    let e = load_err(&folder);
    std::fs::remove_dir_all(&folder).ok();
    assert!(e.contains("config.json") && e.contains("can be inferred"), "{e}");
}

#[test]
fn sharded_pytorch_checkpoints_load_through_their_index() {
    // llava_tiny's projector in two torch.save zip shards + pytorch_model.bin.index.json
    // (tests/data/tools/make_bin_shards.py); it must give llava_tiny's expected output.
    let g = gpu();
    let dir = data_dir().join("torch_sharded/llava_tiny");
    let ws = WeightSource::open_dir(&dir).unwrap();
    assert_eq!(ws.names().len(), 4, "both shards are read");
    let c = Connector::from_dir(g, &dir).unwrap();
    let out = c.run(g, &inputs("llava_tiny")).unwrap();
    assert_close(
        "sharded .bin llava_tiny",
        &out.get("output").unwrap().data,
        &expected("llava_tiny").get_any("output").unwrap().data,
        1e-5,
    );
    // An index naming a shard that is not there, or one outside the folder, is an error naming it.
    let tmp = std::env::temp_dir().join(format!("vlmc-bin-shards-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::copy(dir.join("config.json"), tmp.join("config.json")).unwrap();
    for (shard, want) in [("pytorch_model-00009-of-00009.bin", "pytorch_model-00009-of-00009.bin"), ("../x.bin", "plain file names")] {
        let index = serde_json::json!({ "weight_map": { "multi_modal_projector.linear_1.weight": shard } });
        std::fs::write(tmp.join("pytorch_model.bin.index.json"), index.to_string()).unwrap();
        let e = load_err(&tmp);
        assert!(e.contains(want), "{e}");
    }
    std::fs::remove_dir_all(&tmp).ok();
}
