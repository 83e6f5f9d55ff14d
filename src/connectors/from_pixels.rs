//! A model from pixels: its vision tower ([`super::VisionTower`]) then its connector, in one
//! recording. The loaders build these when the config override `load_vision_tower` is true
//! (`vlmc run` sets it for an inputs file with `pixel_values`), so users of the connector alone do
//! not upload the tower.

use crate::runtime::{Error, Recorder, Result};

/// LLaVA from pixels (`LlavaModel.get_image_features`, `models/llava/modeling_llava.py`): the CLIP
/// (or SigLIP)
/// tower up to `vision_feature_layer`, then the projector. Built by the `llava` loader when the
/// config's `load_vision_tower` is true (`vlmc run` sets it when the inputs hold `pixel_values`):
/// connector-only users do not pay for the tower's weights.
#[derive(Debug)]
pub struct LlavaFromPixels {
    /// The tower.
    pub tower: super::VisionTower,
    /// The projector.
    pub projector: super::LlavaProjector,
}

impl super::registry::Model for LlavaFromPixels {
    fn inputs(&self) -> &'static [&'static str] {
        &["pixel_values"]
    }
    /// `output` [B, N, C_text] and the tower's selected `vision_features` [B, N, C].
    fn record(&self, rec: &mut Recorder, inputs: &super::Inputs) -> Result<super::registry::Named> {
        let features = self.tower.forward(rec, inputs.tensor("pixel_values")?)?;
        Ok(vec![("output", self.projector.forward(rec, &features)?), ("vision_features", features)])
    }
    fn describe(&self) -> Vec<String> {
        vec![self.tower.summary(), self.projector.summary()]
    }
}

/// LLaVA-NeXT from pixels (`LlavaNextModel.get_image_features`): one image's AnyRes tiles
/// `pixel_values` [1, tiles, 3, S, S] (the global view first) through the CLIP (or SigLIP) tower, then the
/// projector on every tile and `pack_image_features` for `image_sizes` [[h, w]]. Built by the
/// `llava_next` loader when `load_vision_tower` is true.
#[derive(Debug)]
pub struct LlavaNextFromPixels {
    /// The tower.
    pub tower: super::VisionTower,
    /// Projector, AnyRes geometry and `image_newline`.
    pub next: super::LlavaNext,
}

impl super::registry::Model for LlavaNextFromPixels {
    fn inputs(&self) -> &'static [&'static str] {
        &["pixel_values", "image_sizes"]
    }
    /// `output` [T, C_text], `projected` [tiles, N, C_text] and `vision_features` [tiles, N, C].
    /// Errors: [`Error::Shape`] / [`Error::Input`] naming `pixel_values` or `image_sizes` (one image
    /// per call).
    fn record(&self, rec: &mut Recorder, inputs: &super::Inputs) -> Result<super::registry::Named> {
        let (tiles, size) = anyres_pixels(inputs, &self.next.packer)?;
        let features = self.tower.forward(rec, &tiles)?;
        let (packed, projected) = self.next.forward(rec, &features, size)?;
        Ok(vec![("output", packed), ("projected", projected), ("vision_features", features)])
    }
    fn describe(&self) -> Vec<String> {
        vec![self.tower.summary(), self.next.projector.summary(), self.next.packer.summary()]
    }
}

/// One image's AnyRes `pixel_values` [1, tiles, 3, S, S] as [tiles, 3, S, S], and its
/// `image_sizes` [[h, w]], the tile count checked against the grid that size selects (the
/// reference takes the count from `image_sizes`) before the tower is recorded.
fn anyres_pixels(inputs: &super::Inputs, packer: &super::AnyResPacker) -> Result<(crate::runtime::Tensor, [usize; 2])> {
    let px = inputs.tensor("pixel_values")?;
    let tiles = match *px.shape() {
        [1, t, ch, h, w] => px.reshape(&[t, ch, h, w])?,
        _ => return Err(Error::shape("pixel_values", "[1, tiles, 3, S, S] (one image's AnyRes tiles)", px.shape())),
    };
    let size = match inputs.ints("image_sizes")? {
        ([1, 2], &[h, w]) if h > 0 && w > 0 && h < (1 << 31) && w < (1 << 31) => [h as usize, w as usize],
        (shape, _) => return Err(Error::input("image_sizes", format!("expected [[h, w]] for one image, got shape {shape:?}"))),
    };
    let want = packer.layout(size)?.tiles();
    if tiles.shape()[0] != want {
        return Err(Error::shape("pixel_values", format!("[1, {want} tiles (for image_sizes {size:?}), 3, S, S]"), px.shape()));
    }
    Ok((tiles, size))
}

/// LLaVA-OneVision from pixels (`LlavaOnevisionModel.get_image_features`): one image's AnyRes
/// tiles through the SigLIP (or CLIP) tower, the projector on every tile, then the packing with
/// `anyres_max_N` downsampling. Inputs and outputs as [`LlavaNextFromPixels`]. Built by the
/// `llava_onevision` loader when `load_vision_tower` is true.
#[derive(Debug)]
pub struct LlavaOnevisionFromPixels {
    /// The tower.
    pub tower: super::VisionTower,
    /// Projector, AnyRes geometry, `vision_aspect_ratio` and `image_newline`.
    pub onevision: super::LlavaOnevision,
}

impl super::registry::Model for LlavaOnevisionFromPixels {
    fn inputs(&self) -> &'static [&'static str] {
        &["pixel_values", "image_sizes"]
    }
    /// `output` [T, C_text], `projected` [tiles, N, C_text] and `vision_features` [tiles, N, C].
    fn record(&self, rec: &mut Recorder, inputs: &super::Inputs) -> Result<super::registry::Named> {
        let (tiles, size) = anyres_pixels(inputs, &self.onevision.packer)?;
        let features = self.tower.forward(rec, &tiles)?;
        let (packed, projected) = self.onevision.forward(rec, &features, size)?;
        Ok(vec![("output", packed), ("projected", projected), ("vision_features", features)])
    }
    fn describe(&self) -> Vec<String> {
        let mut lines = vec![self.tower.summary()];
        lines.extend(super::registry::Model::describe(&self.onevision));
        lines
    }
}

/// BLIP-2 from pixels (`Blip2Model.get_image_features`): the EVA tower with its `post_layernorm`,
/// then the Q-Former and `language_projection`. Built by the `blip-2` loader when
/// `load_vision_tower` is true.
#[derive(Debug)]
pub struct Blip2FromPixels {
    /// The tower.
    pub tower: super::VisionTower,
    /// The Q-Former and its projection.
    pub qformer: super::QFormer,
}

impl super::registry::Model for Blip2FromPixels {
    fn inputs(&self) -> &'static [&'static str] {
        &["pixel_values"]
    }
    /// `output` [B, Q, C_text], `qformer_output` [B, Q, H] and the tower's `vision_features`
    /// [B, 1 + N, C].
    fn record(&self, rec: &mut Recorder, inputs: &super::Inputs) -> Result<super::registry::Named> {
        let features = self.tower.forward(rec, inputs.tensor("pixel_values")?)?;
        let (h, projected) = self.qformer.forward(rec, &features)?;
        Ok(vec![("output", projected), ("qformer_output", h), ("vision_features", features)])
    }
    fn describe(&self) -> Vec<String> {
        let mut lines = vec![self.tower.summary()];
        lines.extend(super::registry::Model::describe(&self.qformer));
        lines
    }
}
