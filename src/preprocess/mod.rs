//! Image decoding and preprocessing: a PNG or JPEG file → RGB uint8 → the `pixel_values` a
//! model's `preprocessor_config.json` asks for, as transformers' PIL-backend image processors make
//! them (`CLIPImageProcessor`, `LlavaNextImageProcessor`, `LlavaOnevisionImageProcessor`,
//! `BlipImageProcessor`, `SiglipImageProcessor`).
//!
//! ```text
//! file bytes → decode (the `image` crate, within ImageLimits) → RgbImage [H, W, 3] u8
//!   → ImageProcessor::preprocess → Processed { pixel_values [1, 3, S, S] or [1, tiles, 3, S, S],
//!                                             image_sizes [[H, W]] }
//! ```
//!
//! Decoding uses the `image` crate (PNG, JPEG), a well-kept decoder; resampling is a bit-exact
//! port of Pillow's bicubic and bilinear (`src/preprocess/resize.rs` says why: the reference's
//! pixels are Pillow's). EXIF orientation is not applied (as `Image.open`; transformers'
//! `load_image` would transpose). Hostile files are errors, never panics or
//! unbounded allocations: [`ImageLimits`] caps the header's size before any pixel is decoded.

mod geometry;
pub mod processor;
mod resize;

pub use processor::{ImageProcessor, Processed, Tiling};

use std::path::Path;

use crate::runtime::{Error, Result};

/// An 8-bit RGB image, row-major `[height, width, 3]`: what PIL's `convert("RGB")` gives.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height · width · 3` bytes, R G B per pixel.
    pub data: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RgbImage({} wide × {} high)", self.width, self.height)
    }
}

/// Bounds on what reading and decoding an image may take: the file read, the decoder's
/// allocations (checked against the header before a byte of pixels is decoded) and the sides.
/// The defaults take any photo a camera makes. The RGB copy made after decoding (≤ 3 bytes per
/// pixel) is outside `max_alloc`.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    /// Largest width or height, pixels (default 16384).
    pub max_side: u32,
    /// Largest decoder allocation, bytes (default 1 GiB).
    pub max_alloc: u64,
    /// Largest file [`RgbImage::open`] reads, bytes (default 256 MiB).
    pub max_file: u64,
}

impl Default for ImageLimits {
    fn default() -> ImageLimits {
        ImageLimits { max_side: 16384, max_alloc: 1 << 30, max_file: 256 << 20 }
    }
}

impl RgbImage {
    /// An image from `height · width · 3` RGB bytes, row-major (height first, as `[H, W, 3]` arrays
    /// and transformers' `image_sizes` (h, w) order them; the `image` crate says width first). Errors: [`Error::Image`] for a zero side or a
    /// length that does not match.
    pub fn new(height: usize, width: usize, data: Vec<u8>) -> Result<RgbImage> {
        let img = RgbImage { width, height, data };
        img.check()?;
        Ok(img)
    }

    /// [`Error::Image`] unless both sides are ≥ 1 and `data` holds `height · width · 3` bytes (the
    /// fields are public, so the processor checks before it indexes).
    pub fn check(&self) -> Result<()> {
        let (h, w) = (self.height, self.width);
        if h == 0 || w == 0 || h.checked_mul(w).and_then(|n| n.checked_mul(3)) != Some(self.data.len()) {
            return Err(Error::Image {
                source_name: "<pixels>".into(),
                message: format!("{} bytes for {h}x{w} RGB (need height·width·3, sides ≥ 1)", self.data.len()),
            });
        }
        Ok(())
    }

    /// Decodes a PNG or JPEG file (the format from its first bytes) to RGB with the default
    /// [`ImageLimits`]. Errors: [`Error::Io`] for the file, [`Error::Image`] for the rest (a
    /// file past `max_file` among them).
    pub fn open(path: impl AsRef<Path>) -> Result<RgbImage> {
        Self::open_with(path, ImageLimits::default())
    }

    /// [`RgbImage::open`] within `limits`: at most `max_file` bytes are read.
    pub fn open_with(path: impl AsRef<Path>, limits: ImageLimits) -> Result<RgbImage> {
        use std::io::Read;
        let path = path.as_ref();
        let mut bytes = Vec::new();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        file.take(limits.max_file + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
        if bytes.len() as u64 > limits.max_file {
            let message = format!("larger than the {} MiB file limit", limits.max_file >> 20);
            return Err(Error::Image { source_name: path.display().to_string(), message });
        }
        Self::decode_with(&bytes, &path.display().to_string(), limits)
    }

    /// Decodes PNG or JPEG bytes to RGB with the default limits.
    pub fn decode(bytes: &[u8]) -> Result<RgbImage> {
        Self::decode_with(bytes, "<bytes>", ImageLimits::default())
    }

    /// Decodes PNG or JPEG bytes to RGB as Pillow's `convert("RGB")`: grey is replicated, alpha
    /// dropped (no compositing), 16-bit RGB keeps the high byte and 16-bit grey clips at 255,
    /// CMYK is converted by the decoder (within a level of Pillow); no colour management (ICC
    /// profiles are ignored, as PIL does). `name` labels errors.
    /// Errors: [`Error::Image`] for an unknown format, a truncated or corrupt file, a zero-sized
    /// image, or a header past `limits`.
    pub fn decode_with(bytes: &[u8], name: &str, limits: ImageLimits) -> Result<RgbImage> {
        let err = |message: String| Error::Image { source_name: name.to_string(), message };
        let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| err(e.to_string()))?;
        match reader.format() {
            Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
            Some(f) => return Err(err(format!("{f:?} images are not supported (PNG and JPEG are)"))),
            None => return Err(err("not a PNG or JPEG file".into())),
        }
        // The JPEG decoder fills a truncated scan with grey; PIL refuses it ("image file is
        // truncated").
        if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_reaches_end(bytes) {
            return Err(err("truncated JPEG: the data ends before its end-of-image marker".into()));
        }
        let mut l = image::Limits::default();
        l.max_image_width = Some(limits.max_side);
        l.max_image_height = Some(limits.max_side);
        l.max_alloc = Some(limits.max_alloc);
        reader.limits(l);
        // zune-jpeg 0.5.15 (the `image` crate's JPEG decoder) panics on some corrupt scans (an
        // unwrap in its AVX2 IDCT, found by `fuzz/fuzz_targets/image.rs`; the file is in
        // tests/data/images): the decoder is third-party code, so its panic becomes an error.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.decode()));
        let img = match decoded {
            Ok(r) => r.map_err(|e| err(e.to_string()))?,
            Err(_) => return Err(err("the decoder failed on this file (corrupt data)".into())),
        };
        let (width, height) = (img.width() as usize, img.height() as usize);
        if width == 0 || height == 0 {
            return Err(err(format!("the image is {height}x{width}: nothing to encode")));
        }
        // 16-bit files as Pillow reads them: RGB, RGBA and grey+alpha keep the high byte
        // ("RGB;16B"); plain grey is mode I;16, which convert("RGB") clips at 255.
        let data = match img {
            image::DynamicImage::ImageRgb16(b) => b.into_raw().iter().map(|v| (v >> 8) as u8).collect(),
            image::DynamicImage::ImageRgba16(b) => {
                b.into_raw().chunks(4).flat_map(|p| [p[0], p[1], p[2]].map(|v| (v >> 8) as u8)).collect()
            }
            image::DynamicImage::ImageLumaA16(b) => b.into_raw().chunks(2).flat_map(|p| [(p[0] >> 8) as u8; 3]).collect(),
            image::DynamicImage::ImageLuma16(b) => b.into_raw().iter().flat_map(|&v| [v.min(255) as u8; 3]).collect(),
            other => other.into_rgb8().into_raw(),
        };
        Ok(RgbImage { width, height, data })
    }
}

/// Whether a JPEG's marker segments, walked from SOI, reach an EOI marker before the data ends.
/// Each scan's entropy-coded data is skipped up to the next marker (`FF 00` is a stuffed byte,
/// `FF D0..D7` restart markers); bytes after the EOI (a phone's appended video, a trailer) are
/// not read.
fn jpeg_reaches_end(b: &[u8]) -> bool {
    let mut i = 2; // after SOI
    loop {
        // A marker: FF (fill bytes FF allowed) then its code; junk bytes before it are skipped,
        // as Pillow's JPEG plugin skips them.
        while b.get(i).is_some_and(|&x| x != 0xFF) {
            i += 1;
        }
        while b.get(i) == Some(&0xFF) && b.get(i + 1) == Some(&0xFF) {
            i += 1;
        }
        let (Some(&0xFF), Some(&code)) = (b.get(i), b.get(i + 1)) else { return false };
        i += 2;
        match code {
            0xD9 => return true,
            0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        let Some(len) = b.get(i..i + 2).map(|l| u16::from_be_bytes([l[0], l[1]]) as usize) else { return false };
        if len < 2 {
            return false;
        }
        i += len;
        if code == 0xDA {
            // Entropy-coded data: up to the next FF that is not stuffing or a restart marker.
            loop {
                match (b.get(i), b.get(i + 1)) {
                    (Some(&0xFF), Some(&(0x00 | 0xD0..=0xD7))) => i += 2,
                    (Some(&0xFF), Some(_)) => break,
                    (Some(_), _) => i += 1,
                    (None, _) => return false,
                }
            }
        }
    }
}
