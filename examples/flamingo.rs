//! OpenFlamingo: the Perceiver Resampler (media → a fixed number of latents) and the gated
//! cross-attention block (text reading the media, masked by `media_locations`).
//!
//!     cargo run --release --example flamingo -- [MODEL_DIR]   (default tests/data/perceiver_video)
//!
//! Reference: OpenFlamingo `PerceiverResampler`, `GatedCrossAttentionBlock` (open_flamingo/src/helpers.py).

mod common;

use vlm_connectors::connectors::open_flamingo::locations_u8;
use vlm_connectors::connectors::OpenFlamingo;
use vlm_connectors::{Gpu, Recorder};

fn main() -> vlm_connectors::Result<()> {
    let dir = common::dir("perceiver_video");
    let gpu = Gpu::new()?;
    let model = OpenFlamingo::from_dir(&gpu, &dir)?;
    let inputs = common::inputs(&dir)?;
    println!("adapter: {}; perceiver: {}, gated block: {}", gpu.describe(), model.perceiver.is_some(), model.gated.is_some());

    let mut rec = Recorder::new(&gpu);
    // vision_features [b, T, F, v, D] → media [b, T, latents, D]; or media given directly.
    let media = match &model.perceiver {
        Some(p) => p.forward(&mut rec, &common::tensor(&gpu, &inputs, "vision_features")?)?,
        None => common::tensor(&gpu, &inputs, "media")?,
    };
    let out = match &model.gated {
        None => media,
        Some(block) => {
            let x = common::tensor(&gpu, &inputs, "hidden_states")?; // [b, L, dim]
            let (shape, values) = inputs.get_int("media_locations")?;
            let (b, len, locs) = locations_u8(&shape, &values)?;
            let locations = block.upload_locations(&gpu, &locs, b, len, media.shape()[1])?;
            block.forward(&mut rec, &x, &media, &locations)?
        }
    };
    rec.submit()?;
    common::report(&gpu, &dir, "output", &out)
}
