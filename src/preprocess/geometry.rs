//! The image processors' geometry on uint8 RGB, as transformers computes it (`image_transforms.py`,
//! `image_processing_llava_next.py`): center crop, AnyRes's best pinpoint, fit and zero pad, and
//! the cut into tiles. The f64 operations are kept in the reference's order.

use super::RgbImage;

/// transformers' `center_crop` to `[ch, cw]`: offset `(size − crop) // 2` (Python floor division),
/// zero-padded where the crop reaches past the image.
pub(crate) fn center_crop(img: &RgbImage, [ch, cw]: [usize; 2]) -> RgbImage {
    let top = (img.height as i64 - ch as i64).div_euclid(2);
    let left = (img.width as i64 - cw as i64).div_euclid(2);
    let mut out = RgbImage { width: cw, height: ch, data: vec![0; ch * cw * 3] };
    // The rows and columns the crop shares with the image.
    let (y0, y1) = (top.max(0), (top + ch as i64).min(img.height as i64));
    let (x0, x1) = (left.max(0), (left + cw as i64).min(img.width as i64));
    if x0 >= x1 {
        return out;
    }
    for sy in y0..y1 {
        let dy = (sy - top) as usize;
        let src = (sy as usize * img.width + x0 as usize) * 3;
        let dst = (dy * cw + (x0 - left) as usize) * 3;
        let n = (x1 - x0) as usize * 3;
        out.data[dst..dst + n].copy_from_slice(&img.data[src..src + n]);
    }
    out
}

/// `select_best_resolution`: the pinpoint (h, w) keeping the most of an `h`×`w` photo once scaled
/// to fit, then wasting the fewest pixels; the first in list order on a tie.
pub(crate) fn best_pinpoint(pins: &[[usize; 2]], h: usize, w: usize) -> (usize, usize) {
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

/// `get_patch_output_size`: the photo resized to fit (ph, pw), aspect kept; the f64 quotients
/// first, then `ceil`, then `min` (600·(84/600) is 84.00000000000001: ceil 85, min 84).
pub(crate) fn fit(h: usize, w: usize, ph: usize, pw: usize) -> (usize, usize) {
    let (sw, sh) = (pw as f64 / w as f64, ph as f64 / h as f64);
    match sw < sh {
        true => (((h as f64 * sw).ceil() as usize).min(ph).max(1), pw),
        false => (ph, ((w as f64 * sh).ceil() as usize).min(pw).max(1)),
    }
}

/// `_pad_for_patching`: `img` centred on a black `ph`×`pw` canvas (the odd pixel after).
pub(crate) fn pad_center(img: &RgbImage, ph: usize, pw: usize) -> RgbImage {
    let mut out = RgbImage { width: pw, height: ph, data: vec![0; ph * pw * 3] };
    let (top, left) = ((ph - img.height) / 2, (pw - img.width) / 2);
    let row = img.width * 3;
    for y in 0..img.height {
        let dst = ((top + y) * pw + left) * 3;
        out.data[dst..dst + row].copy_from_slice(&img.data[y * row..(y + 1) * row]);
    }
    out
}

/// `divide_to_patches`: row-major `tile`×`tile` crops of an image whose sides are multiples of it.
pub(crate) fn tiles(img: &RgbImage, tile: usize) -> Vec<RgbImage> {
    let mut out = Vec::new();
    for ty in 0..img.height / tile {
        for tx in 0..img.width / tile {
            let mut data = Vec::with_capacity(tile * tile * 3);
            for y in ty * tile..(ty + 1) * tile {
                data.extend_from_slice(&img.data[(y * img.width + tx * tile) * 3..(y * img.width + (tx + 1) * tile) * 3]);
            }
            out.push(RgbImage { width: tile, height: tile, data });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(h: usize, w: usize) -> RgbImage {
        RgbImage { width: w, height: h, data: (0..h * w * 3).map(|i| (i % 251) as u8 + 1).collect() }
    }

    #[test]
    fn the_golden_readmes_geometry() {
        // coffee.png 400×600 over pinpoints every (28i, 28j), i, j ≤ 5: best 112×140, fit 94×140.
        let pins: Vec<[usize; 2]> = (1..=5).flat_map(|i| (1..=5).map(move |j| [28 * i, 28 * j])).collect();
        assert_eq!(best_pinpoint(&pins, 400, 600), (112, 140));
        assert_eq!(fit(400, 600, 112, 140), (94, 140));
        // 600·(84/600) = 84.00000000000001: only the min keeps it at 84.
        assert_eq!(fit(600, 600, 84, 84), (84, 84));
        // 300·(84/600) = 42.00000000000001 too, and there ceil gives 43, as in Python.
        assert_eq!(fit(300, 600, 84, 84), (43, 84));
        // Ties go to the first pinpoint in list order.
        assert_eq!(best_pinpoint(&[[28, 56], [56, 28]], 10, 10), (28, 56));
    }

    #[test]
    fn center_crop_slices_or_pads_with_zeros() {
        let i = img(5, 7);
        let c = center_crop(&i, [3, 3]);
        assert_eq!(&c.data[..3], &i.data[(7 + 2) * 3..(7 + 2) * 3 + 3], "offset (1, 2)");
        let big = center_crop(&i, [7, 9]);
        assert_eq!(&big.data[..3], &[0, 0, 0]);
        assert_eq!(&big.data[(9 + 1) * 3..(9 + 1) * 3 + 3], &i.data[..3], "padding 1 on each side");
        // Odd padding: (5 − 6) // 2 = −1, so one row before the image and none after.
        let odd = center_crop(&i, [6, 7]);
        assert_eq!(&odd.data[7 * 3..7 * 3 + 3], &i.data[..3]);
    }

    #[test]
    fn pad_and_tiles_round_trip() {
        let i = img(94, 140);
        let p = pad_center(&i, 112, 140);
        assert_eq!(&p.data[9 * 140 * 3..9 * 140 * 3 + 6], &i.data[..6], "9 rows on top");
        let t = tiles(&p, 28);
        assert_eq!(t.len(), 20);
        assert_eq!(t[6].data[..3], p.data[(28 * 140 + 28) * 3..(28 * 140 + 28) * 3 + 3], "row 1, column 1");
    }
}
