//! vlm-connectors in the browser: the API `web/app.js` calls (through wasm-bindgen), on the
//! browser's WebGPU adapter.
//!
//! ```text
//! Session.create()                       → the browser's adapter (WebGPU), autotuning off
//! session.load(config, preprocessor, w)  → ImageEncoder::from_bytes (f32: browsers without shader-f16)
//! session.encode(image bytes, context)   → decode → ImageProcessor (CPU, wasm) → tower + connector
//!                                           (one submit, timed) → JSON for the page
//! ```
//!
//! Every call returns a `Promise` (or throws) with the library's error text; nothing here blocks
//! the browser's thread. The golden cases run on the same library in `tests/browser.rs`.

use std::cell::RefCell;
use std::rc::Rc;

use serde_json::json;
use vlm_connectors::connectors::budget::{budget_table, render_svg, BudgetRow, Scheme, LLAVA_TOKENS};
use vlm_connectors::connectors::models::TOWER_MODEL_TYPES;
use vlm_connectors::connectors::{ImageEncoder, LoadOptions};
use vlm_connectors::preprocess::RgbImage;
use vlm_connectors::{wgpu, Gpu, GpuOptions, Recorder};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// A panic aborts the wasm instance, and the `Promise` it was in never settles: hand the message
/// to the page's `globalThis.vlmcPanic(message)` (when it defines one) so it can say so.
fn report_panic(info: &std::panic::PanicHookInfo) {
    let global = js_sys::global();
    if let Ok(f) = js_sys::Reflect::get(&global, &JsValue::from_str("vlmcPanic")) {
        if let Some(f) = f.dyn_ref::<js_sys::Function>() {
            let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&info.to_string()));
        }
    }
}

struct Inner {
    gpu: Gpu,
    encoder: RefCell<Option<Rc<ImageEncoder>>>,
}

/// The page's handle: one `Gpu` on the browser's adapter and the model loaded last.
#[wasm_bindgen]
pub struct Session {
    inner: Rc<Inner>,
}

/// A `Session` on the browser's WebGPU adapter (a `Promise`; rejects with the error text when
/// the browser has no WebGPU adapter).
#[wasm_bindgen(js_name = createSession)]
pub fn create_session() -> js_sys::Promise {
    std::panic::set_hook(Box::new(report_panic));
    future_to_promise(async {
        let gpu = Gpu::new_async(GpuOptions::default()).await.map_err(js_err)?;
        Ok(Session { inner: Rc::new(Inner { gpu, encoder: RefCell::new(None) }) }.into())
    })
}

#[wasm_bindgen]
impl Session {
    /// The adapter as JSON: name, backend, whether it has `shader-f16` and timestamps, its
    /// storage-binding and workgroup-storage limits.
    pub fn adapter(&self) -> String {
        let g = &self.inner.gpu;
        let f = g.features();
        json!({
            "name": g.adapter_info().name,
            "fallback": g.adapter_info().device_type == wgpu::DeviceType::Cpu,
            "describe": g.describe(),
            "shader_f16": f.contains(wgpu::Features::SHADER_F16),
            "timestamps": f.contains(wgpu::Features::TIMESTAMP_QUERY),
            "max_storage_binding": g.limits().max_storage_buffer_binding_size,
            "max_workgroup_storage": g.limits().max_compute_workgroup_storage_size,
        })
        .to_string()
    }

    /// Loads a model from its files' bytes (`config.json`, `preprocessor_config.json` as text,
    /// one safetensors file) in f32. Returns the model's description as JSON; throws the
    /// library's error (a model without a tower, a malformed config, missing tensors).
    pub fn load(&self, config_json: &str, preprocessor_json: &str, weights: Vec<u8>) -> Result<String, JsValue> {
        let enc =
            ImageEncoder::from_bytes(&self.inner.gpu, config_json, preprocessor_json, weights, &LoadOptions::default()).map_err(js_err)?;
        let c = enc.connector();
        let out = json!({
            "model_type": c.model_type(),
            "class": c.entry().class,
            "processor": enc.processor().kind,
            "describe": c.describe(),
        });
        *self.inner.encoder.borrow_mut() = Some(Rc::new(enc));
        Ok(out.to_string())
    }

    /// Encodes one image (PNG or JPEG bytes) with the loaded model: a `Promise` of JSON with the
    /// image size, the processor's tiling, `pixel_values` and output shapes, the token count,
    /// the times (preprocessing on the CPU in wasm; the forward's first run, pipelines compiled
    /// in it; a second run: wall ms from submit to done, and GPU ms from timestamps when the
    /// adapter has them), the first output values, and the token-budget chart (SVG) for
    /// `context` tokens with this model's row measured.
    pub fn encode(&self, image: Vec<u8>, context: usize) -> js_sys::Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { encode(&inner, &image, context).await.map(|s| JsValue::from_str(&s)).map_err(js_err) })
    }
}

async fn encode(inner: &Inner, image: &[u8], context: usize) -> vlm_connectors::Result<String> {
    let gpu = &inner.gpu;
    let enc = inner.encoder.borrow().clone().ok_or_else(|| vlm_connectors::Error::input("model", "no model loaded: call load() first"))?;
    let img = RgbImage::decode_with(image, "the image", Default::default())?;
    let t0 = web_time::Instant::now();
    let processed = enc.processor().preprocess(&img)?;
    let preprocess_ms = t0.elapsed().as_secs_f64() * 1e3;
    // The first run compiles the pipelines; the second is the one timed.
    let t1 = web_time::Instant::now();
    let first = enc.run_async(gpu, &processed).await?;
    let first_ms = t1.elapsed().as_secs_f64() * 1e3;
    let inputs = enc.inputs(gpu, &processed)?;
    let mut rec = Recorder::new(gpu);
    let named = enc.connector().record(&mut rec, &inputs)?;
    let timing = rec.submit_timed_async().await?;
    let output = named
        .iter()
        .find(|(n, _)| *n == "output")
        .map(|(_, t)| t)
        .ok_or_else(|| vlm_connectors::Error::input("output", "the model named no output `output`"))?;
    let values = output.to_vec_async(gpu).await?;
    let same = values == first.get("output")?.data;
    let tokens = if output.shape().len() >= 2 { output.shape()[output.shape().len() - 2] } else { 1 };
    let tiling = enc.processor().tiling([img.height, img.width]);
    // ToMe merging half of LLaVA's 576 tokens, as `vlmc budget` shows by default.
    let mut rows = budget_table(context.max(1), [img.height, img.width], 288)?;
    let model_type = enc.connector().model_type();
    let scheme = TOWER_MODEL_TYPES.iter().find(|t| **t == model_type).map(|t| Scheme::Zoo { model_type: t, grid: [0, 0] });
    rows.insert(
        0,
        BudgetRow {
            name: format!("this model: {model_type} (measured)"),
            scheme: scheme.unwrap_or(Scheme::Llava),
            visual: tokens,
            text_left: context.saturating_sub(tokens),
            ratio: LLAVA_TOKENS as f64 / tokens.max(1) as f64,
            ms: Some(timing.gpu_ms.unwrap_or(timing.wall_ms)),
        },
    );
    Ok(json!({
        "image": [img.height, img.width],
        "processor": enc.processor().kind,
        "tiling": {
            "resized": tiling.resized, "crop": tiling.crop, "pinpoint": tiling.pinpoint,
            "grid": tiling.grid, "tile": tiling.tile, "input": tiling.input,
        },
        "pixel_values_shape": processed.shape,
        "output_shape": output.shape(),
        "tokens": tokens,
        "preprocess_ms": preprocess_ms,
        "first_run_ms": first_ms,
        "wall_ms": timing.wall_ms,
        "gpu_ms": timing.gpu_ms,
        "runs_agree": same,
        "output_head": values.iter().take(6).collect::<Vec<_>>(),
        "budget_svg": render_svg(&rows, context.max(1), &format!("Token budget for a {}×{} (height×width) image", img.height, img.width)),
    })
    .to_string())
}
