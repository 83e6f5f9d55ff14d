//! LLaVA-OneVision's AnyRes packing of a large grid (`anyres_resize_pack` in anyres.wgsl): the unpadded feature map
//! bilinearly resized (`F.interpolate(mode="bilinear", align_corners=False)`), a newline after each
//! row, the global view first; one gather. Reference: transformers
//! `LlavaOnevisionModel.pack_image_features` (models/llava_onevision/modeling_llava_onevision.py).

use super::anyres::{AnyResLayout, AnyResParams};
use super::registry::ANYRES_RESIZE_PACK;
use super::{checked_u32, grid_1d};
use crate::runtime::{Cost, Error, Recorder, Result, Tensor};

/// Packs projected tiles [tiles, h·w, C] (tile 0 the global view, 1 + the layout's grid in all)
/// into [h·w + out_h·(out_w + 1), C]: the global view, then the layout's kept map resized to
/// `out` = `[out_h, out_w]`, each row followed by `newline` `[C]`. Errors: [`Error::Shape`] for the
/// tiles or the newline, [`Error::Input`] for an empty `out`.
pub fn record_anyres_resize_pack(
    rec: &mut Recorder,
    tiles: &Tensor,
    newline: &Tensor,
    layout: &AnyResLayout,
    out: [usize; 2],
) -> Result<Tensor> {
    let gpu = rec.gpu();
    let hw = layout.h * layout.w;
    let c = match *tiles.shape() {
        [t, n, c] if n == hw && t == layout.tiles() => c,
        _ => return Err(Error::shape("image_features", format!("[{}, {hw}, C]", layout.tiles()), tiles.shape())),
    };
    newline.expect_shape("image_newline", &[c])?;
    let [oh, ow] = out;
    if oh == 0 || ow == 0 || layout.rows == 0 || layout.cols == 0 {
        return Err(Error::input("image_size", format!("resizing a {}×{} map to {oh}×{ow} leaves nothing", layout.rows, layout.cols)));
    }
    let total = hw + oh * (ow + 1);
    let y = Tensor::empty(gpu, &[total, c], tiles.dtype())?;
    let op = "anyres_resize_pack";
    let params = AnyResParams::new(layout, [layout.y0, layout.x0, layout.rows, layout.cols], c, total, Some(out))?;
    let n = checked_u32(op, total * c)?;
    // Reads: the base view once, four kept pixels per resized one; writes: every output element.
    let e = tiles.dtype().size() as u64;
    let cost = Cost { flops: 8 * (oh * ow * c) as u64, bytes: e * (hw * c + 4 * oh * ow * c) as u64 + y.byte_len() };
    rec.launch(&ANYRES_RESIZE_PACK, tiles.dtype(), &params, &[Some(tiles), Some(newline), Some(&y)], grid_1d(gpu, n.div_ceil(256)), cost)?;
    Ok(y)
}

/// CPU reference: the kept map gathered, resized as PyTorch's `upsample_bilinear2d` does
/// (align_corners=False; f32 scales and coordinates, f64 blend), then packed.
pub fn anyres_resize_pack_cpu(tiles: &[f32], newline: &[f32], layout: &AnyResLayout, c: usize, out: [usize; 2]) -> Vec<f32> {
    let (h, w, hw) = (layout.h, layout.w, layout.h * layout.w);
    let kept = |yy: usize, xx: usize, ch: usize| {
        let (ym, xm) = (layout.y0 + yy, layout.x0 + xx);
        let t = 1 + (ym / h) * layout.grid[1] + xm / w;
        tiles[(t * hw + (ym % h) * w + xm % w) * c + ch] as f64
    };
    let [oh, ow] = out;
    let src = super::pool::bilinear_taps;
    let (sh, sw) = (layout.rows as f32 / oh as f32, layout.cols as f32 / ow as f32);
    let mut y: Vec<f32> = tiles[..hw * c].to_vec();
    for oy in 0..oh {
        let (y1, y2, ly) = src(oy, sh, layout.rows);
        for ox in 0..ow {
            let (x1, x2, lx) = src(ox, sw, layout.cols);
            for ch in 0..c {
                let top = (1.0 - lx) * kept(y1, x1, ch) + lx * kept(y1, x2, ch);
                let bottom = (1.0 - lx) * kept(y2, x1, ch) + lx * kept(y2, x2, ch);
                y.push(((1.0 - ly) * top + ly * bottom) as f32);
            }
        }
        y.extend_from_slice(newline);
    }
    y
}
