//! Image decoding and preprocessing: a PNG or JPEG file → RGB uint8 → the `pixel_values` a
//! model's `preprocessor_config.json` asks for, as transformers' PIL-backend image processors make
//! them (`CLIPImageProcessor`, `LlavaNextImageProcessor`, `BlipImageProcessor`).
//!
//! ```text
//! file bytes → decode (the `image` crate, within ImageLimits) → RgbImage [H, W, 3] u8
//!   → ImageProcessor::preprocess → Processed { pixel_values [1, 3, S, S] or [1, tiles, 3, S, S],
//!                                             image_sizes [[H, W]] }
//! ```
//!
//! Decoding uses the `image` crate (PNG, JPEG), a well-kept decoder; resampling is a bit-exact
//! port of Pillow's bicubic ([`resize`]: why). Hostile files are errors, never panics or
//! unbounded allocations: [`ImageLimits`] caps the header's size before any pixel is decoded.

pub mod processor;
pub mod resize;

pub use processor::{ImageProcessor, Processed};

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
        write!(f, "RgbImage({}x{})", self.height, self.width)
    }
}

/// Bounds on what decoding may allocate. The defaults take any photo a camera makes and refuse a
/// header that claims more before a byte of pixels is decoded.
#[derive(Clone, Copy, Debug)]
pub struct ImageLimits {
    /// Largest width or height, pixels (default 16384).
    pub max_side: u32,
    /// Largest decoder allocation, bytes (default 1 GiB).
    pub max_alloc: u64,
}

impl Default for ImageLimits {
    fn default() -> ImageLimits {
        ImageLimits { max_side: 16384, max_alloc: 1 << 30 }
    }
}

impl RgbImage {
    /// An image from `height · width · 3` RGB bytes. Errors: [`Error::Image`] for a zero side or a
    /// length that does not match.
    pub fn new(height: usize, width: usize, data: Vec<u8>) -> Result<RgbImage> {
        if height == 0 || width == 0 || data.len() != height * width * 3 {
            return Err(Error::Image {
                source_name: "<pixels>".into(),
                message: format!("{} bytes for {height}x{width} RGB (need {}, sides ≥ 1)", data.len(), height * width * 3),
            });
        }
        Ok(RgbImage { width, height, data })
    }

    /// Decodes a PNG or JPEG file (the format from its first bytes) to RGB with the default
    /// [`ImageLimits`]. Errors: [`Error::Io`] for the file, [`Error::Image`] for the rest.
    pub fn open(path: impl AsRef<Path>) -> Result<RgbImage> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::decode_with(&bytes, &path.display().to_string(), ImageLimits::default())
    }

    /// Decodes PNG or JPEG bytes to RGB with the default limits.
    pub fn decode(bytes: &[u8]) -> Result<RgbImage> {
        Self::decode_with(bytes, "<bytes>", ImageLimits::default())
    }

    /// Decodes PNG or JPEG bytes to RGB: grey is replicated, alpha dropped (PIL's
    /// `convert("RGB")`, no compositing), CMYK and 16-bit converted by the `image` crate; no
    /// colour management (ICC profiles are ignored, as PIL does). `name` labels errors.
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
        // truncated"). Entropy-coded data never holds an unstuffed FF D9, so an end-of-image
        // marker after the last start-of-scan is the test.
        if reader.format() == Some(image::ImageFormat::Jpeg) {
            let last = |m: u8| bytes.windows(2).rposition(|w| w == [0xFF, m]);
            if !matches!((last(0xDA), last(0xD9)), (Some(sos), Some(eoi)) if eoi > sos) {
                return Err(err("truncated JPEG: no end-of-image marker after the last scan".into()));
            }
        }
        let mut l = image::Limits::default();
        l.max_image_width = Some(limits.max_side);
        l.max_image_height = Some(limits.max_side);
        l.max_alloc = Some(limits.max_alloc);
        reader.limits(l);
        let img = reader.decode().map_err(|e| err(e.to_string()))?;
        let (width, height) = (img.width() as usize, img.height() as usize);
        if width == 0 || height == 0 {
            return Err(err(format!("the image is {height}x{width}: nothing to encode")));
        }
        Ok(RgbImage { width, height, data: img.into_rgb8().into_raw() })
    }
}
