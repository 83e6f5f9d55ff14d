//! Library use, step by step: load a LLaVA projector from a checkpoint folder, run one forward as
//! one submit, read the tokens back, and compare with `expected.safetensors` when it is there.
//!
//!     cargo run --release --example llava_projector -- [MODEL_DIR]
//!
//! Without an argument it uses the tiny HF-layout checkpoint in tests/data/llava_tiny. Reference:
//! transformers `LlavaMultiModalProjector` (models/llava/modeling_llava.py).

mod common;

use vlm_connectors::connectors::LlavaProjector;
use vlm_connectors::{Gpu, Recorder, Tensor};

fn main() -> vlm_connectors::Result<()> {
    let dir = common::dir("llava_tiny");

    // 1. The GPU: WGPU_BACKEND / WGPU_ADAPTER_NAME / WGPU_POWER_PREF pick it; a discrete GPU wins.
    let gpu = Gpu::new()?;
    println!("adapter: {}", gpu.describe());

    // 2. The projector: config.json says which layout; only the projector's tensors are read.
    let proj = LlavaProjector::from_dir(&gpu, &dir)?;
    println!("projector: {} → {} ({} Linear layers, {:?})", proj.in_features, proj.out_features, proj.depth(), proj.activation());

    // 3. Vision features [B, N, in_features]: the inputs beside the checkpoint, else random.
    let x = match common::inputs(&dir) {
        Ok(inputs) => common::tensor(&gpu, &inputs, "image_features")?,
        Err(_) => {
            Tensor::from_slice(&gpu, &vlm_connectors::util::Rng::new(1).vec(576 * proj.in_features, 1.0), &[1, 576, proj.in_features])?
        }
    };

    // 4. One forward: kernels are recorded, then submitted once; no readback in between.
    let mut rec = Recorder::new(&gpu);
    let tokens = proj.forward(&mut rec, &x)?;
    println!("recorded {} kernels: {:?}", rec.len(), rec.labels());
    rec.submit()?;

    // 5. Read back only what we need.
    common::report(&gpu, &dir, "output", &tokens)
}
