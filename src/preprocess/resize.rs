//! Pillow's `Image.resize(size, Image.BICUBIC)` on 8-bit RGB, bit for bit (Pillow 13,
//! `src/libImaging/Resample.c`): separable, antialiased (the kernel widens by the downscale
//! factor), fixed-point weights with 22 fraction bits, a uint8 image between the two passes, and
//! Pillow 13's pass order.
//!
//! Why a port and not a resampling crate: transformers' reference processors resample with Pillow,
//! and the golden cases' `pixel_values` are what Pillow gives. Crates with PIL-like filters
//! (`fast_image_resize`, `image`'s `CatmullRom`) use other fixed-point widths, rounding and pass
//! orders, which move 0.1–2 % of values by one colour level and the embeddings by ~1e-3 rel-L2
//! (measured with torchvision's antialiased bicubic in `../shared/golden/README.md`). The port
//! is 60 lines and gives the reference's pixels exactly.

use super::RgbImage;

/// Fraction bits of the fixed-point weights (`PRECISION_BITS` = 32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// Pillow's resampling filters (`Image.Resampling`), by their PIL numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `BILINEAR` (2): the triangle, support 1.
    Bilinear,
    /// `BICUBIC` (3): a = −0.5, support 2.
    Bicubic,
}

impl Filter {
    /// The filter PIL numbers `resample` (2 bilinear, 3 bicubic); others are not ported.
    pub fn from_pil(resample: i64) -> Option<Filter> {
        match resample {
            2 => Some(Filter::Bilinear),
            3 => Some(Filter::Bicubic),
            _ => None,
        }
    }
    fn support(self) -> f64 {
        match self {
            Filter::Bilinear => 1.0,
            Filter::Bicubic => 2.0,
        }
    }
    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Bilinear => (1.0 - x.abs()).max(0.0),
            Filter::Bicubic => bicubic(x),
        }
    }
}

/// Pillow's bicubic kernel (`bicubic_filter`, a = −0.5), support 2.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Per output index: the first input index and its integer weights (`precompute_coeffs` then
/// `normalize_coeffs_8bpc`).
fn coeffs(filter: Filter, input: usize, output: usize) -> Vec<(usize, Vec<i32>)> {
    let scale = input as f64 / output as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ss = 1.0 / filterscale; // Pillow multiplies by the reciprocal: kept for bit-exact weights
    (0..output)
        .map(|i| {
            let center = (i as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize; // C's (int) truncates
            let xmax = ((center + support + 0.5) as i64).min(input as i64).max(xmin as i64) as usize;
            let w: Vec<f64> = (xmin..xmax).map(|x| filter.weight((x as f64 - center + 0.5) * ss)).collect();
            let sum: f64 = w.iter().sum();
            let fixed = w
                .iter()
                .map(|&w| {
                    let w = if sum != 0.0 { w / sum } else { w };
                    let f = w * (1u32 << PRECISION_BITS) as f64;
                    (if w < 0.0 { f - 0.5 } else { f + 0.5 }) as i32
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

/// A pass's output value from its accumulator `2^21 + Σ w·in[k]`.
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

fn horizontal(img: &RgbImage, out_w: usize, f: Filter) -> RgbImage {
    let cs = coeffs(f, img.width, out_w);
    let mut data = vec![0u8; img.height * out_w * 3];
    for y in 0..img.height {
        let row = &img.data[y * img.width * 3..(y + 1) * img.width * 3];
        for (x, (xmin, w)) in cs.iter().enumerate() {
            for c in 0..3 {
                let acc = w.iter().enumerate().fold(1i32 << (PRECISION_BITS - 1), |a, (k, &w)| a + w * row[(xmin + k) * 3 + c] as i32);
                data[(y * out_w + x) * 3 + c] = clip8(acc);
            }
        }
    }
    RgbImage { width: out_w, height: img.height, data }
}

fn vertical(img: &RgbImage, out_h: usize, f: Filter) -> RgbImage {
    let cs = coeffs(f, img.height, out_h);
    let stride = img.width * 3;
    let mut data = vec![0u8; out_h * stride];
    for (y, (ymin, w)) in cs.iter().enumerate() {
        for x in 0..stride {
            let acc =
                w.iter().enumerate().fold(1i32 << (PRECISION_BITS - 1), |a, (k, &w)| a + w * img.data[(ymin + k) * stride + x] as i32);
            data[y * stride + x] = clip8(acc);
        }
    }
    RgbImage { width: img.width, height: out_h, data }
}

/// `img.resize((out_w, out_h), filter)`. Both sizes must be ≥ 1 (the caller checks). Pass
/// order as Pillow 13 (python-pillow/Pillow#9549): vertical first iff the height shrinks and by
/// more than twice what the width shrinks; a side that keeps its size gets no pass.
pub fn resize(img: &RgbImage, out_h: usize, out_w: usize, f: Filter) -> RgbImage {
    let (h, w) = (img.height, img.width);
    let (dh, dw) = (h != out_h, w != out_w);
    let vertical_first = dh && dw && out_h < h && (h - out_h) as i64 > 2 * (w as i64 - out_w as i64);
    match (dh, dw) {
        (false, false) => img.clone(),
        (true, false) => vertical(img, out_h, f),
        (false, true) => horizontal(img, out_w, f),
        _ if vertical_first => horizontal(&vertical(img, out_h, f), out_w, f),
        _ => vertical(&horizontal(img, out_w, f), out_h, f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_and_cover_the_input() {
        for (i, o) in [(1, 1), (1, 7), (7, 1), (600, 28), (28, 600), (400, 94), (65, 63)] {
            for (xmin, w) in [Filter::Bilinear, Filter::Bicubic].into_iter().flat_map(|f| coeffs(f, i, o)) {
                let sum: i64 = w.iter().map(|&w| w as i64).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= w.len() as i64, "{i}->{o}: {sum}");
                assert!(xmin + w.len() <= i);
            }
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        let img = RgbImage { width: 13, height: 7, data: vec![200; 13 * 7 * 3] };
        for (h, w) in [(1, 1), (7, 26), (3, 13), (20, 5), (7, 13)] {
            let r = resize(&img, h, w, Filter::Bicubic);
            assert_eq!((r.height, r.width), (h, w));
            assert!(r.data.iter().all(|&v| v == 200), "{h}x{w}");
        }
    }
}
