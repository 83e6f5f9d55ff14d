//! Mistral 3's projector (`Mistral3MultiModalProjector` + `Mistral3PatchMerger`,
//! `models/mistral3/modeling_mistral3.py`), fed by the Pixtral tower:
//!
//! ```text
//! image_features [N, C] (every image's patch grid row-major, images concatenated)
//!   → RMSNorm(C, eps = text_config.rms_norm_eps)
//!   → per image (h, w) = image_sizes // patch_size: F.unfold(k = m, stride m) on its own grid
//!     (floors odd sides), token (i, j) with channels c·m² + dy·m + dx
//!   → merging_layer (m²C → C, no bias) → linear_1 → projector_hidden_act → linear_2 → [Σ (h/m)(w/m), T]
//! ```
//! The unfold is one `gather_rows` over all images: rows gathered in (token, dy, dx) order and
//! viewed [tokens, m²·C] give channels (dy·m + dx)·C + c, so the merging weight's columns are
//! permuted once at load from unfold's channel-major order to that one.

use super::registry::{Inputs, Model, Named};
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::elementwise::record_gather_rows;
use crate::kernels::Activation;
use crate::nn::{Bias, Linear, RmsNorm};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// The projector of a `mistral3` checkpoint.
#[derive(Debug)]
pub struct Mistral3Projector {
    norm: RmsNorm,
    merging: Linear,
    fc1: Linear,
    fc2: Linear,
    act: Activation,
    merge: usize,
    patch_size: usize,
}

impl Mistral3Projector {
    /// Loads `multi_modal_projector.{norm, patch_merger.merging_layer, linear_1, linear_2}` (or under
    /// `model.`). C = `vision_config.hidden_size`, T = `text_config.hidden_size`; biases on the
    /// Linears when `multimodal_projector_bias`. Absent fields take `Mistral3Config`'s defaults: a
    /// missing `vision_config` is Pixtral with 14-px patches, a `vision_config` without
    /// `patch_size` `PixtralVisionConfig`'s 16; `rms_norm_eps` 1e-5 without a `text_config`,
    /// `MistralConfig`'s 1e-6 in one that omits it. Errors: [`Error::Config`] for a list
    /// `vision_feature_layer` (the reference's norm is C wide and cannot take the concatenated
    /// layers) or a merge size past 64; [`Error::MissingWeight`] / [`Error::Shape`] from the weights.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<Mistral3Projector> {
        let vc = cfg.sub_or_default("vision_config");
        let tc = cfg.sub_or_default("text_config");
        let c = vc.opt_usize("hidden_size")?.unwrap_or(1024);
        let patch_size = vc.opt_usize("patch_size")?.unwrap_or(if cfg.has("vision_config") { 16 } else { 14 });
        let merge = cfg.opt_usize("spatial_merge_size")?.unwrap_or(2);
        if merge > 64 {
            return Err(Error::config("spatial_merge_size", format!("{merge}: at most 64 is supported")));
        }
        if matches!(cfg.raw("vision_feature_layer"), Some(serde_json::Value::Array(a)) if a.len() > 1) {
            return Err(Error::config("vision_feature_layer", format!("a list: RMSNorm({c}) cannot take {c}·layers channels")));
        }
        let eps = tc.opt_f64("rms_norm_eps")?.unwrap_or(if cfg.has("text_config") { 1e-6 } else { 1e-5 }) as f32;
        let act = Activation::from_name(&cfg.opt_str("projector_hidden_act")?.unwrap_or_else(|| "gelu".into()))?;
        let bias = if cfg.opt_bool("multimodal_projector_bias")?.unwrap_or(false) { Bias::Required } else { Bias::None };
        let ws = layouts::require(ws, layouts::LLAVA_HF_PROJECTOR, "patch_merger.merging_layer.weight")?;
        let norm = RmsNorm::load(gpu, &ws.pp("norm"), c, eps)?;
        let m2 = merge * merge;
        let w = ws.get_host("patch_merger.merging_layer.weight", &[c, m2 * c])?.data;
        // Column c·m² + b (unfold) moves to b·C + c (the gathered rows' order).
        let permuted: Vec<f32> =
            (0..c * m2 * c).map(|i| (i / (m2 * c), i % (m2 * c))).map(|(o, j)| w[o * m2 * c + (j % c) * m2 + j / c]).collect();
        let merging = Linear::from_host(gpu, &permuted, None, m2 * c, c, ws.dtype())?;
        let txt = cfg.sub("text_config").map(|t| t.opt_usize("hidden_size")).transpose()?.flatten();
        let fc1 = Linear::load(gpu, &ws.pp("linear_1"), Some(c), txt, bias)?;
        let fc2 = Linear::load(gpu, &ws.pp("linear_2"), Some(fc1.out_features), txt, bias)?;
        Ok(Mistral3Projector { norm, merging, fc1, fc2, act, merge, patch_size })
    }

    /// `spatial_merge_size` m.
    pub fn merge(&self) -> usize {
        self.merge
    }

    /// `vision_config.patch_size`: `image_sizes` are in pixels.
    pub fn patch_size(&self) -> usize {
        self.patch_size
    }

    /// Records the projector. image_features [N, C], `image_sizes` (height, width) in pixels per
    /// image, N = Σ (h / patch)·(w / patch) → [Σ ⌊h'/m⌋·⌊w'/m⌋, T]. Errors: [`Error::Shape`] for
    /// another width, [`Error::Input`] when the sizes' patch counts disagree with N or a grid side
    /// is below m (F.unfold raises there).
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor, image_sizes: &[[usize; 2]]) -> Result<Tensor> {
        x.expect_float(rec.gpu(), "image_features")?;
        let c = self.norm.dim;
        let n = match *x.shape() {
            [n, w] if w == c => n,
            _ => return Err(Error::shape("image_features", format!("[N, {c}]"), x.shape())),
        };
        let rows = gather_order(image_sizes, self.patch_size, self.merge, n)?;
        let m2 = self.merge * self.merge;
        let normed = self.norm.forward(rec, x)?;
        let blocks = record_gather_rows(rec, &normed, &rows, "image_sizes")?;
        let merged = self.merging.forward(rec, &blocks.reshape(&[rows.len() / m2, m2 * c])?, Activation::Identity)?;
        let h = self.fc1.forward(rec, &merged, self.act)?;
        self.fc2.forward(rec, &h, Activation::Identity)
    }
}

/// The rows of image_features that make the merged tokens, m² per token in (dy, dx) order: per
/// image a (size / patch) grid starting after the earlier images' patches, its ⌊h/m⌋×⌊w/m⌋ blocks
/// row-major (F.unfold drops an odd last row or column). Errors: [`Error::Input`] naming
/// `image_sizes` when the grids hold other than `n` patches or a grid side is below m.
pub fn gather_order(image_sizes: &[[usize; 2]], patch: usize, m: usize, n: usize) -> Result<Vec<i64>> {
    let grids: Vec<[usize; 2]> = image_sizes.iter().map(|&[h, w]| [h / patch, w / patch]).collect();
    let total = grids.iter().try_fold(0usize, |t, &[h, w]| t.checked_add(h.checked_mul(w)?));
    if total != Some(n) {
        let held = total.map_or("more than usize".into(), |t| t.to_string());
        return Err(Error::input(
            "image_sizes",
            format!("the patch grids (size // {patch}) hold {held} patches; image_features has {n} rows"),
        ));
    }
    // F.unfold raises when a side has no whole block ("calculated shape … must be at least one").
    if let Some((i, [h, w])) = grids.iter().enumerate().find(|(_, &[h, w])| h < m || w < m) {
        return Err(Error::input("image_sizes", format!("image {i}: a {h}×{w} patch grid has no {m}×{m} block to merge")));
    }
    let mut rows = Vec::new();
    let mut start = 0;
    for [h, w] in grids {
        for i in 0..h / m {
            for j in 0..w / m {
                for dy in 0..m {
                    rows.extend((0..m).map(|dx| (start + (i * m + dy) * w + j * m + dx) as i64));
                }
            }
        }
        start += h * w;
    }
    Ok(rows)
}

/// `image_sizes` [n, 2] as (height, width) pairs in pixels.
fn image_sizes(inputs: &Inputs) -> Result<Vec<[usize; 2]>> {
    let (shape, v) = inputs.ints("image_sizes")?;
    match shape {
        [_, 2] if v.iter().all(|&x| (0..1 << 24).contains(&x)) => Ok(v.chunks(2).map(|p| [p[0] as usize, p[1] as usize]).collect()),
        _ => Err(Error::input(
            "image_sizes",
            format!("expected [n, 2] (height, width) in pixels below 2^24, got {shape:?} {}", super::qwen2_vl::head(v)),
        )),
    }
}

impl Model for Mistral3Projector {
    fn inputs(&self) -> &'static [&'static str] {
        &["image_features", "image_sizes"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        Ok(vec![("output", self.forward(rec, inputs.tensor("image_features")?, &image_sizes(inputs)?)?)])
    }
    fn describe(&self) -> Vec<String> {
        let (m, c) = (self.merge, self.norm.dim);
        vec![format!(
            "RMSNorm({c}), {m}×{m} unfold per image (patch {p} px), merging Linear {} → {c}, Linear {c} → {}, {:?}, Linear → {}",
            m * m * c,
            self.fc1.out_features,
            self.act,
            self.fc2.out_features,
            p = self.patch_size,
        )]
    }
}
