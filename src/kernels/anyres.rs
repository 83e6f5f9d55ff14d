//! LLaVA-NeXT AnyRes geometry (host, scalar: a handful of integers per image) and the GPU gather
//! that packs projected tiles into the token sequence (anyres.wgsl).

use bytemuck::{Pod, Zeroable};

use super::registry::ANYRES_PACK;
use super::{checked_u32, grid_1d};
use crate::runtime::{Cost, Error, Recorder, Result, Tensor};

/// transformers' `select_best_resolution`: among (h, w) pinpoints, the one with the largest
/// effective resolution after fitting the image, then the least waste; the first wins ties.
pub fn select_best_resolution(image: [usize; 2], pinpoints: &[[usize; 2]]) -> Option<[usize; 2]> {
    let [oh, ow] = image;
    let mut best = None;
    let (mut max_eff, mut min_waste) = (0u64, u64::MAX);
    for &[h, w] in pinpoints {
        let scale = (w as f64 / ow as f64).min(h as f64 / oh as f64);
        let (dw, dh) = ((ow as f64 * scale) as u64, (oh as f64 * scale) as u64);
        let eff = (dw * dh).min((ow * oh) as u64);
        let waste = (w * h) as u64 - eff.min((w * h) as u64);
        if eff > max_eff || (eff == max_eff && waste < min_waste) {
            max_eff = eff;
            min_waste = waste;
            best = Some([h, w]);
        }
    }
    best
}

/// Python's `int(round(x, 7))` for the non-negative values `unpad_image` rounds.
fn round7_trunc(x: f64) -> usize {
    let r = (x * 1e7).round_ties_even() / 1e7;
    r.max(0.0) as usize
}

/// Where the packed tokens come from, for one image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnyResLayout {
    /// Tokens per tile side: a tile is `h × w` tokens.
    pub h: usize,
    /// Tokens per tile row.
    pub w: usize,
    /// Grid of high-resolution tiles (rows, columns); 0×0 for a single (global) tile.
    pub grid: [usize; 2],
    /// Kept window of the (grid·h) × (grid·w) feature map after `unpad_image`.
    pub y0: usize,
    /// First kept column.
    pub x0: usize,
    /// Kept rows.
    pub rows: usize,
    /// Kept columns.
    pub cols: usize,
}

impl AnyResLayout {
    /// Geometry for an image of `image_size` (h, w): tile side `tile` pixels, `patch` pixels per token.
    pub fn new(image_size: [usize; 2], pinpoints: &[[usize; 2]], tile: usize, patch: usize) -> Result<AnyResLayout> {
        let [ih, iw] = image_size;
        // The layout is read only for more than one tile, where transformers raises on each of
        // these: select_best_resolution divides by the sides, an empty tile side makes a 0-sized
        // view, no pinpoint leaves best_fit None, and a pinpoint under one tile a 0×N grid.
        if ih == 0 || iw == 0 {
            return Err(Error::input("image_size", format!("{ih}×{iw}: sides must be positive")));
        }
        // transformers takes `image_size // patch_size` tokens per tile side (SigLIP-so400m: 384 / 14
        // → 27), so a tile that is not a multiple of the patch is fine; only an empty side is not.
        if patch == 0 || tile < patch {
            return Err(Error::config("vision_config.image_size", format!("{tile} gives no token per side with patch_size {patch}")));
        }
        let best = select_best_resolution(image_size, pinpoints).ok_or_else(|| Error::config("image_grid_pinpoints", "empty"))?;
        let grid = [best[0] / tile, best[1] / tile];
        if grid[0] == 0 || grid[1] == 0 {
            return Err(Error::config("image_grid_pinpoints", format!("pinpoint {best:?} is smaller than one {tile}-pixel tile")));
        }
        let side = tile / patch;
        Ok(Self::with_tile_tokens(image_size, grid, side))
    }

    /// Layout of `grid` tiles of `side × side` tokens for an image of `image_size`.
    fn with_tile_tokens(image_size: [usize; 2], grid: [usize; 2], side: usize) -> AnyResLayout {
        let (ch, cw) = (grid[0] * side, grid[1] * side);
        // unpad_image (transformers): crop the padding the resize-and-pad preprocessing added.
        let (oh, ow) = (image_size[0] as f64, image_size[1] as f64);
        let (mut y0, mut x0, mut rows, mut cols) = (0, 0, ch, cw);
        if ow / oh > cw as f64 / ch as f64 {
            let pad = ch.saturating_sub(round7_trunc(oh * (cw as f64 / ow))) / 2;
            y0 = pad;
            rows = ch - 2 * pad;
        } else {
            let pad = cw.saturating_sub(round7_trunc(ow * (ch as f64 / oh))) / 2;
            x0 = pad;
            cols = cw - 2 * pad;
        }
        AnyResLayout { h: side, w: side, grid, y0, x0, rows, cols }
    }

    /// Tiles the vision tower sees: the global view plus the grid.
    pub fn tiles(&self) -> usize {
        1 + self.grid[0] * self.grid[1]
    }

    /// Tokens after packing: the global view, then each kept row and its newline.
    pub fn tokens(&self) -> usize {
        self.h * self.w + self.rows * (self.cols + 1)
    }

    /// The same image with every tile 2×2-pooled first (LLaVA-NeXT-Video style).
    pub fn pooled(&self, image_size: [usize; 2]) -> AnyResLayout {
        Self::with_tile_tokens(image_size, self.grid, self.h / 2)
    }
}

/// Mirrors `AnyResParams` in anyres.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct AnyResParams {
    pub hw: u32,
    pub w: u32,
    pub h: u32,
    pub npw: u32,
    pub y0: u32,
    pub x0: u32,
    pub rows: u32,
    pub cols: u32,
    pub c: u32,
    pub total: u32,
    pub out_h: u32,
    pub out_w: u32,
    pub scale_h: f32,
    pub scale_w: f32,
    pub _p: [u32; 2],
}

impl AnyResParams {
    /// Params for `layout` packed with the kept window (y0, x0, rows, cols), `c` channels and
    /// `total` output rows; `out` resizes the window (`anyres_resize_pack`).
    pub(crate) fn new(layout: &AnyResLayout, window: [usize; 4], c: usize, total: usize, out: Option<[usize; 2]>) -> Result<AnyResParams> {
        let op = "anyres_pack";
        let [y0, x0, rows, cols] = window;
        let [oh, ow] = out.unwrap_or([0, 0]);
        Ok(AnyResParams {
            hw: checked_u32(op, layout.h * layout.w)?,
            w: checked_u32(op, layout.w)?,
            h: checked_u32(op, layout.h)?,
            npw: checked_u32(op, layout.grid[1])?,
            y0: checked_u32(op, y0)?,
            x0: checked_u32(op, x0)?,
            rows: checked_u32(op, rows)?,
            cols: checked_u32(op, cols)?,
            c: checked_u32(op, c)?,
            total: checked_u32(op, total)?,
            out_h: checked_u32(op, oh)?,
            out_w: checked_u32(op, ow)?,
            scale_h: if oh > 0 { rows as f32 / oh as f32 } else { 0.0 },
            scale_w: if ow > 0 { cols as f32 / ow as f32 } else { 0.0 },
            _p: [0; 2],
        })
    }
}

/// Packs projected tiles [tiles, h·w, C] into [tokens, C]. With one tile: global view + one newline.
pub fn record_anyres_pack(rec: &mut Recorder, tiles: &Tensor, newline: &Tensor, layout: &AnyResLayout) -> Result<Tensor> {
    let gpu = rec.gpu();
    let hw = layout.h * layout.w;
    let (n_tiles, c) = match *tiles.shape() {
        [t, n, c] if n == hw => (t, c),
        _ => return Err(Error::shape("image_features", format!("[tiles, {hw}, C]"), tiles.shape())),
    };
    newline.expect_shape("image_newline", &[c])?;
    let single = n_tiles == 1;
    // pack_image_features views the grid tiles as [nph, npw, h, w, C]: another count fails there.
    if !single && n_tiles != layout.tiles() {
        return Err(Error::shape(
            "image_features",
            format!("[{} tiles (1 global + {}×{} grid), {hw}, C]", layout.tiles(), layout.grid[0], layout.grid[1]),
            tiles.shape(),
        ));
    }
    // A single tile packs as a 0×0 kept window with one newline row: rows = 1, cols = 0.
    let (rows, cols, y0, x0) = if single { (1, 0, 0, 0) } else { (layout.rows, layout.cols, layout.y0, layout.x0) };
    let total = hw + rows * (cols + 1);
    let y = Tensor::empty(gpu, &[total, c], tiles.dtype())?;
    let op = "anyres_pack";
    let params = AnyResParams::new(layout, [y0, x0, rows, cols], c, total, None)?;
    let n = checked_u32(op, total * c)?;
    let cost = Cost { flops: 0, bytes: 2 * y.byte_len() };
    rec.launch(&ANYRES_PACK, tiles.dtype(), &params, &[Some(tiles), Some(newline), Some(&y)], grid_1d(gpu, n.div_ceil(256)), cost)?;
    Ok(y)
}

/// CPU reference of the packing (follows transformers' view/permute/unpad/cat literally).
pub fn anyres_pack_cpu(tiles: &[f32], newline: &[f32], n_tiles: usize, layout: &AnyResLayout, c: usize) -> Vec<f32> {
    let hw = layout.h * layout.w;
    let mut out: Vec<f32> = tiles[..hw * c].to_vec();
    if n_tiles == 1 {
        out.extend_from_slice(newline);
        return out;
    }
    let (nph, npw, h, w) = (layout.grid[0], layout.grid[1], layout.h, layout.w);
    for yy in layout.y0..layout.y0 + layout.rows {
        for xx in layout.x0..layout.x0 + layout.cols {
            let (ph, i, pw, j) = (yy / h, yy % h, xx / w, xx % w);
            debug_assert!(ph < nph && pw < npw);
            let t = 1 + ph * npw + pw;
            out.extend_from_slice(&tiles[(t * hw + i * w + j) * c..(t * hw + i * w + j + 1) * c]);
        }
        out.extend_from_slice(newline);
    }
    out
}
