//! Library use, step by step: load a LLaVA projector from a checkpoint folder, run one forward as
//! one submit, read the tokens back.
//!
//!     cargo run --release --example llava_projector -- [MODEL_DIR]
//!
//! Without an argument it uses the tiny HF-layout checkpoint in tests/data/llava_tiny.

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::connectors::LlavaProjector;
use vlm_connectors::{Gpu, Recorder, Tensor};

fn main() -> vlm_connectors::Result<()> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/llava_tiny").to_string());

    // 1. The GPU: WGPU_BACKEND / WGPU_ADAPTER_NAME / WGPU_POWER_PREF pick it; a discrete GPU wins.
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());

    // 2. The projector: config.json says which layout; only the projector's tensors are read.
    let proj = LlavaProjector::from_dir(&gpu, &dir)?;
    println!("projector: {} → {} ({} Linear layers, {:?})", proj.in_features, proj.out_features, proj.depth(), proj.activation());

    // 3. Vision features: the golden inputs next to the checkpoint if there are any, else random.
    let (data, shape) = match WeightSource::open_file(format!("{dir}/inputs.safetensors")).and_then(|w| w.get_any("image_features")) {
        Ok(h) => (h.data, h.shape),
        Err(_) => (vlm_connectors::util::Rng::new(1).vec(576 * proj.in_features, 1.0), vec![1, 576, proj.in_features]),
    };
    let x = Tensor::from_slice(&gpu, &data, &shape)?;

    // 4. One forward: kernels are recorded, then submitted once; no readback in between.
    let mut rec = Recorder::new(&gpu);
    let tokens = proj.forward(&mut rec, &x)?;
    println!("recorded {} kernels: {:?}", rec.len(), rec.labels());
    rec.submit()?;

    // 5. Read back only what we need.
    let host = tokens.to_vec(&gpu)?;
    println!("tokens {:?}; first values {:?}", tokens.shape(), &host[..4.min(host.len())]);
    Ok(())
}
