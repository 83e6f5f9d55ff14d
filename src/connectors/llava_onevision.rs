//! LLaVA-OneVision (`llava_onevision`): the LLaVA projector on every AnyRes tile, then
//! transformers' `LlavaOnevisionModel.pack_image_features`
//! (models/llava_onevision/modeling_llava_onevision.py): LLaVA-NeXT's reassembly and `unpad_image`,
//! then, when the kept map is more than 1.1× the `anyres_max_N` budget per side, a bilinear
//! downsample to `[int(rows // ratio), int(cols // ratio)]`; a newline after every row; the base
//! tile first. Video frames (`get_video_features`): the projector on every frame, each frame's
//! side×side map bilinearly resized to ⌈side/2⌉ per side (`apply_pooling`), the frames
//! concatenated, and one newline after the whole video.

use std::path::Path;

use super::llava_next::{check_tiles, image_size, load_anyres, AnyResPacker};
use super::registry::{Connector, Inputs, Model, Named};
use super::LlavaProjector;
use crate::checkpoint::{Config, WeightSource};
use crate::kernels::anyres::record_anyres_pack;
use crate::kernels::anyres_resize::record_anyres_resize_pack;
use crate::kernels::elementwise::record_copy_rows;
use crate::kernels::pool::record_resize_bilinear;
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// LLaVA-OneVision's connector: image_features [tiles, side², C_vis] and the image size →
/// (packed [T, C_text], projected [tiles, side², C_text]).
#[derive(Debug)]
pub struct LlavaOnevision {
    /// The projector run on every tile.
    pub projector: LlavaProjector,
    /// The AnyRes geometry (pinpoints, tile and patch size).
    pub packer: AnyResPacker,
    /// N of `vision_aspect_ratio: anyres_max_N`: the token budget is N base tiles.
    pub max_num_patches: usize,
    image_newline: Tensor,
}

/// `anyres_max_N` → N. transformers strips the characters of `"anyres_max_"` from both ends, which
/// works because the tail is digits; anything else is refused here.
fn max_patches(cfg: &Config) -> Result<usize> {
    let v = cfg.opt_str("vision_aspect_ratio")?.unwrap_or_else(|| "anyres_max_9".into());
    v.strip_prefix("anyres_max_")
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .ok_or_else(|| Error::config("vision_aspect_ratio", format!("`{v}`: expected anyres_max_N with N ≥ 1")))
}

/// Python's `a // b` for positive floats (CPython `float_floor_div`): it floors the exact quotient
/// through `fmod`, so 10 // 1.6666666666666667 is 5.0 where `(10.0 / b).floor()` gives 6.
fn py_floor_div(a: f64, b: f64) -> f64 {
    let m = a % b;
    let d = (a - m) / b;
    let f = d.floor();
    if d - f > 0.5 {
        f + 1.0
    } else {
        f
    }
}

impl LlavaOnevision {
    /// Loads a `llava_onevision` checkpoint folder.
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<LlavaOnevision> {
        Connector::from_dir(gpu, dir)?.into_model()
    }

    /// Builds from a config (`image_grid_pinpoints`, `vision_config`, `vision_aspect_ratio`) and
    /// weights (HF projector layout + `image_newline`).
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<LlavaOnevision> {
        let (projector, packer, image_newline) = load_anyres(gpu, cfg, ws)?;
        Ok(LlavaOnevision { projector, packer, max_num_patches: max_patches(cfg)?, image_newline })
    }

    /// The resized size of the kept map, if it is resized: ratio = √(rows·cols / (N·side²)) > 1.1.
    pub fn resized(&self, rows: usize, cols: usize, side: usize) -> Option<[usize; 2]> {
        let budget = self.max_num_patches as f64 * side as f64 * side as f64;
        let ratio = (rows as f64 * cols as f64 / budget).sqrt();
        (ratio > 1.1).then(|| [py_floor_div(rows as f64, ratio) as usize, py_floor_div(cols as f64, ratio) as usize])
    }

    /// Records the projector on every tile and the packing. image_features [tiles, side², C_vis]
    /// (tile 0 = base view; 1 tile, or 1 + the grid `image_size` selects), image_size (h, w) in
    /// pixels → (packed [T, C_text], projected [tiles, side², C_text]). Errors: shapes naming the
    /// input as passed.
    pub fn forward(&self, rec: &mut Recorder, image_features: &Tensor, image_size: [usize; 2]) -> Result<(Tensor, Tensor)> {
        let layout = check_tiles(rec, image_features, &self.packer, self.projector.in_features, image_size)?;
        let tiles = image_features.shape()[0];
        let projected = self.projector.forward(rec, image_features)?;
        let packed = match (tiles, self.resized(layout.rows, layout.cols, layout.h)) {
            (t, Some(out)) if t > 1 => record_anyres_resize_pack(rec, &projected, &self.image_newline, &layout, out)?,
            _ => record_anyres_pack(rec, &projected, &self.image_newline, &layout)?,
        };
        Ok((packed, projected))
    }

    /// Records one video: video_features [frames, side², C_vis] (side = image_size / patch_size)
    /// → (packed [frames·⌈side/2⌉² + 1, C_text], pooled [frames, ⌈side/2⌉², C_text]), as
    /// `get_video_features` then `torch.cat((video_features, image_newline))` in transformers'
    /// `LlavaOnevisionModel`. Errors: [`Error::Shape`] naming `video_features`.
    pub fn forward_video(&self, rec: &mut Recorder, video_features: &Tensor) -> Result<(Tensor, Tensor)> {
        video_features.expect_float(rec.gpu(), "video_features")?;
        let side = self.packer.tile / self.packer.patch;
        let frames = match *video_features.shape() {
            [f, t, c] if t == side * side && c == self.projector.in_features => f,
            _ => {
                let want = format!("[frames, {} (= {side}²: image_size / patch_size), {}]", side * side, self.projector.in_features);
                return Err(Error::shape("video_features", want, video_features.shape()));
            }
        };
        let projected = self.projector.forward(rec, video_features)?;
        let half = side.div_ceil(2);
        let pooled = record_resize_bilinear(rec, &projected, [side, side], [half, half])?;
        let (rows, c) = (frames * half * half, pooled.shape()[2]);
        let packed = Tensor::empty(rec.gpu(), &[rows + 1, c], pooled.dtype())?;
        let dst = packed.reshape(&[1, rows + 1, c])?;
        record_copy_rows(rec, &pooled.reshape(&[1, rows, c])?, 0, &dst, 0, rows)?;
        record_copy_rows(rec, &self.image_newline.reshape(&[1, 1, c])?, 0, &dst, rows, 1)?;
        Ok((packed, pooled))
    }
}

impl Model for LlavaOnevision {
    fn inputs(&self) -> &'static [&'static str] {
        &["image_features", "image_size", "video_features"]
    }
    /// `video_features` runs the video path (outputs `output`, `pooled`); otherwise
    /// `image_features` + `image_size` the image path (`output`, `projected`).
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        if inputs.contains("video_features") {
            if inputs.contains("image_features") {
                return Err(Error::input(
                    "video_features",
                    "give `image_features` or `video_features`, not both: one run packs one or the other",
                ));
            }
            let (packed, pooled) = self.forward_video(rec, inputs.tensor("video_features")?)?;
            return Ok(vec![("output", packed), ("pooled", pooled)]);
        }
        let (packed, projected) = self.forward(rec, inputs.tensor("image_features")?, image_size(inputs)?)?;
        Ok(vec![("output", packed), ("projected", projected)])
    }
    fn describe(&self) -> Vec<String> {
        let side = self.packer.tile / self.packer.patch.max(1);
        vec![
            self.projector.summary(),
            self.packer.summary(),
            format!(
                "anyres_max_{}: a kept map past 1.1× {} tiles' tokens is resized bilinearly",
                self.max_num_patches, self.max_num_patches
            ),
            format!("video: {side}×{side} tokens per frame pooled bilinearly to {h}×{h}, one newline per video", h = side.div_ceil(2)),
        ]
    }
}
