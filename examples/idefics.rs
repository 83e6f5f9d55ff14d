//! IDEFICS: the Perceiver Resampler (image tokens → a fixed number of latents) and one gated
//! cross-attention layer (text reading the images, masked by `image_attention_mask`).
//!
//!     cargo run --release --example idefics -- [MODEL_DIR]   (default tests/data/idefics_gated_xattn)
//!
//! Reference: transformers `IdeficsPerceiverResampler`, `IdeficsGatedCrossAttentionLayer`
//! (models/idefics/modeling_idefics.py).

mod common;

use vlm_connectors::connectors::Idefics;
use vlm_connectors::{Gpu, Recorder};

fn main() -> vlm_connectors::Result<()> {
    let dir = common::dir("idefics_gated_xattn");
    let gpu = Gpu::new()?;
    let model = Idefics::from_dir(&gpu, &dir)?;
    let inputs = common::inputs(&dir)?;
    println!("adapter: {}; perceiver: {}, gated layer {}", gpu.describe(), model.perceiver.is_some(), model.layer_index);
    let images = common::tensor(&gpu, &inputs, "image_hidden_states")?;

    let mut rec = Recorder::new(&gpu);
    let out = match (inputs.contains("hidden_states"), &model.perceiver) {
        // image_hidden_states [b·num_images, seq, E] → [b·num_images, n_latents, E]
        (false, Some(p)) => {
            let [n, seq, e] = <[usize; 3]>::try_from(images.shape())
                .map_err(|_| vlm_connectors::Error::shape("image_hidden_states", "[N, seq, E]", images.shape()))?;
            p.forward(&mut rec, &images.reshape(&[n, 1, 1, seq, e])?)?.reshape(&[n, p.config.num_latents, e])?
        }
        // hidden_states [b, L, D] reading the resampled images [b, num_images·n, E]
        _ => {
            let x = common::tensor(&gpu, &inputs, "hidden_states")?;
            let (shape, mask) = inputs.get_int("image_attention_mask")?; // [b, L, num_images]
            let bad = |what: &str, s: &[usize]| vlm_connectors::Error::shape(what, "rank 3", s);
            let [b, len, num] = <[usize; 3]>::try_from(shape.as_slice()).map_err(|_| bad("image_attention_mask", &shape))?;
            let tokens = *images.shape().get(1).ok_or_else(|| bad("image_hidden_states", images.shape()))?;
            let mask = model.gated.upload_mask(&gpu, &mask, [b, len, num], tokens / num.max(1))?;
            model.gated.forward(&mut rec, &x, &images, &mask)?
        }
    };
    rec.submit()?;
    common::report(&gpu, &dir, "output", &out)
}
