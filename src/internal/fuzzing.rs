//! The fuzz harnesses, shared by the cargo-fuzz targets in `fuzz/` and by the regression test
//! that replays their corpus in CI (`tests/fuzz_corpus.rs`). Each must return for any bytes: `Ok`
//! or a clear `Err`, never a panic.

use std::sync::OnceLock;

use crate::checkpoint::{Config, WeightSource};
use crate::connectors::{Connector, MODELS};
use crate::runtime::{Gpu, Result};

/// The GPU the harnesses share.
pub fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| Gpu::new().expect("fuzzing needs a GPU adapter (lavapipe will do)"))
}

/// Splits `data` into (config.json, safetensors): two little-endian bytes give the config's length.
pub fn split_checkpoint(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (data, &[]);
    }
    let n = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    (&data[2..2 + n], &data[2 + n..])
}

/// Joins a config and a safetensors file into one fuzz input (the inverse of [`split_checkpoint`]).
pub fn join_checkpoint(config: &[u8], safetensors: &[u8]) -> Vec<u8> {
    let n = config.len().min(u16::MAX as usize);
    let mut v = (n as u16).to_le_bytes().to_vec();
    v.extend_from_slice(&config[..n]);
    v.extend_from_slice(safetensors);
    v
}

/// Checkpoint loader harness: parse the config and the weights and build the connector.
pub fn load_checkpoint_bytes(data: &[u8]) -> Result<Connector> {
    let (config, weights) = split_checkpoint(data);
    let cfg = Config::from_str(&String::from_utf8_lossy(config))?;
    let ws = WeightSource::from_bytes(weights.to_vec(), "fuzz.safetensors").ok();
    Connector::load(gpu(), &cfg, ws.as_ref())
}

/// PyTorch checkpoint harness: `checkpoint.pt` bytes → the tensors → an inferred OpenFlamingo
/// config → the connector (what a folder holding only a released checkpoint loads as).
pub fn load_torch_bytes(data: &[u8]) -> Result<Connector> {
    let ws = WeightSource::from_torch_bytes(data.to_vec(), "fuzz.pt")?;
    let inferred = crate::checkpoint::infer::openflamingo(&ws)
        .ok_or_else(|| crate::Error::config("model_type", "not an OpenFlamingo checkpoint"))??;
    Connector::load(gpu(), &inferred.config, Some(&ws))
}

/// The connectors the input harness feeds: for each row of the model registry, in its order, every
/// checkpoint folder in `dir` or `dir/zoo` whose `model_type` the row loads (the golden cases).
/// Built once. New rows go at the end of the registry, so the corpus's first bytes keep their picks.
pub fn input_connectors(dir: &std::path::Path) -> &'static Vec<Connector> {
    static C: OnceLock<Vec<Connector>> = OnceLock::new();
    C.get_or_init(|| {
        let folders = |d: std::path::PathBuf| {
            std::fs::read_dir(d).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect::<Vec<_>>()).unwrap_or_default()
        };
        let mut cases: Vec<(String, std::path::PathBuf)> = folders(dir.to_path_buf())
            .into_iter()
            .chain(folders(dir.join("zoo")))
            .filter_map(|p| Some((Config::from_file(p.join("config.json")).ok()?.str("model_type").ok()?, p)))
            .collect();
        cases.sort();
        MODELS
            .iter()
            .flat_map(|e| cases.iter().filter(|(t, _)| e.model_types.contains(&t.as_str())))
            .map(|(_, p)| Connector::from_dir(gpu(), p).expect("golden checkpoint"))
            .collect()
    })
}

/// `vlmc run` input harness: the first byte picks a connector, the rest is the inputs file.
pub fn run_inputs_bytes(connectors: &[Connector], data: &[u8]) -> Result<()> {
    let Some((&pick, rest)) = data.split_first() else { return Ok(()) };
    let c = &connectors[pick as usize % connectors.len()];
    let inputs = WeightSource::from_bytes(rest.to_vec(), "inputs.safetensors")?;
    c.run(gpu(), &inputs).map(|_| ())
}

/// Image harness: the first byte picks a processor (CLIP shortest edge + crop, LLaVA-NeXT AnyRes,
/// BLIP's square, SigLIP's bilinear, OneVision's AnyRes; small sizes, so fuzzing stays fast), the rest is a PNG or
/// JPEG file decoded within 4096-px sides and 64 MiB, then preprocessed: `pixel_values` or an
/// error, never a panic or an unbounded allocation.
pub fn preprocess_image_bytes(data: &[u8]) -> Result<Vec<f32>> {
    use crate::preprocess::{ImageLimits, ImageProcessor, RgbImage};
    let Some((&pick, rest)) = data.split_first() else { return Ok(Vec::new()) };
    let config = match pick % 5 {
        0 => serde_json::json!({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 28}, "crop_size": 28}),
        1 => serde_json::json!({"image_processor_type": "LlavaNextImageProcessor", "size": {"shortest_edge": 14},
            "crop_size": {"height": 14, "width": 14}, "image_grid_pinpoints": [[14, 28], [28, 14], [28, 28], [42, 14]]}),
        2 => serde_json::json!({"image_processor_type": "BlipImageProcessor", "size": {"height": 21, "width": 21}}),
        3 => serde_json::json!({"image_processor_type": "SiglipImageProcessor", "size": {"height": 30, "width": 30}}),
        _ => serde_json::json!({"image_processor_type": "LlavaOnevisionImageProcessor", "size": {"height": 14, "width": 14},
            "image_grid_pinpoints": [[14, 14], [14, 28], [28, 28], [42, 28]]}),
    };
    let processor = ImageProcessor::from_config(&Config::from_value(config))?;
    let img = RgbImage::decode_with(rest, "fuzz", ImageLimits { max_side: 4096, max_alloc: 64 << 20, ..Default::default() })?;
    Ok(processor.preprocess(&img)?.pixel_values)
}
