//! `vlmc encode MODEL_DIR IMAGE… --output OUT.safetensors`: photos → the model's image processor,
//! vision tower and connector → the embeddings its language model reads.

use std::path::{Path, PathBuf};
use std::time::Instant;

use vlm_connectors::checkpoint::save_tensors;
use vlm_connectors::connectors::{image_encoder::ImageEncoder, LoadOptions};
use vlm_connectors::preprocess::RgbImage;
use vlm_connectors::{Error, Gpu, Result};

/// A named tensor to write.
type Named = (String, Vec<usize>, Vec<f32>);

/// Encodes `images` and writes `output` (with `all`: `pixel_values`, `vision_features` and the
/// connector's intermediates too). One image keeps the model's shapes; several are concatenated
/// on axis 0 where their shapes past it agree (LLaVA [n, N, C]; LLaVA-NeXT's rows [ΣT, C]), and
/// written as `NAME.i` per image where they do not (AnyRes `pixel_values` with other tile counts);
/// with several images, `output_tokens` [n] (int64) holds each image's token count, to split
/// `output`. `--all` also writes AnyRes models' `image_sizes` (int64 [n, 2], h and w), so the file
/// replays through `vlmc run`.
pub fn encode(dir: &Path, images: &[PathBuf], output: &Path, opts: &LoadOptions, all: bool) -> Result<()> {
    check_paths(images, output)?;
    let gpu = Gpu::new()?;
    let enc = ImageEncoder::from_dir_opts(&gpu, dir, opts)?;
    let mut per_image: Vec<Vec<Named>> = Vec::new();
    let (mut tokens, mut sizes) = (Vec::new(), Vec::new());
    for path in images {
        // One photo decoded at a time; a processing error names its file.
        let img = RgbImage::open(path)?;
        let t0 = Instant::now();
        let p = enc.processor().preprocess(&img).map_err(|e| match e {
            Error::Image { message, .. } => Error::Image { source_name: path.display().to_string(), message },
            e => e,
        })?;
        let t1 = Instant::now();
        let outs = enc.run(&gpu, &p)?;
        let (pre, run) = ((t1 - t0).as_secs_f64() * 1e3, t1.elapsed().as_secs_f64() * 1e3);
        let out = outs.get("output")?;
        tokens.push(out.shape[..out.shape.len() - 1].iter().product::<usize>() as i64);
        sizes.extend([img.height as i64, img.width as i64]);
        println!(
            "{}: {}×{} (w×h) → pixel_values {:?} → output {:?}  (preprocess {pre:.1} ms, tower + connector {run:.1} ms)",
            path.display(),
            img.width,
            img.height,
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
    let merged = merge(per_image);
    let n = tokens.len();
    let mut ints: Vec<(&str, Vec<usize>, Vec<i64>)> = Vec::new();
    if n > 1 {
        ints.push(("output_tokens", vec![n], tokens));
    }
    if all && enc.processor().is_anyres() {
        ints.push(("image_sizes", vec![n, 2], sizes));
    }
    let views: Vec<(&str, &[usize], &[f32])> = merged.iter().map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
    let int_views: Vec<(&str, &[usize], &[i64])> = ints.iter().map(|(n, s, d)| (*n, s.as_slice(), d.as_slice())).collect();
    save_tensors(output, &views, &int_views)?;
    let names = merged.iter().map(|(n, s, _)| format!("{n} {s:?}")).chain(ints.iter().map(|(n, s, _)| format!("{n} {s:?} (int64)")));
    println!("wrote {}: {}", output.display(), names.collect::<Vec<_>>().join(", "));
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

/// Before any model is loaded: every photo is a file, the output's folder exists, and the output
/// is neither one of the photos nor an existing file that is not safetensors (a mistyped
/// `--output photo.png` must not replace the photo).
fn check_paths(images: &[PathBuf], output: &Path) -> Result<()> {
    let not_found = |p: &Path, why: &str| Error::Io {
        path: p.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, why.to_string()),
    };
    for p in images {
        if !p.is_file() {
            return Err(not_found(p, "no such image file"));
        }
    }
    let parent = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(not_found(output, "cannot write the output: its folder does not exist"));
    }
    let same = |a: &Path| a.canonicalize().ok().is_some_and(|a| output.canonicalize().ok() == Some(a));
    let refuse = |why: &str| Error::Input { name: "--output".into(), message: format!("{}: {why}", output.display()) };
    if images.iter().any(|p| same(p)) {
        return Err(refuse("is one of the input images"));
    }
    if output.is_file() && output.extension().is_none_or(|e| e != "safetensors") {
        return Err(refuse("exists and is not a .safetensors file; not replaced"));
    }
    Ok(())
}
