//! `vlmc demo`'s image path: a photo shipped in the binary through LLaVA-1.5's image processor,
//! CLIP ViT-L/14-336 tower and projector (random weights), timed.

use std::time::Instant;

use vlm_connectors::checkpoint::Config;
use vlm_connectors::connectors::ImageEncoder;
use vlm_connectors::preprocess::{ImageProcessor, RgbImage};
use vlm_connectors::{DType, Gpu, Result};

/// NASA's astronaut photo (public domain; `assets/images/LICENSES.md`).
const PHOTO: &[u8] = include_bytes!("../../../assets/images/astronaut.png");

/// CLIP-L/336 widths: C, MLP width, tokens (CLS + 24²), layers LLaVA-1.5 runs (−2 of 24), text width.
const C: f64 = 1024.0;
const MLP: f64 = 4096.0;
const TOKENS: f64 = 577.0;
const LLAVA_LAYERS: usize = 23;
const TEXT: f64 = 4096.0;

/// Forward FLOPs: patch embedding, `layers` pre-LN layers (QKV + out, MLP, attention), projector.
fn flops(layers: usize) -> f64 {
    let patches = 2.0 * 576.0 * 588.0 * C;
    let layer = 2.0 * TOKENS * (4.0 * C * C + 2.0 * C * MLP) + 4.0 * TOKENS * TOKENS * C;
    let projector = 2.0 * 576.0 * (C * TEXT + TEXT * TEXT);
    patches + layers as f64 * layer + projector
}

/// Runs the photo through LLaVA-1.5's image path. On a CPU adapter the tower stops after 6 of
/// its 23 layers (`vision_feature_layer` 6) so the demo stays short; the output says so and
/// extrapolates.
pub fn photo_demo(gpu: &Gpu, dtype: DType, cpu: bool) -> Result<()> {
    let layers = if cpu { 6 } else { LLAVA_LAYERS };
    let processor = ImageProcessor::from_config(&Config::from_value(serde_json::json!({
        "image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}})))?;
    let model = vlm_connectors::internal::seed::llava_pixels(gpu, dtype, layers)?;
    let enc = ImageEncoder::new(model, processor)?;
    let t0 = Instant::now();
    let img = RgbImage::decode(PHOTO)?;
    let p = enc.processor().preprocess(&img)?;
    let pre = t0.elapsed().as_secs_f64() * 1e3;
    println!(
        "image path (random weights: real shapes and times, not meaningful embeddings): astronaut.png {}×{} (w×h) → CLIPImageProcessor (bicubic 336, crop 336) → pixel_values {:?}  {pre:.0} ms on the CPU",
        img.width, img.height, p.shape
    );
    if cpu {
        println!("  CPU adapter: the CLIP ViT-L/14-336 tower runs {layers} of the {LLAVA_LAYERS} layers LLaVA-1.5 uses, to keep the demo short (real widths and token counts)");
    }
    // Warm-up on a 1-layer tower: the same shapes, so pipelines are built and the tuner's trials
    // run here, not in the timed forward.
    let warm = ImageEncoder::new(vlm_connectors::internal::seed::llava_pixels(gpu, dtype, 1)?, enc.processor().clone())?;
    warm.run(gpu, &p)?;
    drop(warm);
    let t1 = Instant::now();
    let outs = enc.run(gpu, &p)?;
    let s = t1.elapsed().as_secs_f64();
    let out = outs.get("output")?;
    let f = flops(layers);
    println!(
        "  → tower ({layers} layers, 577 tokens × 1024) → projector 1024 → 4096 → 4096 → output {:?} (576 LLM tokens): {:.0} ms, {:.0} GFLOP, {:.1} GFLOP/s ({dtype:?}, one submit, after a 1-layer warm-up)",
        out.shape,
        s * 1e3,
        f / 1e9,
        f / s / 1e9
    );
    if cpu {
        println!("  the whole 23-layer tower at this rate: ~{:.0} s per image", s * flops(LLAVA_LAYERS) / f);
    }
    println!();
    Ok(())
}
