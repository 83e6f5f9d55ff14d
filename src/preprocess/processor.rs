//! transformers' image processors, PIL backend (`CLIPImageProcessor`, `LlavaNextImageProcessor`,
//! `LlavaOnevisionImageProcessor`, `BlipImageProcessor`, `SiglipImageProcessor`;
//! `image_processing_*.py`), from a
//! `preprocessor_config.json`:
//!
//! ```text
//! CLIP / SigLIP / BLIP:  resize (shortest edge S, long = int(S·long/short); or exactly h×w)
//!                        → center crop → ×rescale_factor → (x − mean) / std   → [1, 3, h, w]
//! LLaVA-NeXT (AnyRes):   best pinpoint → resize to fit → zero pad → row-major tiles of crop h
//!                        (OneVision: of size h), global view (the photo resized to S×S or to
//!                        size) first; each tile as CLIP
//!                                                                             → [1, tiles, 3, h, w]
//! ```
//! The geometry follows `../shared/golden/README.md` ("Preprocessing, step by step") to the f64
//! operation, so `pixel_values` match the reference bit for bit.

use super::resize::{resize, Filter};
use super::RgbImage;
use crate::checkpoint::Config;
use crate::runtime::{Error, Result};

/// Largest image a resize may produce, pixels: a 1×30000 photo resized to a 336 shortest edge
/// would be 10⁷ px long; refused instead of allocated.
const MAX_RESIZED_PIXELS: usize = 1 << 26;

/// How an image is resized before cropping.
#[derive(Clone, Debug, PartialEq)]
enum Resize {
    /// `size.shortest_edge`: the short side to S, the long one to `int(S·long/short)`.
    ShortestEdge(usize),
    /// `size.{height, width}`: straight to it, aspect not kept.
    Exact(usize, usize),
}

/// One image's processed tensors.
#[derive(Clone, Debug)]
pub struct Processed {
    /// Normalised pixels, channel-first, row-major.
    pub pixel_values: Vec<f32>,
    /// `[1, 3, h, w]`, or `[1, tiles, 3, h, w]` for AnyRes (the global view first).
    pub shape: Vec<usize>,
    /// The photo's `[height, width]` (`image_sizes` for AnyRes models).
    pub image_size: [usize; 2],
}

/// An image processor read from `preprocessor_config.json`.
#[derive(Clone, Debug)]
pub struct ImageProcessor {
    /// `image_processor_type` as written (a `Fast` / `Pil` suffix is accepted: one algorithm).
    pub kind: String,
    resize: Option<Resize>,
    filter: Filter,
    crop: Option<[usize; 2]>,
    rescale: Option<f64>,
    mean_std: Option<([f32; 3], [f32; 3])>,
    /// AnyRes: `image_grid_pinpoints` (h, w) and the tile side (`crop_size.height`).
    anyres: Option<(Vec<[usize; 2]>, usize)>,
}

const CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
const CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];

impl ImageProcessor {
    /// Reads `preprocessor_config.json`. Errors: [`Error::Io`] / [`Error::Json`] for the file,
    /// [`Error::Config`] naming the field that is missing, malformed or not supported (a
    /// `resample` other than bilinear 2 / bicubic 3, an unknown `image_processor_type`).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<ImageProcessor> {
        Self::from_config(&Config::from_file(path)?)
    }

    /// The processor a config describes; absent fields take the class's defaults (CLIP: shortest
    /// edge 224, crop 224; BLIP: 384×384; SigLIP: 224×224, mean/std 0.5, bilinear; LLaVA-NeXT:
    /// CLIP's with the llava-v1.6 pinpoints; OneVision: 384×384 tiles, no crop, pinpoints
    /// 384·(1..=6) × 384·(1..=6)).
    pub fn from_config(c: &Config) -> Result<ImageProcessor> {
        let kind = c.opt_str("image_processor_type")?.unwrap_or_else(|| "CLIPImageProcessor".into());
        let base = kind.trim_end_matches("Fast").trim_end_matches("Pil");
        let (size, crop, filter, mean, std) = match base {
            "CLIPImageProcessor" | "LlavaNextImageProcessor" => (Resize::ShortestEdge(224), Some([224, 224]), 3, CLIP_MEAN, CLIP_STD),
            "BlipImageProcessor" => (Resize::Exact(384, 384), None, 3, CLIP_MEAN, CLIP_STD),
            "SiglipImageProcessor" => (Resize::Exact(224, 224), None, 2, [0.5; 3], [0.5; 3]),
            "LlavaOnevisionImageProcessor" => (Resize::Exact(384, 384), None, 3, CLIP_MEAN, CLIP_STD),
            other => {
                return Err(Error::config(
                    "image_processor_type",
                    format!(
                        "`{other}`: supported are CLIPImageProcessor, LlavaNextImageProcessor, BlipImageProcessor, SiglipImageProcessor"
                    ),
                ))
            }
        };
        let square = matches!(size, Resize::Exact(..));
        let size = match c.raw("size") {
            None => size,
            Some(serde_json::Value::Number(_)) if square => Resize::Exact(c.usize("size")?, c.usize("size")?),
            Some(serde_json::Value::Number(_)) => Resize::ShortestEdge(c.usize("size")?),
            Some(_) => {
                let s = c.sub_or_default("size");
                match s.opt_usize("shortest_edge")? {
                    Some(e) => Resize::ShortestEdge(e),
                    None => Resize::Exact(s.usize("height")?, s.usize("width")?),
                }
            }
        };
        let crop = match c.raw("crop_size") {
            None => crop,
            Some(serde_json::Value::Number(_)) => Some([c.usize("crop_size")?; 2]),
            Some(_) => {
                let s = c.sub_or_default("crop_size");
                Some([s.usize("height")?, s.usize("width")?])
            }
        };
        let resample = match c.raw("resample") {
            None => filter,
            Some(v) => v.as_i64().ok_or_else(|| Error::config("resample", format!("expected a PIL filter number, got {v}")))?,
        };
        let filter = Filter::from_pil(resample)
            .ok_or_else(|| Error::config("resample", format!("{resample}: only PIL's bilinear (2) and bicubic (3) are ported")))?;
        let flag = |k: &str, d: bool| c.opt_bool(k).map(|b| b.unwrap_or(d));
        let triple = |k: &str, d: [f64; 3]| -> Result<[f32; 3]> {
            let v = match c.raw(k) {
                None => d.to_vec(),
                Some(serde_json::Value::Number(n)) => vec![n.as_f64().unwrap_or(f64::NAN); 3],
                Some(v) => v.as_array().map(|a| a.iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()).unwrap_or_default(),
            };
            match v[..] {
                [a, b, c] if [a, b, c].iter().all(|x| x.is_finite()) => Ok([a as f32, b as f32, c as f32]),
                _ => Err(Error::config(k, format!("expected 3 finite numbers (R, G, B), got {:?}", c.raw(k)))),
            }
        };
        let mean_std = match flag("do_normalize", true)? {
            true => {
                let std = triple("image_std", std)?;
                if std.contains(&0.0) {
                    return Err(Error::config("image_std", "a zero standard deviation"));
                }
                Some((triple("image_mean", mean)?, std))
            }
            false => None,
        };
        let rescale = match flag("do_rescale", true)? {
            true => Some(c.opt_f64("rescale_factor")?.unwrap_or(1.0 / 255.0)),
            false => None,
        };
        let anyres = match base {
            "LlavaNextImageProcessor" | "LlavaOnevisionImageProcessor" => {
                let pins = match (c.has("image_grid_pinpoints"), base) {
                    (true, _) => c.pairs("image_grid_pinpoints")?,
                    (false, "LlavaNextImageProcessor") => vec![[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]],
                    (false, _) => (1..=6).flat_map(|i| (1..=6).map(move |j| [384 * i, 384 * j])).collect(),
                };
                // LLaVA-NeXT tiles at crop_size.height, OneVision (no crop) at size.height.
                let tile = match (crop, &size) {
                    (Some([h, _]), _) => h,
                    (None, Resize::Exact(h, _) | Resize::ShortestEdge(h)) => *h,
                };
                if pins.is_empty() || pins.iter().any(|p| p[0] == 0 || p[1] == 0 || p[0] % tile != 0 || p[1] % tile != 0) {
                    return Err(Error::config(
                        "image_grid_pinpoints",
                        format!("expected a non-empty list of [h, w], sides multiples of the tile (crop_size.height {tile}), got {pins:?}"),
                    ));
                }
                Some((pins, tile))
            }
            _ => None,
        };
        Ok(ImageProcessor {
            kind,
            resize: flag("do_resize", true)?.then_some(size),
            filter,
            crop: if flag("do_center_crop", !square)? { crop } else { None },
            rescale,
            mean_std,
            anyres,
        })
    }

    /// Whether it tiles (AnyRes): models then also take `image_sizes`.
    pub fn is_anyres(&self) -> bool {
        self.anyres.is_some()
    }

    /// `pixel_values` of one image. Errors: [`Error::Image`] when a resize would exceed 2^26
    /// pixels (an extreme aspect ratio) or a crop/tile side is zero.
    pub fn preprocess(&self, img: &RgbImage) -> Result<Processed> {
        let image_size = [img.height, img.width];
        let Some((pins, tile)) = &self.anyres else {
            let (data, [h, w]) = self.normalize(&self.resize_crop(img)?);
            return Ok(Processed { pixel_values: data, shape: vec![1, 3, h, w], image_size });
        };
        let (ph, pw) = best_pinpoint(pins, img.height, img.width);
        let (rh, rw) = fit(img.height, img.width, ph, pw);
        let fitted = self.resized(img, rh, rw)?;
        let mut padded = RgbImage { width: pw, height: ph, data: vec![0; ph * pw * 3] };
        let (top, left) = ((ph - rh) / 2, (pw - rw) / 2);
        for y in 0..rh {
            let dst = ((top + y) * pw + left) * 3;
            padded.data[dst..dst + rw * 3].copy_from_slice(&fitted.data[y * rw * 3..(y + 1) * rw * 3]);
        }
        let global = match self.resize {
            Some(Resize::ShortestEdge(s)) => self.resized(img, s, s)?,
            Some(Resize::Exact(h, w)) => self.resized(img, h, w)?,
            None => img.clone(),
        };
        let mut tiles = vec![global];
        for ty in 0..ph / tile {
            for tx in 0..pw / tile {
                tiles.push(crop_at(&padded, ty * tile, tx * tile, *tile, *tile));
            }
        }
        let mut data = Vec::new();
        let mut hw = [0, 0];
        for t in &tiles {
            let (d, thw) = self.normalize(&self.resize_crop(t)?);
            if data.is_empty() {
                hw = thw;
            } else if thw != hw {
                return Err(Error::Image { source_name: "<image>".into(), message: format!("AnyRes tiles of {hw:?} and {thw:?}") });
            }
            data.extend(d);
        }
        Ok(Processed { pixel_values: data, shape: vec![1, tiles.len(), 3, hw[0], hw[1]], image_size })
    }

    fn resized(&self, img: &RgbImage, h: usize, w: usize) -> Result<RgbImage> {
        if h == 0 || w == 0 || h.saturating_mul(w) > MAX_RESIZED_PIXELS {
            return Err(Error::Image {
                source_name: "<image>".into(),
                message: format!("{}x{} would resize to {h}x{w} (sides ≥ 1, at most 2^26 pixels)", img.height, img.width),
            });
        }
        Ok(resize(img, h, w, self.filter))
    }

    /// `_preprocess`'s resize then center crop (transformers' `center_crop`: zero-padded when the
    /// crop is larger).
    fn resize_crop(&self, img: &RgbImage) -> Result<RgbImage> {
        let img = match self.resize {
            Some(Resize::ShortestEdge(s)) => {
                let (short, long) = (img.height.min(img.width), img.height.max(img.width));
                let long = ((s as f64 * long as f64) / short as f64) as usize;
                match img.height <= img.width {
                    true => self.resized(img, s, long)?,
                    false => self.resized(img, long, s)?,
                }
            }
            Some(Resize::Exact(h, w)) => self.resized(img, h, w)?,
            None => img.clone(),
        };
        let Some([ch, cw]) = self.crop else { return Ok(img) };
        if ch == 0 || cw == 0 {
            return Err(Error::config("crop_size", "sides must be ≥ 1"));
        }
        // Offsets in the image (may be negative: then zero padding), Python floor division.
        let top = (img.height as i64 - ch as i64).div_euclid(2);
        let left = (img.width as i64 - cw as i64).div_euclid(2);
        let mut out = RgbImage { width: cw, height: ch, data: vec![0; ch * cw * 3] };
        for y in 0..ch as i64 {
            for x in 0..cw as i64 {
                let (sy, sx) = (top + y, left + x);
                if (0..img.height as i64).contains(&sy) && (0..img.width as i64).contains(&sx) {
                    let (s, d) = (((sy as usize) * img.width + sx as usize) * 3, ((y as usize) * cw + x as usize) * 3);
                    out.data[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
                }
            }
        }
        Ok(out)
    }

    /// Rescale and normalise to channel-first f32: `x = f32(f64(u8)·rescale)`, then
    /// `(x − mean) / std` in f32.
    fn normalize(&self, img: &RgbImage) -> (Vec<f32>, [usize; 2]) {
        let (h, w) = (img.height, img.width);
        let mut out = vec![0f32; 3 * h * w];
        for c in 0..3 {
            for p in 0..h * w {
                let v = img.data[p * 3 + c];
                let x = match self.rescale {
                    Some(r) => (v as f64 * r) as f32,
                    None => v as f32,
                };
                out[c * h * w + p] = match self.mean_std {
                    Some((m, s)) => (x - m[c]) / s[c],
                    None => x,
                };
            }
        }
        (out, [h, w])
    }
}

/// `select_best_resolution`: the pinpoint keeping the most of the photo, then wasting least.
fn best_pinpoint(pins: &[[usize; 2]], h: usize, w: usize) -> (usize, usize) {
    let mut best = (pins[0][0], pins[0][1]);
    let (mut best_eff, mut best_waste) = (0i64, i64::MAX);
    for &[ph, pw] in pins {
        let scale = (pw as f64 / w as f64).min(ph as f64 / h as f64);
        let eff = (((w as f64 * scale) as i64) * ((h as f64 * scale) as i64)).min((w * h) as i64);
        let waste = (ph * pw) as i64 - eff;
        if eff > best_eff || (eff == best_eff && waste < best_waste) {
            (best, best_eff, best_waste) = ((ph, pw), eff, waste);
        }
    }
    best
}

/// `get_patch_output_size`: the photo resized to fit (ph, pw), aspect kept.
fn fit(h: usize, w: usize, ph: usize, pw: usize) -> (usize, usize) {
    let (sw, sh) = (pw as f64 / w as f64, ph as f64 / h as f64);
    match sw < sh {
        true => (((h as f64 * sw).ceil() as usize).min(ph).max(1), pw),
        false => (ph, ((w as f64 * sh).ceil() as usize).min(pw).max(1)),
    }
}

fn crop_at(img: &RgbImage, top: usize, left: usize, h: usize, w: usize) -> RgbImage {
    let mut data = Vec::with_capacity(h * w * 3);
    for y in top..top + h {
        data.extend_from_slice(&img.data[(y * img.width + left) * 3..(y * img.width + left + w) * 3]);
    }
    RgbImage { width: w, height: h, data }
}
