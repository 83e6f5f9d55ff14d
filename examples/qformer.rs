//! BLIP-2's Q-Former: image embeddings in, 32 query tokens and the language model's soft prompt out.
//!
//!     cargo run --release --example qformer -- [MODEL_DIR]   (default tests/data/blip2_tiny)
//!
//! Reference: transformers `Blip2QFormerModel` + `language_projection` (models/blip_2/modeling_blip_2.py).

mod common;

use vlm_connectors::connectors::QFormer;
use vlm_connectors::{Gpu, Recorder};

fn main() -> vlm_connectors::Result<()> {
    let dir = common::dir("blip2_tiny");
    let gpu = Gpu::new()?;
    let qformer = QFormer::from_dir(&gpu, &dir)?; // reads only the Q-Former's tensors
    let c = &qformer.config;
    println!(
        "adapter: {}; {} layers, {} queries × {}, into a {}-wide language model",
        gpu.describe(),
        c.num_hidden_layers,
        c.num_query_tokens,
        c.hidden_size,
        qformer.text_width()
    );
    let image_embeds = common::tensor(&gpu, &common::inputs(&dir)?, "image_embeds")?; // [B, N, encoder_hidden_size]
    let mut rec = Recorder::new(&gpu);
    let (query_output, soft_prompt) = qformer.forward(&mut rec, &image_embeds)?;
    rec.submit()?;
    common::report(&gpu, &dir, "qformer_output", &query_output)?;
    common::report(&gpu, &dir, "output", &soft_prompt)
}
