//! LLaVA-OneVision (`llava_onevision`): the LLaVA projector on every AnyRes tile, then
//! transformers' `LlavaOnevisionModel.pack_image_features`
//! (models/llava_onevision/modeling_llava_onevision.py): LLaVA-NeXT's reassembly and `unpad_image`,
//! then, when the kept map is more than 1.1× the `anyres_max_N` budget per side, a bilinear
//! downsample to `[int(rows // ratio), int(cols // ratio)]`; a newline after every row; the base
//! tile first. Video frames (`get_video_features`): the projector on every frame, each frame's
//! side×side map bilinearly resized to ⌈side/2⌉ per side (`apply_pooling`), the frames
//! concatenated, and one newline after the whole video.

use std::path::Path;

use super::llava_next::{append_newline, check_tiles, image_size, load_anyres, AnyResPacker};
use super::registry::{Connector, Inputs, Model, Named};
use super::LlavaProjector;
use crate::checkpoint::{Config, WeightSource};
use crate::kernels::anyres::record_anyres_pack;
use crate::kernels::anyres_resize::record_anyres_resize_pack;
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
    /// N of `vision_aspect_ratio: anyres_max_N`: the token budget is N base tiles (0 when the
    /// value gives no positive N: an error only once a multi-tile image needs it, as in transformers).
    pub max_num_patches: usize,
    /// `vision_aspect_ratio` as written (default `anyres_max_9`).
    pub vision_aspect_ratio: String,
    image_newline: Tensor,
}

/// N of `vision_aspect_ratio` as transformers reads it: `int(v.strip("anyres_max_"))` strips those
/// characters from both ends (so `anyres_max_9` and `9` both give 9); 0 when that is not a
/// positive integer.
fn max_patches(v: &str) -> usize {
    let n = v.trim_matches(|c: char| "anyres_max_".contains(c)).trim();
    let digits = n.strip_prefix('+').unwrap_or(n);
    // Python's int(): single underscores between digits only.
    let groups_ok = digits.split('_').all(|g| !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()));
    if groups_ok {
        digits.replace('_', "").parse::<usize>().unwrap_or(0)
    } else {
        0
    }
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
        let vision_aspect_ratio = cfg.opt_str("vision_aspect_ratio")?.unwrap_or_else(|| "anyres_max_9".into());
        Ok(LlavaOnevision { projector, packer, max_num_patches: max_patches(&vision_aspect_ratio), vision_aspect_ratio, image_newline })
    }

    /// The resized size of the kept map, if it is resized: ratio = √(rows·cols / (N·side²)) > 1.1.
    /// Errors: [`Error::Config`] when `vision_aspect_ratio` gives no positive N (transformers'
    /// `int(...)` or division fails there, and only there).
    pub fn resized(&self, rows: usize, cols: usize, side: usize) -> Result<Option<[usize; 2]>> {
        if self.max_num_patches == 0 {
            let why = "transformers reads int(value.strip(\"anyres_max_\")) as a tile budget, which must be a positive integer";
            return Err(Error::config("vision_aspect_ratio", format!("`{}`: {why}", self.vision_aspect_ratio)));
        }
        let budget = self.max_num_patches as f64 * side as f64 * side as f64;
        let ratio = (rows as f64 * cols as f64 / budget).sqrt();
        Ok((ratio > 1.1).then(|| [py_floor_div(rows as f64, ratio) as usize, py_floor_div(cols as f64, ratio) as usize]))
    }

    /// Records the projector on every tile and the packing. image_features [tiles, side², C_vis]
    /// (tile 0 = base view; 1 tile of any token count N, packed to [N + 1, C_text] without reading
    /// `image_size`, or 1 + the grid `image_size` selects), image_size (h, w) in pixels →
    /// (packed [T, C_text], projected [tiles, side², C_text]). Errors: shapes naming the input as
    /// passed; [`Error::Config`] when a large map needs `vision_aspect_ratio` and it gives no N.
    pub fn forward(&self, rec: &mut Recorder, image_features: &Tensor, image_size: [usize; 2]) -> Result<(Tensor, Tensor)> {
        let layout = check_tiles(rec, image_features, &self.packer, self.projector.in_features, Some(image_size))?;
        let projected = self.projector.forward(rec, image_features)?;
        let packed = match layout {
            None => append_newline(rec, &projected, &self.image_newline)?,
            Some(layout) => match self.resized(layout.rows, layout.cols, layout.h)? {
                Some(out) => record_anyres_resize_pack(rec, &projected, &self.image_newline, &layout, out)?,
                None => record_anyres_pack(rec, &projected, &self.image_newline, &layout)?,
            },
        };
        Ok((packed, projected))
    }

    /// Records one video: video_features [frames, side², C_vis] (side = image_size / patch_size)
    /// → (packed [frames·⌈side/2⌉² + 1, C_text], pooled [frames, ⌈side/2⌉², C_text]), as
    /// `get_video_features` then `torch.cat((video_features, image_newline))` in transformers'
    /// `LlavaOnevisionModel`. Errors: [`Error::Shape`] naming `video_features`.
    pub fn forward_video(&self, rec: &mut Recorder, video_features: &Tensor) -> Result<(Tensor, Tensor)> {
        video_features.expect_float(rec.gpu(), "video_features")?;
        let side = self.packer.tile / self.packer.patch.max(1);
        match *video_features.shape() {
            // apply_pooling views each frame as [side, side, C]: another token count fails there.
            [_, t, c] if side > 0 && t == side * side && c == self.projector.in_features => {}
            _ => {
                let want = format!("[frames, {} (= {side}²: image_size / patch_size), {}]", side * side, self.projector.in_features);
                return Err(Error::shape("video_features", want, video_features.shape()));
            }
        }
        let projected = self.projector.forward(rec, video_features)?;
        let half = side.div_ceil(2);
        let pooled = record_resize_bilinear(rec, &projected, [side, side], [half, half])?;
        let packed = append_newline(rec, &pooled, &self.image_newline)?;
        Ok((packed, pooled))
    }
}

impl Model for LlavaOnevision {
    fn inputs(&self) -> &'static [&'static str] {
        &["image_features", "image_size", "video_features"]
    }
    /// `image_features` (+ `image_size` for more than one tile) runs the image path (`output`,
    /// `projected`); `video_features` the video path (`output`, `pooled` alone, or `video_output`,
    /// `pooled` beside an image, as one forward of the reference takes both).
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let mut outs = Vec::new();
        if !inputs.contains("video_features") || inputs.contains("image_features") {
            let features = inputs.tensor("image_features")?;
            let (packed, projected) = self.forward(rec, features, image_size(inputs, features)?)?;
            outs.extend([("output", packed), ("projected", projected)]);
        }
        if inputs.contains("video_features") {
            let (packed, pooled) = self.forward_video(rec, inputs.tensor("video_features")?)?;
            outs.extend([(if outs.is_empty() { "output" } else { "video_output" }, packed), ("pooled", pooled)]);
        }
        Ok(outs)
    }
    fn describe(&self) -> Vec<String> {
        let side = self.packer.tile / self.packer.patch.max(1);
        vec![
            self.projector.summary(),
            self.packer.summary(),
            format!(
                "vision_aspect_ratio `{}`: a kept map past 1.1× {} tiles' tokens is resized bilinearly",
                self.vision_aspect_ratio, self.max_num_patches
            ),
            format!("video: {side}×{side} tokens per frame pooled bilinearly to {h}×{h}, one newline per video", h = side.div_ceil(2)),
        ]
    }
}
