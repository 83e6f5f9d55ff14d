//! `vlmc` end to end: `run` reproduces the golden cases through the binary; `info` and errors.

mod common;
use common::*;

use std::process::Command;
use vlm_connectors::checkpoint::WeightSource;

/// `vlmc` with the built-in kernel plan: no measuring, no cache in the user's folder.
fn vlmc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vlmc"));
    c.env("VLMC_AUTOTUNE", "off");
    c
}

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("vlmc-cli-{}-{name}", std::process::id()))
}

/// Runs `vlmc run` on a golden case and checks every expected tensor it writes.
pub fn run_case(case: &str, outputs: &[&str]) {
    run_case_with(case, outputs, &[]);
}

/// [`run_case`] with extra `vlmc run` arguments (e.g. `--layer 0`).
pub fn run_case_with(case: &str, outputs: &[&str], args: &[&str]) {
    let out = tmp(&format!("{}.safetensors", case.replace('/', "_")));
    let st = vlmc()
        .args(["run", case_dir(case).to_str().unwrap(), "--inputs"])
        .arg(case_dir(case).join("inputs.safetensors"))
        .arg("--output")
        .arg(&out)
        .args(args)
        .output()
        .unwrap();
    assert!(st.status.success(), "{case}: vlmc run failed: {}", String::from_utf8_lossy(&st.stderr));
    let got = WeightSource::open_file(&out).unwrap();
    let want = expected(case);
    for name in outputs {
        let (g, w) = (got.get_any(name).unwrap(), want.get_any(name).unwrap());
        assert_eq!(g.shape, w.shape, "{case}/{name}: shape");
        assert_close(&format!("vlmc run {case}/{name}"), &g.data, &w.data, 1e-5);
    }
    std::fs::remove_file(&out).ok();
}

#[test]
fn vlmc_run_reproduces_every_llava_case() {
    let plain: Vec<String> =
        cases("llava").into_iter().filter(|c| !c.starts_with("llava_next") && !c.starts_with("llava_onevision")).collect();
    assert!(plain.len() >= 5, "{plain:?}");
    for case in &plain {
        run_case(case, &["output"]);
    }
}

#[test]
fn vlmc_run_reproduces_the_blip2_cases() {
    for case in cases("blip2").into_iter().chain(["instructblip".to_string()]) {
        run_case(&case, &["output", "qformer_output"]);
    }
}

#[test]
fn vlmc_run_reproduces_the_flamingo_cases() {
    for case in cases("perceiver").into_iter().chain(cases("gated_xattn")) {
        run_case(&case, &["output"]);
    }
}

#[test]
fn vlmc_run_reproduces_the_token_budget_cases() {
    for case in cases("llava_next").into_iter().chain(cases("llava_onevision")) {
        run_case(&case, &["output", "projected"]);
    }
    for case in cases("pool") {
        run_case(&case, &["output"]);
    }
    for case in cases("tome") {
        run_case(&case, &["output", "size"]);
    }
}

#[test]
fn vlmc_info_lists_the_chosen_adapter() {
    let st = vlmc().arg("info").output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(text.contains("chosen:"), "{text}");
    assert!(text.contains("max_storage_buffer_binding_size"), "{text}");
    // the model registry: every model_type with the type that loads it
    for e in vlm_connectors::connectors::MODELS {
        assert!(text.contains(e.model_types[0]) && text.contains(e.class), "{} missing: {text}", e.class);
    }
}

#[test]
fn vlmc_run_reports_errors_without_panicking() {
    // unknown model_type
    let dir = tmp("badtype");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type": "gpt9"}"#).unwrap();
    let st = vlmc().args(["run", dir.to_str().unwrap(), "--inputs", "x", "--output", "y"]).output().unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!st.status.success());
    assert!(err.contains("unknown model_type `gpt9`"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // wrong input name: inputs of another connector
    let st = vlmc()
        .args(["run", case_dir("llava_tiny").to_str().unwrap(), "--inputs"])
        .arg(case_dir("blip2_tiny").join("inputs.safetensors"))
        .args(["--output", tmp("never").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!st.status.success());
    assert!(err.contains("image_features"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn vlmc_budget_prints_the_table_and_draws_the_chart() {
    let svg = tmp("budget.svg");
    let st = vlmc().args(["budget", "--no-time", "--context", "4096", "--image", "672x672", "--svg"]).arg(&svg).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let text = String::from_utf8_lossy(&st.stdout);
    for needle in ["LLaVA-1.5", "576", "3520", "2928", "1168", "744", "Q-Former", "Perceiver", "ToMe r=288"] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
    // Every zoo connector has its row, at its model's resolution.
    for needle in [
        "Qwen2-VL 672×672 (24×24 merged)",
        "Qwen2.5-VL",
        "InternVL3",
        "Idefics3",
        "Gemma 3",
        "PaliGemma",
        "Mistral 3 672×672",
        "Llama 3.2 Vision",
        "Idefics2",
        "600",
        "169",
        "4095",
    ] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.matches("<rect").count() >= 33 && chart.contains("Llama 3.2 Vision"), "{chart}");
    std::fs::remove_file(&svg).ok();
    let st = vlmc().args(["budget", "--no-time", "--image", "0x10"]).output().unwrap();
    assert!(!st.status.success());
    assert!(String::from_utf8_lossy(&st.stderr).contains("image_size"));
}

#[test]
fn vlmc_bench_reads_costs_from_the_launches() {
    // Entries by a comma list; FLOP/s and bytes come from what the launches declared.
    let json = tmp("bench.json");
    let st = vlmc().args(["bench", "--only", "fma_peak,layernorm", "--repeats", "1", "--json"]).arg(&json).output().unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success(), "{text}{}", String::from_utf8_lossy(&st.stderr));
    assert!(text.contains("fma_peak") && text.contains("layernorm"), "{text}");
    let records: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let ln = records.as_array().unwrap().iter().find(|r| r["name"] == "layernorm").unwrap();
    // layernorm 576×4096: 8 FLOPs and 2×4 bytes per element (read x, write y).
    assert_eq!((ln["flops"].as_u64(), ln["bytes"].as_u64()), (Some(8 * 576 * 4096), Some(8 * 576 * 4096)));
    assert!(ln["pct_of_fma_peak"].as_f64().is_some_and(|p| p > 0.0), "{ln}");
    let st = vlmc().args(["bench", "--only", "fma_peak,conv"]).output().unwrap();
    assert!(!st.status.success() && String::from_utf8_lossy(&st.stderr).contains("`conv` is not one of"));
    // In f16: the kernels say so (the ceilings stay f32), and a connector's weights take half.
    if gpu().features().contains(vlm_connectors::wgpu::Features::SHADER_F16) {
        let st =
            vlmc().args(["bench", "--only", "layernorm,llava", "--repeats", "1", "--dtype", "f16", "--json"]).arg(&json).output().unwrap();
        assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
        let records: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        let find = |n: &str| records.as_array().unwrap().iter().find(|r| r["name"] == n).unwrap().clone();
        let (ln, llava) = (find("layernorm"), find("llava"));
        assert_eq!((ln["dtype"].as_str(), ln["bytes"].as_u64()), (Some("f16"), Some(4 * 576 * 4096)));
        // 1024·4096 + 4096 + 4096·4096 + 4096 parameters, 2 bytes each; the peak adds intermediates.
        let weights = 2 * (1024 * 4096 + 4096 + 4096 * 4096 + 4096);
        let (w, peak) = (llava["weights_bytes"].as_u64().unwrap(), llava["peak_bytes"].as_u64().unwrap());
        assert!(w >= weights && w <= weights * 9 / 8 && peak > w, "weights {w}, peak {peak}");
    }
}

#[test]
fn vlmc_run_on_an_empty_batch_writes_an_empty_output() {
    let inp = tmp("empty-in.safetensors");
    vlm_connectors::checkpoint::save_f32(&inp, &[("image_features", &[0, 36, 64], &[])]).unwrap();
    let out = tmp("empty-out.safetensors");
    let st =
        vlmc().args(["run", case_dir("llava_tiny").to_str().unwrap(), "--inputs"]).arg(&inp).arg("--output").arg(&out).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let y = WeightSource::open_file(&out).unwrap().get_any("output").unwrap();
    assert_eq!((y.shape[0], y.shape[1], y.data.len()), (0, 36, 0));
}

#[test]
fn vlmc_runs_a_released_openflamingo_checkpoint_and_says_what_it_assumed() {
    run_case("openflamingo_pt_llama_perceiver", &["output"]);
    run_case_with("openflamingo_pt_llama_xattn", &["output"], &["--layer", "0"]);
    let st = vlmc().args(["info", case_dir("openflamingo_pt_llama_xattn").to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success() && text.contains("inferred") && text.contains("assumed: gated_xattn.heads = 8"), "{text}");
    // --set overrides an assumed default (heads 16 × dim_head 32 keeps the stored inner width 512)
    let st = vlmc()
        .args([
            "info",
            case_dir("openflamingo_pt_llama_xattn").to_str().unwrap(),
            "--set",
            "gated_xattn.heads=16",
            "--set",
            "gated_xattn.dim_head=32",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&st.stdout).contains("\"heads\": 16"), "{}", String::from_utf8_lossy(&st.stderr));
}

#[test]
fn vlmc_run_reproduces_the_zoo_cases() {
    let zoo: Vec<String> =
        std::fs::read_dir(data_dir().join("zoo")).unwrap().map(|e| format!("zoo/{}", e.unwrap().file_name().to_string_lossy())).collect();
    assert!(zoo.len() >= 6, "{zoo:?}");
    for case in &zoo {
        run_case(case, &["output"]);
        // vlmc info names the connector and its tokens per image.
        let st = vlmc().args(["info", case_dir(case).to_str().unwrap()]).output().unwrap();
        let text = String::from_utf8_lossy(&st.stdout);
        assert!(st.status.success() && text.contains("model_type") && text.contains("tokens per image: "), "{case}: {text}");
        assert!(!text.contains("not known"), "{case}: {text}");
    }
}

#[test]
fn vlmc_runs_idefics_and_picks_its_gated_layer() {
    run_case("idefics_perceiver", &["output"]);
    run_case_with("idefics_gated_xattn", &["output", "cross_attention_gate"], &["--layer", "0"]);
    // Layer 1 exists (num_hidden_layers 2) and is another layer: a different output.
    let out = tmp("idefics_layer1.safetensors");
    let dir = case_dir("idefics_gated_xattn");
    let inputs = dir.join("inputs.safetensors");
    let args = ["run", dir.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--output", out.to_str().unwrap()];
    let st = vlmc().args(args).args(["--layer", "1"]).output().unwrap();
    assert!(st.status.success(), "{}", String::from_utf8_lossy(&st.stderr));
    let y = WeightSource::open_file(&out).unwrap().get_any("output").unwrap();
    let want = expected("idefics_gated_xattn").get_any("output").unwrap();
    assert!(vlm_connectors::kernels::rel_l2(&y.data, &want.data) > 1e-3, "--layer 1 must run gated_cross_attn_layers.1");
    // Past the last layer, and --layer on a connector without layers: errors that say so.
    let st = vlmc().args(args).args(["--layer", "2"]).output().unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!st.status.success() && err.contains("has 2 gated layers"), "{err}");
    let dir = case_dir("llava_tiny");
    let st = vlmc()
        .args([
            "run",
            dir.to_str().unwrap(),
            "--inputs",
            dir.join("inputs.safetensors").to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args(["--layer", "0"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&st.stderr);
    assert!(!st.status.success() && err.contains("no gated layers"), "{err}");
    // vlmc info: the connector's parts, the tensors it read, the layer picked.
    let dir = case_dir("idefics_gated_xattn");
    let st = vlmc().args(["info", dir.to_str().unwrap(), "--set", "layer_index=1"]).output().unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    for want in [
        "Perceiver Resampler: 1 layers, 2 heads × 8",
        "gated cross-attention layer 1: text width 32",
        "weights: 26 of the checkpoint's 83 tensors",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
}

#[test]
fn vlmc_run_in_f16_matches_within_f16_rounding() {
    if !gpu().features().contains(vlm_connectors::wgpu::Features::SHADER_F16) {
        eprintln!("adapter without SHADER_F16: `vlmc run --dtype f16` not run here");
        return;
    }
    for case in ["llava_next_wide", "idefics_gated_xattn", "perceiver_video"] {
        let out = tmp(&format!("{case}_f16.safetensors"));
        let dir = case_dir(case);
        let inputs = dir.join("inputs.safetensors");
        let st = vlmc()
            .args(["run", dir.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--output", out.to_str().unwrap(), "--dtype", "f16"])
            .output()
            .unwrap();
        assert!(st.status.success() && String::from_utf8_lossy(&st.stdout).contains("F16"), "{}", String::from_utf8_lossy(&st.stderr));
        let got = WeightSource::open_file(&out).unwrap().get_any("output").unwrap();
        let want = expected(case).get_any("output").unwrap();
        let e = vlm_connectors::kernels::rel_l2(&got.data, &want.data);
        assert!(e <= 5e-3, "{case}: f16 rel L2 {e:.2e}");
    }
}

#[test]
fn a_healthy_run_prints_nothing_that_looks_like_an_error() {
    // Without XDG_RUNTIME_DIR, Mesa's window-system code would print an error per instance.
    let dir = case_dir("llava_tiny");
    let out = tmp("quiet.safetensors");
    let inputs = dir.join("inputs.safetensors");
    for args in [vec!["info"], vec!["run", dir.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--output", out.to_str().unwrap()]]
    {
        let st = vlmc().args(&args).env_remove("XDG_RUNTIME_DIR").output().unwrap();
        let err = String::from_utf8_lossy(&st.stderr);
        assert!(st.status.success() && !err.to_lowercase().contains("error"), "{args:?}: {err}");
    }
}

#[test]
fn a_closed_pipe_ends_vlmc_without_a_panic() {
    use std::io::Read;
    // `vlmc info | head -1`: the reader goes away after the first bytes.
    let mut child = vlmc().arg("info").stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let mut first = [0u8; 8];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap(); // then the pipe is closed
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn vlmc_profile_times_every_dispatch() {
    let dir = case_dir("idefics_gated_xattn");
    let (inputs, json) = (dir.join("inputs.safetensors"), tmp("profile.json"));
    let st = vlmc().args(["profile", dir.to_str().unwrap(), "--inputs", inputs.to_str().unwrap(), "--json"]).arg(&json).output().unwrap();
    let text = String::from_utf8_lossy(&st.stdout);
    assert!(st.status.success() && text.contains("dispatches"), "{text}{}", String::from_utf8_lossy(&st.stderr));
    let records: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let records = records.as_array().unwrap();
    // rmsnorm, q / kv GEMMs, attention, o_proj, rmsnorm, gate_up, gated activation, down.
    assert_eq!(records.len(), 9, "{records:?}");
    for r in records {
        assert!(r["kernel"].is_string() && r["variant"].is_string() && r["grid"].as_array().is_some_and(|g| g.len() == 3), "{r}");
        assert!(r["flops"].is_u64() && r["bytes"].as_u64().is_some_and(|b| b > 0) && r["ms"].as_f64().is_some_and(|m| m >= 0.0), "{r}");
    }
    assert!(records.iter().any(|r| r["kernel"] == "attention" || r["kernel"] == "attention_q8"));
    let st = vlmc().args(["profile", "--demo", "resnet"]).output().unwrap();
    assert!(!st.status.success() && String::from_utf8_lossy(&st.stderr).contains("one of llava"));
}
