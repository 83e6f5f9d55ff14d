//! `vlmc encode MODEL_DIR IMAGE… --output OUT.safetensors`: photos → the model's image processor,
//! vision tower and connector → the embeddings its language model reads.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vlm_connectors::checkpoint::save_f32;
use vlm_connectors::connectors::{image_encoder::ImageEncoder, LoadOptions};
use vlm_connectors::preprocess::RgbImage;
use vlm_connectors::{Gpu, Result};

/// A named tensor to write.
type Named = (String, Vec<usize>, Vec<f32>);

/// Encodes `images` and writes `output` (with `all`: `pixel_values`, `vision_features` and the
/// connector's intermediates too). One image keeps the model's shapes; several are concatenated
/// on axis 0 where their shapes past it agree (LLaVA [n, N, C]; LLaVA-NeXT's rows [ΣT, C]), and
/// written as `NAME.i` per image where they do not (AnyRes `pixel_values` with other tile counts);
/// with several images, `output_tokens` [n] holds each image's token count, to split `output`.
pub fn encode(dir: &Path, images: &[PathBuf], output: &Path, opts: &LoadOptions, all: bool) -> Result<()> {
    let gpu = Gpu::new()?;
    let enc = ImageEncoder::from_dir_opts(&gpu, dir, opts)?;
    let mut per_image: Vec<Vec<Named>> = Vec::new();
    let mut tokens = Vec::new();
    for path in images {
        // One photo decoded at a time; a processing error names its file.
        let img = RgbImage::open(path)?;
        let t0 = Instant::now();
        let p = enc.processor().preprocess(&img).map_err(|e| match e {
            vlm_connectors::Error::Image { message, .. } => {
                vlm_connectors::Error::Image { source_name: path.display().to_string(), message }
            }
            e => e,
        })?;
        let t1 = Instant::now();
        let outs = enc.run(&gpu, &p)?;
        let (pre, run) = ((t1 - t0).as_secs_f64() * 1e3, t1.elapsed().as_secs_f64() * 1e3);
        let out = outs.get("output")?;
        tokens.push(out.shape[..out.shape.len() - 1].iter().product::<usize>() as f32);
        println!(
            "{}: {}x{} → pixel_values {:?} → output {:?}  (preprocess {pre:.1} ms, tower + connector {run:.1} ms)",
            path.display(),
            img.height,
            img.width,
            p.shape,
            out.shape
        );
        let mut named: Vec<Named> =
            outs.iter().filter(|o| all || o.name == "output").map(|o| (o.name.clone(), o.shape.clone(), o.data.clone())).collect();
        if all {
            named.push(("pixel_values".into(), p.shape, p.pixel_values));
        }
        per_image.push(named);
    }
    let mut merged = merge(per_image);
    if tokens.len() > 1 {
        merged.push(("output_tokens".into(), vec![tokens.len()], tokens));
    }
    let views: Vec<(&str, &[usize], &[f32])> = merged.iter().map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
    save_f32(output, &views)?;
    println!("wrote {}: {}", output.display(), merged.iter().map(|(n, s, _)| format!("{n} {s:?}")).collect::<Vec<_>>().join(", "));
    println!("adapter: {}  ({:?}; {})", gpu.describe(), enc.connector().dtype(), enc.connector().entry().class);
    Ok(())
}

/// One image's tensors as they are; several concatenated on axis 0 where the rest of the shape
/// agrees, else per image as `NAME.i`.
fn merge(per_image: Vec<Vec<Named>>) -> Vec<Named> {
    if per_image.len() == 1 {
        return per_image.into_iter().next().unwrap_or_default();
    }
    let mut out = Vec::new();
    for (k, (name, _, _)) in per_image[0].iter().enumerate() {
        let parts: Vec<&Named> = per_image.iter().map(|v| &v[k]).collect();
        if parts.iter().all(|(_, s, _)| s.len() > 1 && s[1..] == parts[0].1[1..]) {
            let mut shape = parts[0].1.clone();
            shape[0] = parts.iter().map(|(_, s, _)| s[0]).sum();
            out.push((name.clone(), shape, parts.iter().flat_map(|(_, _, d)| d.iter().copied()).collect()));
        } else {
            out.extend(parts.iter().enumerate().map(|(i, (_, s, d))| (format!("{name}.{i}"), s.clone(), d.clone())));
        }
    }
    out
}
