//! LLaVA-NeXT (`llava_next`): the LLaVA projector on every AnyRes tile, then transformers'
//! `pack_image_features` (tiles reassembled into one map, `unpad_image`, `image_newline` after each
//! row, global view first) as one GPU gather.

use std::path::Path;

use super::registry::{Connector, Inputs, Model, Named};
use super::LlavaProjector;
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::anyres::{record_anyres_pack, AnyResLayout};
use crate::kernels::elementwise::record_copy_rows;
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// The AnyRes geometry of a checkpoint: pinpoints, tile size, patch size.
#[derive(Clone, Debug)]
pub struct AnyResPacker {
    /// `image_grid_pinpoints`, (h, w) pairs in pixels.
    pub pinpoints: Vec<[usize; 2]>,
    /// `vision_config.image_size`: the side of one tile in pixels.
    pub tile: usize,
    /// `vision_config.patch_size`.
    pub patch: usize,
}

impl AnyResPacker {
    /// LLaVA-NeXT's defaults (CLIP-L/336, the 1.6 pinpoints).
    pub fn llava_next_default() -> AnyResPacker {
        AnyResPacker { pinpoints: vec![[336, 672], [672, 336], [672, 672], [1008, 336], [336, 1008]], tile: 336, patch: 14 }
    }

    /// Reads `image_grid_pinpoints` and `vision_config.{image_size, patch_size}` with transformers'
    /// defaults: without a `vision_config`, the family's tower (`LlavaNextConfig`: CLIP-L/336 and
    /// the five 1.6 pinpoints; `LlavaOnevisionConfig`: SigLIP-so400m/384, patch 14, and the 6×6
    /// grid of multiples of 384); with one, its tower type's own defaults for absent fields
    /// (`clip_vision_model` 224 / 32, `siglip_vision_model` 224 / 16).
    pub fn from_config(cfg: &Config) -> Result<AnyResPacker> {
        let onevision = cfg.raw("model_type").and_then(|v| v.as_str()) == Some("llava_onevision");
        let (tile, patch) = match cfg.sub("vision_config") {
            None if onevision => (384, 14),
            None => (336, 14),
            Some(vc) => {
                let family = if onevision { "siglip_vision_model" } else { "clip_vision_model" };
                let tower = vc.opt_str("model_type")?.unwrap_or_else(|| family.to_string());
                let defaults = match tower.as_str() {
                    "clip_vision_model" => Some((224, 32)),
                    "siglip_vision_model" => Some((224, 16)),
                    _ => None,
                };
                let field = |name: &str, default: Option<usize>| -> Result<usize> {
                    vc.opt_usize(name)?.or(default).ok_or_else(|| {
                        Error::config(format!("vision_config.{name}"), format!("missing, and `{tower}` has no default known here"))
                    })
                };
                (field("image_size", defaults.map(|d| d.0))?, field("patch_size", defaults.map(|d| d.1))?)
            }
        };
        let pinpoints = match (cfg.has("image_grid_pinpoints"), onevision) {
            (true, _) => cfg.pairs("image_grid_pinpoints")?,
            (false, true) => (1..=6).flat_map(|i| (1..=6).map(move |j| [384 * i, 384 * j])).collect(),
            (false, false) => Self::llava_next_default().pinpoints,
        };
        Ok(AnyResPacker { pinpoints, tile, patch })
    }

    /// The layout for an image of (h, w) pixels.
    pub fn layout(&self, image_size: [usize; 2]) -> Result<AnyResLayout> {
        AnyResLayout::new(image_size, &self.pinpoints, self.tile, self.patch)
    }

    /// Tokens the packed image takes, without running anything (what a processor reserves).
    pub fn token_count(&self, image_size: [usize; 2]) -> Result<usize> {
        Ok(self.layout(image_size)?.tokens())
    }

    /// One line: the tile geometry and the tokens of a one-tile image and of the largest pinpoint.
    pub fn summary(&self) -> String {
        let side = self.tile / self.patch.max(1);
        let count = |s: [usize; 2]| self.token_count(s).map_or_else(|e| format!("({e})"), |n| n.to_string());
        let largest = self.pinpoints.iter().max_by_key(|p| p[0] * p[1]).copied().unwrap_or([self.tile, self.tile]);
        format!(
            "AnyRes: {t}×{t} px tiles of {side}×{side} tokens (patch {}), {} pinpoints; a {t}×{t} image packs to {} tokens, a {}×{} one to {}",
            self.patch,
            self.pinpoints.len(),
            count([self.tile, self.tile]),
            largest[0],
            largest[1],
            count(largest),
            t = self.tile,
        )
    }

    /// Tiles the vision tower must encode for this image (global view + grid).
    pub fn tile_count(&self, image_size: [usize; 2]) -> Result<usize> {
        Ok(self.layout(image_size)?.tiles())
    }
}

/// LLaVA-NeXT's connector (transformers `LlavaNextModel.pack_image_features`,
/// `models/llava_next/modeling_llava_next.py`): the projector on every tile, then AnyRes packing.
#[derive(Debug)]
pub struct LlavaNext {
    /// The projector run on every tile.
    pub projector: LlavaProjector,
    /// The AnyRes geometry.
    pub packer: AnyResPacker,
    image_newline: Tensor,
}

impl LlavaNext {
    /// Loads a `llava_next` checkpoint folder (`config.json` + safetensors).
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<LlavaNext> {
        Connector::from_dir(gpu, dir)?.into_model()
    }

    /// Builds from a parsed config (`image_grid_pinpoints`, `vision_config`) and weights (HF
    /// projector layout + `image_newline`).
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<LlavaNext> {
        let (projector, packer, image_newline) = load_anyres(gpu, cfg, ws)?;
        Ok(LlavaNext { projector, packer, image_newline })
    }

    /// Records the projector on every tile and the packing.
    /// image_features [tiles, tokens, C_vis] (tile 0 = global view), image_size (h, w) in pixels →
    /// (packed [T, C_text], projected tiles [tiles, tokens, C_text]). One tile (the global view
    /// alone) may have any token count N and packs to [N + 1, C_text] (its tokens, then the
    /// newline); `image_size` is not read then. More tiles must be 1 + the grid `image_size`
    /// selects; anything else is an [`Error::Shape`] naming `image_features` as passed.
    pub fn forward(&self, rec: &mut Recorder, image_features: &Tensor, image_size: [usize; 2]) -> Result<(Tensor, Tensor)> {
        let layout = check_tiles(rec, image_features, &self.packer, self.projector.in_features, Some(image_size))?;
        let projected = self.projector.forward(rec, image_features)?;
        let packed = match layout {
            Some(layout) => record_anyres_pack(rec, &projected, &self.image_newline, &layout)?,
            None => append_newline(rec, &projected, &self.image_newline)?,
        };
        Ok((packed, projected))
    }
}

impl Model for LlavaNext {
    fn inputs(&self) -> &'static [&'static str] {
        &["image_features", "image_size"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let features = inputs.tensor("image_features")?;
        let (packed, projected) = self.forward(rec, features, image_size(inputs, features)?)?;
        Ok(vec![("output", packed), ("projected", projected)])
    }
    fn describe(&self) -> Vec<String> {
        vec![self.projector.summary(), self.packer.summary()]
    }
}

/// The projector, the AnyRes geometry and `image_newline` of a LLaVA-NeXT-style checkpoint.
pub(crate) fn load_anyres(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<(LlavaProjector, AnyResPacker, Tensor)> {
    let projector = LlavaProjector::load_hf(gpu, cfg, ws)?;
    let packer = AnyResPacker::from_config(cfg)?;
    let name = layouts::find_tensor(ws, layouts::LLAVA_NEXT_NEWLINE)
        .ok_or_else(|| Error::MissingWeight { name: layouts::LLAVA_NEXT_NEWLINE.join(" or "), location: ws.location().to_string() })?;
    let image_newline = ws.get(gpu, name, &[projector.out_features])?;
    Ok((projector, packer, image_newline))
}

/// Checks image_features [tiles, tokens, C]: one tile (the base view alone: any token count, no
/// layout, as `pack_image_features`'s single-patch branch reads it) gives `None`; more need
/// `image_size` and must be 1 + the grid it selects. The error names the input as passed.
pub(crate) fn check_tiles(
    rec: &Recorder,
    features: &Tensor,
    packer: &AnyResPacker,
    width: usize,
    image_size: Option<[usize; 2]>,
) -> Result<Option<AnyResLayout>> {
    features.expect_float(rec.gpu(), "image_features")?;
    let tiles = match *features.shape() {
        [t, _, c] if t > 0 && c == width => t,
        _ => return Err(Error::shape("image_features", format!("[tiles, tokens, {width}]"), features.shape())),
    };
    if tiles == 1 {
        return Ok(None);
    }
    let image_size =
        image_size.ok_or_else(|| Error::input("image_size", format!("missing: {tiles} tiles need the image size to be packed")))?;
    let layout = packer.layout(image_size)?;
    if tiles != layout.tiles() {
        let [gh, gw] = layout.grid;
        let want = format!("[{} tiles (1 global + {gh}×{gw} grid for {image_size:?}) or 1, tokens, {width}]", layout.tiles());
        return Err(Error::shape("image_features", want, features.shape()));
    }
    Ok(Some(layout))
}

/// tokens [1, N, C] or [N, C] followed by `newline` [C] → [N + 1, C] (the single-tile packing, and
/// the newline after a OneVision video).
pub(crate) fn append_newline(rec: &mut Recorder, tokens: &Tensor, newline: &Tensor) -> Result<Tensor> {
    let c = newline.numel();
    let rows = tokens.numel() / c.max(1);
    let out = Tensor::empty(rec.gpu(), &[rows + 1, c], tokens.dtype())?;
    let dst = out.reshape(&[1, rows + 1, c])?;
    record_copy_rows(rec, &tokens.reshape(&[1, rows, c])?, 0, &dst, 0, rows)?;
    record_copy_rows(rec, &newline.reshape(&[1, 1, c])?, 0, &dst, rows, 1)?;
    Ok(out)
}

/// The `image_size` input (h, w) in pixels, as `[2]` or `[1, 2]` (a processor's `image_sizes` for
/// one image); absent is `[0, 0]`, which only a single tile accepts.
pub(crate) fn image_size(inputs: &Inputs, features: &Tensor) -> Result<[usize; 2]> {
    if !inputs.contains("image_size") && features.shape().first() == Some(&1) {
        return Ok([0, 0]);
    }
    match inputs.ints("image_size")? {
        ([2] | [1, 2], &[h, w]) if h > 0 && w > 0 && h < (1 << 31) && w < (1 << 31) => Ok([h as usize, w as usize]),
        (_, size) => Err(Error::input("image_size", format!("expected 2 positive integers (h, w), got {size:?}"))),
    }
}
