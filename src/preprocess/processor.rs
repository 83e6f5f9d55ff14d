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

use super::geometry::{self, best_pinpoint, center_crop, fit, pad_center};
use super::resize::{resize, Filter};
use super::RgbImage;
use crate::checkpoint::Config;
use crate::runtime::{Error, Result};

/// Largest image a resize may produce, pixels: a 1×30000 photo resized to a 336 shortest edge
/// would be 10⁷ px long; refused instead of allocated.
const MAX_RESIZED_PIXELS: usize = 1 << 26;
/// Largest output a config may ask for, pixels per `size`, `crop_size` or pinpoint (2^24: a
/// 4096² view; the largest released pinpoint, OneVision's 2304², is a third of it), so
/// `pixel_values` stay within 2^24 · 3 floats per view.
const MAX_CONFIG_PIXELS: usize = 1 << 24;
/// Most AnyRes tiles a pinpoint may cut (OneVision's largest, 2304² at 384, cuts 36).
const MAX_TILES: usize = 1024;

/// `field`'s `h × w` within [`MAX_CONFIG_PIXELS`].
fn check_area(field: &str, h: usize, w: usize) -> Result<()> {
    match h.checked_mul(w) {
        Some(a) if a <= MAX_CONFIG_PIXELS => Ok(()),
        _ => Err(Error::config(field, format!("{h}x{w}: at most 2^24 pixels"))),
    }
}

/// How an image is resized before cropping.
#[derive(Clone, Copy, Debug, PartialEq)]
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

/// Where [`ImageProcessor::tiling`] puts an image. Sizes are `[height, width]` in pixels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// The size the photo is resized to (AnyRes: to fit the pinpoint, aspect kept).
    pub resized: [usize; 2],
    /// The center crop taken of the resized photo (zero-padded where larger), if any.
    pub crop: Option<[usize; 2]>,
    /// AnyRes: the chosen `image_grid_pinpoints` entry the resized photo is padded to.
    pub pinpoint: Option<[usize; 2]>,
    /// AnyRes: tiles down and across (the global view comes on top of these).
    pub grid: Option<[usize; 2]>,
    /// AnyRes: the side of the square pieces the padded photo is cut into.
    pub tile: Option<usize>,
    /// `pixel_values`' height and width: what the tower sees of the photo (or of each tile).
    pub input: [usize; 2],
}

/// An image processor read from `preprocessor_config.json`.
#[derive(Clone, Debug)]
pub struct ImageProcessor {
    /// `image_processor_type` as written (a `Fast` / `Pil` suffix is accepted: one algorithm).
    pub kind: String,
    /// `size`; applied when `do_resize` (AnyRes's global view is resized to it regardless).
    size: Resize,
    do_resize: bool,
    filter: Filter,
    crop: Option<[usize; 2]>,
    rescale: Option<f64>,
    mean_std: Option<([f32; 3], [f32; 3])>,
    /// AnyRes: `image_grid_pinpoints` (h, w) and the tile side (`crop_size.height`; OneVision's
    /// `size.height`).
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
    /// 384·(1..=6) × 384·(1..=6)). `image_processor_type` (or an old `feature_extractor_type`)
    /// picks the class; `crop_size` is read for CLIP and LLaVA-NeXT only, as there.
    /// Errors: [`Error::Config`] naming the field: an unknown or missing class, a malformed
    /// value, `resample` other than 2 / 3, a zero `image_std`, a `size`, `crop_size` or pinpoint
    /// past 2^24 pixels, pinpoints that are not multiples of the tile, or an AnyRes grid past
    /// 1024 tiles or 2^26 output pixels.
    pub fn from_config(c: &Config) -> Result<ImageProcessor> {
        // Older folders name the class `feature_extractor_type` (…FeatureExtractor).
        let kind = match (c.opt_str("image_processor_type")?, c.opt_str("feature_extractor_type")?) {
            (Some(k), _) => k,
            (None, Some(f)) => f.replace("FeatureExtractor", "ImageProcessor"),
            (None, None) => return Err(Error::config("image_processor_type", "missing (and no feature_extractor_type)")),
        };
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
                        "`{other}`: supported are CLIPImageProcessor, LlavaNextImageProcessor, LlavaOnevisionImageProcessor, BlipImageProcessor, SiglipImageProcessor"
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
        // Only CLIP's and LLaVA-NeXT's processors crop; the others ignore crop_size.
        let crop = match c.raw("crop_size") {
            _ if crop.is_none() => None,
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
        match size {
            Resize::ShortestEdge(e) => check_area("size.shortest_edge", e, e)?,
            Resize::Exact(h, w) => check_area("size", h, w)?,
        }
        if let Some([h, w]) = crop {
            check_area("crop_size", h, w)?;
        }
        for &[h, w] in anyres.iter().flat_map(|(p, _)| p) {
            check_area("image_grid_pinpoints", h, w)?;
        }
        // AnyRes: each view's output pixels, the tiles of the largest pinpoint, and all of them.
        if let Some((pins, tile)) = &anyres {
            let view = match (crop, size) {
                (Some([h, w]), _) | (None, Resize::Exact(h, w)) => h * w,
                (None, Resize::ShortestEdge(e)) => e * e,
            };
            let most = pins.iter().map(|[h, w]| (h / tile) * (w / tile)).max().unwrap_or(0);
            if most > MAX_TILES || (most + 1) * view > MAX_RESIZED_PIXELS {
                return Err(Error::config(
                    "image_grid_pinpoints",
                    format!("up to {most} tiles of {view} pixels each: at most {MAX_TILES} tiles and 2^26 pixels in all"),
                ));
            }
        }
        Ok(ImageProcessor {
            kind,
            size,
            do_resize: flag("do_resize", true)?,
            filter,
            crop: if flag("do_center_crop", crop.is_some())? { crop } else { None },
            rescale,
            mean_std,
            anyres,
        })
    }

    /// Where an image of `[height, width]` pixels goes: the resized size, the crop, and for AnyRes
    /// the pinpoint and the tile grid (what the web page draws over the photo). Same arithmetic
    /// as [`Self::preprocess`].
    pub fn tiling(&self, [h, w]: [usize; 2]) -> Tiling {
        // What `resize_crop` makes of an image of [h, w]: the resized size, then the crop's.
        let resize_crop = |[h, w]: [usize; 2]| {
            let resized = match (self.do_resize, self.size) {
                (false, _) => [h, w],
                (true, Resize::ShortestEdge(s)) => {
                    let long = ((s as f64 * h.max(w) as f64) / h.min(w) as f64) as usize;
                    if h <= w {
                        [s, long]
                    } else {
                        [long, s]
                    }
                }
                (true, Resize::Exact(eh, ew)) => [eh, ew],
            };
            (resized, self.crop.unwrap_or(resized))
        };
        let (h, w) = (h.max(1), w.max(1));
        if let Some((pins, tile)) = &self.anyres {
            let (ph, pw) = best_pinpoint(pins, h, w);
            let (rh, rw) = fit(h, w, ph, pw);
            // Each tile × tile piece then goes through the resize and the crop.
            let (_, input) = resize_crop([*tile, *tile]);
            let grid = Some([ph / tile, pw / tile]);
            return Tiling { resized: [rh, rw], crop: None, pinpoint: Some([ph, pw]), grid, tile: Some(*tile), input };
        }
        let (resized, input) = resize_crop([h, w]);
        Tiling { resized, crop: self.crop, pinpoint: None, grid: None, tile: None, input }
    }

    /// Whether it tiles (AnyRes): models then also take `image_sizes`.
    pub fn is_anyres(&self) -> bool {
        self.anyres.is_some()
    }

    /// `pixel_values` of one image. Errors: [`Error::Image`] for an image whose bytes are not
    /// `height · width · 3` with both sides ≥ 1, or whose resize would exceed 2^26 pixels (an
    /// extreme aspect ratio, e.g. 1×30000 to a 336 shortest edge), or AnyRes tiles that come out
    /// of different sizes (a `size` that is not square).
    pub fn preprocess(&self, img: &RgbImage) -> Result<Processed> {
        img.check()?;
        let image_size = [img.height, img.width];
        let Some((pins, tile)) = &self.anyres else {
            let (data, [h, w]) = self.normalize(&self.resize_crop(img)?);
            return Ok(Processed { pixel_values: data, shape: vec![1, 3, h, w], image_size });
        };
        let (ph, pw) = best_pinpoint(pins, img.height, img.width);
        let (rh, rw) = fit(img.height, img.width, ph, pw);
        let padded = pad_center(&self.resized(img, rh, rw)?, ph, pw);
        // The global view: the whole photo resized to `size` as a pair (shortest_edge²), even
        // with do_resize false (`get_image_patches` always resizes it).
        let global = match self.size {
            Resize::ShortestEdge(s) => self.resized(img, s, s)?,
            Resize::Exact(h, w) => self.resized(img, h, w)?,
        };
        let mut tiles = vec![global];
        tiles.extend(geometry::tiles(&padded, *tile));
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
        let img = match (self.do_resize, self.size) {
            (false, _) => img.clone(),
            (true, Resize::ShortestEdge(s)) => {
                let (short, long) = (img.height.min(img.width), img.height.max(img.width));
                let long = ((s as f64 * long as f64) / short as f64) as usize;
                match img.height <= img.width {
                    true => self.resized(img, s, long)?,
                    false => self.resized(img, long, s)?,
                }
            }
            (true, Resize::Exact(h, w)) => self.resized(img, h, w)?,
        };
        Ok(match self.crop {
            Some(crop) => center_crop(&img, crop),
            None => img,
        })
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
