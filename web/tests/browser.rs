//! The golden cases in a real browser: headless Chromium's WebGPU (SwiftShader in CI), through the
//! same library the page uses, at the native tolerances (rel-L2 ≤ 1e-5, max |diff| ≤ 1e-4·max
//! |ref|). Every kernel the web build can run is first compiled by the browser's WGSL compiler
//! (Tint), whose errors a native run never sees. Run by `.ci/run` (`cd web && cargo test`), with
//! `webdriver.json`'s flags; see web/README.md.

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::connectors::{Connector, ImageEncoder, Inputs, LoadOptions};
use vlm_connectors::kernels::registry::{compose, ALL};
use vlm_connectors::preprocess::RgbImage;
use vlm_connectors::{wgpu, DType, Gpu, GpuOptions};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A case's files, built into the test (the browser has no file system).
struct Case {
    name: &'static str,
    config: &'static str,
    model: Option<&'static [u8]>,
    inputs: &'static [u8],
    expected: &'static [u8],
    /// Outputs compared (each must be in `expected.safetensors`).
    outputs: &'static [&'static str],
}

macro_rules! case {
    ($dir:literal, $outputs:expr) => {
        case!($dir, $outputs, Some(include_bytes!(concat!("../../tests/data/", $dir, "/model.safetensors"))))
    };
    ($dir:literal, $outputs:expr, $model:expr) => {
        Case {
            name: $dir,
            config: include_str!(concat!("../../tests/data/", $dir, "/config.json")),
            model: $model,
            inputs: include_bytes!(concat!("../../tests/data/", $dir, "/inputs.safetensors")),
            expected: include_bytes!(concat!("../../tests/data/", $dir, "/expected.safetensors")),
            outputs: $outputs,
        }
    };
}

/// One case or more per connector family (the tiny ones: SwiftShader is a CPU).
fn cases() -> Vec<Case> {
    vec![
        case!("llava_tiny", &["output"]),
        case!("llava_original", &["output"]),
        case!("llava_next_square", &["output", "projected"]),
        case!("llava_onevision_anyres", &["output", "projected"]),
        case!("blip2_tiny", &["output", "qformer_output"]),
        case!("instructblip", &["output", "qformer_output"]),
        case!("perceiver_tiny", &["output"]),
        case!("gated_xattn_tiny", &["output"]),
        case!("idefics_perceiver", &["output"]),
        case!("idefics_gated_xattn", &["output"]),
        case!("pool_odd", &["output"], None),
        case!("tome_tiny", &["output", "size"], None),
        case!("zoo/qwen2_vl_merger", &["output"]),
        case!("zoo/qwen2_5_vl_merger", &["output"]),
        case!("zoo/internvl_pixel_shuffle", &["output"]),
        case!("zoo/idefics3_connector", &["output"]),
        case!("zoo/gemma3_projector", &["output"]),
        case!("zoo/paligemma_projector", &["output"]),
        case!("zoo/mistral3_projector", &["output"]),
        case!("zoo/mllama_xattn", &["output"]),
        case!("zoo/idefics2_connector", &["output"]),
        case!("pixels/pixels_llava_clip", &["output", "vision_features"]),
        case!("pixels/pixels_blip2", &["output", "vision_features", "qformer_output"]),
    ]
}

async fn gpu() -> Gpu {
    Gpu::new_async(GpuOptions::default()).await.expect("the browser offers a WebGPU adapter (see webdriver.json's flags)")
}

fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    let num: f64 = got.iter().zip(want).map(|(a, b)| ((a - b) as f64).powi(2)).sum();
    let den: f64 = want.iter().map(|b| (*b as f64).powi(2)).sum();
    (num / den.max(1e-300)).sqrt()
}

/// The native suite's check (tests/common/mod.rs `assert_close`).
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(got.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let err = rel_l2(got, want);
    let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_diff = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    console_log!("{what}: rel L2 {err:.2e}, max |diff| {max_diff:.2e} (max |ref| {max_ref:.2e})");
    assert!(err <= 1e-5, "{what}: relative L2 error {err:.3e} > 1e-5");
    assert!(max_diff <= 1e-4 * max_ref.max(1e-30), "{what}: max abs diff {max_diff:.3e} > 1e-4·{max_ref:.3e}");
}

#[wasm_bindgen_test]
async fn the_browser_compiles_every_kernel_the_web_build_can_run() {
    let g = gpu().await;
    let features = g.features();
    console_log!("adapter: {} · features {features:?}", g.describe());
    let mut compiled = 0;
    let mut failed = Vec::new();
    for k in ALL {
        for &dtype in k.dtypes {
            if !features.contains(k.required_features(dtype)) {
                continue; // not offered here (f16, subgroups, cooperative matrices): never dispatched
            }
            let src = compose(k, dtype).expect("shipped");
            let scope = g.device().push_error_scope(wgpu::ErrorFilter::Validation);
            let module = g.device().create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(k.name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            let _ = g.device().create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(k.name),
                layout: None,
                module: &module,
                entry_point: Some(k.entry),
                compilation_options: wgpu::PipelineCompilationOptions { constants: k.constants, ..Default::default() },
                cache: None,
            });
            match scope.pop().await {
                None => compiled += 1,
                Some(e) => failed.push(format!("{} ({dtype:?}): {e}", k.name)),
            }
        }
    }
    console_log!("the browser compiled {compiled} kernel pipelines");
    assert!(failed.is_empty(), "the browser's WGSL compiler refused:\n{}", failed.join("\n"));
    assert!(compiled >= 25, "only {compiled} pipelines compiled");
}

#[wasm_bindgen_test]
async fn golden_cases_match_the_references_in_the_browser() {
    let g = gpu().await;
    for case in cases() {
        let t0 = web_time::Instant::now();
        // The pixels_* cases run from their golden pixel_values through the tower.
        let tower = case.name.starts_with("pixels/").then(|| ("load_vision_tower".to_string(), serde_json::Value::Bool(true)));
        let opts = LoadOptions { overrides: tower.into_iter().collect(), ..Default::default() };
        let c = Connector::from_bytes(&g, case.config, case.model.map(<[u8]>::to_vec), &opts)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let inputs = WeightSource::from_bytes(case.inputs.to_vec(), "inputs.safetensors").unwrap();
        let inputs = Inputs::read_as(&g, &inputs, c.input_names(), DType::F32).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let outs = c.run_inputs_async(&g, &inputs).await.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        let want = WeightSource::from_bytes(case.expected.to_vec(), "expected.safetensors").unwrap();
        for name in case.outputs {
            let got = outs.get(name).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let w = want.get_any(name).unwrap();
            assert_eq!(got.shape, w.shape, "{}/{name}: shape", case.name);
            assert_close(&format!("{}/{name} ({ms:.0} ms with load)", case.name), &got.data, &w.data);
        }
    }
}

/// The page's path end to end: the photo's PNG bytes decoded in wasm, the processor (AnyRes
/// tiles), the CLIP tower and the LLaVA-NeXT packing, against transformers' output.
#[wasm_bindgen_test]
async fn a_photo_encodes_through_llava_next_like_transformers() {
    let g = gpu().await;
    let dir = "pixels/pixels_llava_next";
    let enc = ImageEncoder::from_bytes(
        &g,
        include_str!("../../tests/data/pixels/pixels_llava_next/config.json"),
        include_str!("../../tests/data/pixels/pixels_llava_next/preprocessor_config.json"),
        include_bytes!("../../tests/data/pixels/pixels_llava_next/model.safetensors").to_vec(),
        &LoadOptions::default(),
    )
    .unwrap();
    let img = RgbImage::decode(include_bytes!("../../assets/images/coffee.png")).unwrap();
    let t0 = web_time::Instant::now();
    let encoded = enc.encode_async(&g, &[img]).await.unwrap();
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let want = WeightSource::from_bytes(include_bytes!("../../tests/data/pixels/pixels_llava_next/expected.safetensors").to_vec(), "expected")
        .unwrap();
    let inputs = WeightSource::from_bytes(include_bytes!("../../tests/data/pixels/pixels_llava_next/inputs.safetensors").to_vec(), "inputs")
        .unwrap();
    let px = inputs.get_any("pixel_values").unwrap();
    assert_eq!(encoded[0].processed.shape, px.shape, "{dir}: pixel_values shape (21 AnyRes tiles)");
    assert_eq!(encoded[0].processed.pixel_values, px.data, "{dir}: pixel_values bit for bit");
    for name in ["output", "projected", "vision_features"] {
        let got = encoded[0].outputs.get(name).unwrap();
        let w = want.get_any(name).unwrap();
        assert_eq!(got.shape, w.shape, "{dir}/{name}: shape");
        assert_close(&format!("{dir}/{name} from coffee.png ({ms:.0} ms)"), &got.data, &w.data);
    }
}

/// The blocking calls are errors on the web, not hangs or panics.
#[wasm_bindgen_test]
async fn blocking_calls_are_errors_on_the_web() {
    let e = Gpu::new().unwrap_err().to_string();
    assert!(e.contains("new_async"), "{e}");
    let g = gpu().await;
    let t = vlm_connectors::Tensor::from_slice(&g, &[1.0, 2.0], &[2]).unwrap();
    let e = t.to_vec(&g).unwrap_err().to_string();
    assert!(e.contains("to_vec_async"), "{e}");
    assert_eq!(t.to_vec_async(&g).await.unwrap(), vec![1.0, 2.0]);
    assert!(g.wait().unwrap_err().to_string().contains("wait_async"));
    g.wait_async().await.unwrap();
}
