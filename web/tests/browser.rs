//! The golden cases in a real browser: headless Chromium's WebGPU (SwiftShader in CI), through the
//! same library the page uses, at the native tolerances (rel-L2 ≤ 1e-5, max |diff| ≤ 1e-4·max
//! |ref|). Every kernel the web build can run is first compiled by the browser's WGSL compiler
//! (Tint), whose errors a native run never sees. Run by `.ci/run` (`cd web && cargo test`), with
//! `webdriver.json`'s flags; see web/README.md.

#[macro_use]
mod common;
use common::{assert_close, cases, time_forward};

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::connectors::{ImageEncoder, LoadOptions};
use vlm_connectors::kernels::registry::{compose, ALL};
use vlm_connectors::preprocess::RgbImage;
use vlm_connectors::{wgpu, Gpu, GpuOptions};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

async fn gpu() -> Gpu {
    Gpu::new_async(GpuOptions::default()).await.expect("the browser offers a WebGPU adapter (see webdriver.json's flags)")
}

#[wasm_bindgen_test]
async fn the_browser_compiles_every_kernel_the_web_build_can_run() {
    let g = gpu().await;
    let features = g.features();
    log!("adapter: {} · features {features:?}", g.describe());
    let mut compiled = 0;
    let mut failed = Vec::new();
    for k in ALL {
        for &dtype in k.dtypes {
            if !features.contains(k.required_features(dtype)) {
                continue; // not offered here (f16, subgroups, cooperative matrices): never dispatched
            }
            let src = compose(k, dtype).expect("shipped");
            let scope = g.device().push_error_scope(wgpu::ErrorFilter::Validation);
            let module = g
                .device()
                .create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(k.name), source: wgpu::ShaderSource::Wgsl(src.into()) });
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
    log!("the browser compiled {compiled} kernel pipelines");
    assert!(failed.is_empty(), "the browser's WGSL compiler refused:\n{}", failed.join("\n"));
    assert!(compiled >= 25, "only {compiled} pipelines compiled");
}

#[wasm_bindgen_test]
async fn golden_cases_match_the_references_in_the_browser() {
    let g = gpu().await;
    for case in cases() {
        let (c, inputs) = case.load(&g);
        let outs = c.run_inputs_async(&g, &inputs).await.unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let want = case.expected();
        for name in case.outputs {
            let got = outs.get(name).unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let w = want.get_any(name).unwrap();
            assert_eq!(got.shape, w.shape, "{}/{name}: shape", case.name);
            assert_close(&format!("{}/{name}", case.name), &got.data, &w.data);
        }
    }
}

/// The forward's time per case (`cargo test -- --nocapture` prints the table; examples/times.rs
/// prints the native one). Not an assertion: the numbers are the machine's.
#[wasm_bindgen_test]
async fn forward_times_per_case() {
    let g = gpu().await;
    log!("TIMES {} | case | wall ms | GPU ms (median of 5 after a warm-up)", g.describe());
    for case in cases() {
        let (c, inputs) = case.load(&g);
        let (wall, gpu_ms) = time_forward(&g, &c, &inputs, 5).await;
        log!("TIMES | {} | {wall:.2} | {}", case.name, gpu_ms.map_or("—".into(), |v| format!("{v:.2}")));
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
    let want =
        WeightSource::from_bytes(include_bytes!("../../tests/data/pixels/pixels_llava_next/expected.safetensors").to_vec(), "expected")
            .unwrap();
    let inputs =
        WeightSource::from_bytes(include_bytes!("../../tests/data/pixels/pixels_llava_next/inputs.safetensors").to_vec(), "inputs")
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
    // A forward run the blocking way is refused before anything is submitted.
    let case = &cases()[0];
    let (c, inputs) = case.load(&g);
    let e = c.run_inputs(&g, &inputs).unwrap_err().to_string();
    assert!(e.contains("run_inputs_async"), "{e}");
    let mut rec = vlm_connectors::Recorder::new(&g);
    c.record(&mut rec, &inputs).unwrap();
    assert!(rec.submit_timed().unwrap_err().to_string().contains("submit_timed_async"));
}
