//! LLaVA-NeXT: the projector on every AnyRes tile, then the packing (unpad, a newline per row,
//! global view first), in one submit.
//!
//!     cargo run --release --example llava_next -- [MODEL_DIR]   (default tests/data/llava_next_square)
//!
//! Reference: transformers `LlavaNextModel.pack_image_features` (models/llava_next/modeling_llava_next.py).

mod common;

use vlm_connectors::connectors::LlavaNext;
use vlm_connectors::{Gpu, Recorder};

fn main() -> vlm_connectors::Result<()> {
    let dir = common::dir("llava_next_square");
    let gpu = Gpu::new()?;
    let model = LlavaNext::from_dir(&gpu, &dir)?;
    let inputs = common::inputs(&dir)?;
    // image_features [tiles, tokens, C_vis] (tile 0 = global view); image_size (h, w) in pixels.
    let features = common::tensor(&gpu, &inputs, "image_features")?;
    let (_, hw) = inputs.get_int("image_size")?;
    let size = [hw[0].max(0) as usize, hw.get(1).copied().unwrap_or(0).max(0) as usize];
    println!("adapter: {}; image {size:?} → {} tokens", gpu.describe(), model.packer.token_count(size)?);

    let mut rec = Recorder::new(&gpu);
    let (packed, projected) = model.forward(&mut rec, &features, size)?;
    rec.submit()?;
    common::report(&gpu, &dir, "projected", &projected)?;
    common::report(&gpu, &dir, "output", &packed)
}
