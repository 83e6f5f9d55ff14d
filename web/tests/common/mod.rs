#![allow(dead_code)] // examples/times.rs uses the cases and the timing, not the checks
//! The golden cases the browser test runs (built into the binary: the browser has no file system),
//! the native suite's closeness check, and the forward timing; shared with `examples/times.rs`,
//! which times the same cases natively (lavapipe) for the browser-vs-native table in web/README.md.

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::connectors::{Connector, Inputs, LoadOptions};
use vlm_connectors::kernels::rel_l2;
use vlm_connectors::{DType, Gpu, Recorder};

/// `console.log` in the browser, stderr natively.
macro_rules! log {
    ($($t:tt)*) => {{
        #[cfg(target_arch = "wasm32")]
        wasm_bindgen_test::console_log!($($t)*);
        #[cfg(not(target_arch = "wasm32"))]
        eprintln!($($t)*);
    }};
}

/// A case's files, built into the test (the browser has no file system).
pub struct Case {
    pub name: &'static str,
    pub config: &'static str,
    pub model: Option<&'static [u8]>,
    pub inputs: &'static [u8],
    pub expected: &'static [u8],
    /// Outputs compared (each must be in `expected.safetensors`).
    pub outputs: &'static [&'static str],
}

macro_rules! case {
    ($dir:literal, $outputs:expr) => {
        case!($dir, $outputs, Some(include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/", $dir, "/model.safetensors"))))
    };
    ($dir:literal, $outputs:expr, $model:expr) => {
        Case {
            name: $dir,
            config: include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/", $dir, "/config.json")),
            model: $model,
            inputs: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/", $dir, "/inputs.safetensors")),
            expected: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/", $dir, "/expected.safetensors")),
            outputs: $outputs,
        }
    };
}

/// One case or more per connector family (the tiny ones: SwiftShader is a CPU).
pub fn cases() -> Vec<Case> {
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

impl Case {
    /// Loads the connector (the pixels_* cases with their tower) and reads its inputs.
    pub fn load(&self, g: &Gpu) -> (Connector, Inputs) {
        // The pixels_* cases run from their golden pixel_values through the tower.
        let tower = self.name.starts_with("pixels/").then(|| ("load_vision_tower".to_string(), serde_json::Value::Bool(true)));
        let opts = LoadOptions { overrides: tower.into_iter().collect(), ..Default::default() };
        let c =
            Connector::from_bytes(g, self.config, self.model.map(<[u8]>::to_vec), &opts).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        let inputs = WeightSource::from_bytes(self.inputs.to_vec(), "inputs.safetensors").unwrap();
        let inputs = Inputs::read_as(g, &inputs, c.input_names(), DType::F32).unwrap_or_else(|e| panic!("{}: {e}", self.name));
        (c, inputs)
    }

    /// The expected tensors.
    pub fn expected(&self) -> WeightSource {
        WeightSource::from_bytes(self.expected.to_vec(), "expected.safetensors").unwrap()
    }
}

/// Median (wall ms from submit to done, GPU ms from timestamps where the adapter has them) of
/// `runs` forwards after one warm-up (pipelines compiled in it).
pub async fn time_forward(g: &Gpu, c: &Connector, inputs: &Inputs, runs: usize) -> (f64, Option<f64>) {
    let (mut walls, mut gpus) = (Vec::new(), Vec::new());
    for i in 0..=runs {
        let mut rec = Recorder::new(g);
        let outs = c.record(&mut rec, inputs).unwrap();
        let t = rec.submit_timed_async().await.unwrap();
        drop(outs);
        if i > 0 {
            walls.push(t.wall_ms);
            gpus.extend(t.gpu_ms);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let gpu = (gpus.len() == walls.len()).then(|| median(gpus));
    (median(walls), gpu)
}

/// The native suite's check (tests/common/mod.rs `assert_close`).
pub fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert!(got.iter().all(|v| v.is_finite()), "{what}: non-finite output");
    let err = rel_l2(got, want);
    let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_diff = got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    log!("{what}: rel L2 {err:.2e}, max |diff| {max_diff:.2e} (max |ref| {max_ref:.2e})");
    assert!(err <= 1e-5, "{what}: relative L2 error {err:.3e} > 1e-5");
    assert!(max_diff <= 1e-4 * max_ref.max(1e-30), "{what}: max abs diff {max_diff:.3e} > 1e-4·{max_ref:.3e}");
}
