//! Qwen2-VL's `PatchMerger` and Qwen2.5-VL's `Qwen2_5_VLPatchMerger`
//! (`models/qwen2_vl/modeling_qwen2_vl.py`, `models/qwen2_5_vl/modeling_qwen2_5_vl.py`):
//!
//! ```text
//! hidden_states [N, C] (every 4 consecutive rows one 2×2 merge unit) → norm per row (LayerNorm
//! eps 1e-6 for Qwen2-VL, RMSNorm eps 1e-6 for Qwen2.5-VL) → view [N/4, 4C] → Linear → GELU (erf)
//! → Linear → [N/4, out]; Qwen2.5-VL then undoes the tower's window order: out[argsort(window_index)]
//! ```

use super::registry::{Inputs, Model, Named};
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::elementwise::record_gather_rows;
use crate::kernels::Activation;
use crate::nn::{Bias, LayerNorm, Linear, Norm, RmsNorm};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// Where the merger sits: `visual.merger` as `save_pretrained` writes it, `model.visual.merger` in memory.
const ROOTS: &[&str] = &["visual.merger", "model.visual.merger"];

/// The merger of a `qwen2_vl` or `qwen2_5_vl` checkpoint.
#[derive(Debug)]
pub struct Qwen2VlMerger {
    norm: Norm,
    fc1: Linear,
    fc2: Linear,
    in_features: usize,
    merge: usize,
    window_units: Option<usize>,
}

impl Qwen2VlMerger {
    /// Loads the merger. Qwen2-VL: C = `vision_config.embed_dim`, out = `vision_config.hidden_size`;
    /// Qwen2.5-VL: C = `vision_config.hidden_size`, out = `vision_config.out_hidden_size`, and
    /// `window_size` / `patch_size` for the un-permutation (`Qwen2VLVisionConfig` /
    /// `Qwen2_5_VLVisionConfig` defaults when absent: 1280 → 3584, 3584 → 3584, 112, 14). Errors:
    /// [`Error::Config`] for a merge size past 64 or a window smaller than one merge unit (the
    /// reference divides by zero there); [`Error::MissingWeight`] / [`Error::Shape`] from the weights.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<Qwen2VlMerger> {
        let v25 = cfg.str("model_type")? == "qwen2_5_vl";
        let vc = cfg.sub_or_default("vision_config");
        let (c, out) = match v25 {
            false => (vc.opt_usize("embed_dim")?.unwrap_or(1280), vc.opt_usize("hidden_size")?.unwrap_or(3584)),
            true => (vc.opt_usize("hidden_size")?.unwrap_or(3584), vc.opt_usize("out_hidden_size")?.unwrap_or(3584)),
        };
        let merge = vc.opt_usize("spatial_merge_size")?.unwrap_or(2);
        if merge > 64 {
            return Err(Error::config("vision_config.spatial_merge_size", format!("{merge}: at most 64 is supported")));
        }
        let ws = layouts::require(ws, ROOTS, "ln_q.weight")?;
        // The eps is 1e-6 in both classes' code, not read from the config.
        let norm = match v25 {
            false => Norm::Layer(LayerNorm::load(gpu, &ws.pp("ln_q"), c, 1e-6)?),
            true => Norm::Rms(RmsNorm::load(gpu, &ws.pp("ln_q"), c, 1e-6)?),
        };
        let wide = c * merge * merge;
        let fc1 = Linear::load(gpu, &ws.pp("mlp.0"), Some(wide), Some(wide), Bias::Required)?;
        let fc2 = Linear::load(gpu, &ws.pp("mlp.2"), Some(wide), Some(out), Bias::Required)?;
        let window_units = match v25 {
            false => None,
            true => {
                let (window, patch) = (vc.opt_usize("window_size")?.unwrap_or(112), vc.opt_usize("patch_size")?.unwrap_or(14));
                match window / merge / patch {
                    0 => {
                        let why = format!("{window}: smaller than one {merge}×{merge} merge unit of {patch}-px patches");
                        return Err(Error::config("vision_config.window_size", why));
                    }
                    units => Some(units),
                }
            }
        };
        Ok(Qwen2VlMerger { norm, fc1, fc2, in_features: c, merge, window_units })
    }

    /// ViT width C (the merger's input).
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// `spatial_merge_size` m: m² rows merge into one token.
    pub fn merge(&self) -> usize {
        self.merge
    }

    /// Qwen2.5-VL: `window_size // spatial_merge_size // patch_size` merge units per window side
    /// (the output is un-permuted from window order); `None` for Qwen2-VL.
    pub fn window_units(&self) -> Option<usize> {
        self.window_units
    }

    /// Records the merger. hidden_states [N, C] in the processor's (Qwen2-VL) or the tower's
    /// window (Qwen2.5-VL) order, `image_grid_thw` (t, h, w) per image in patches → [N / m², out],
    /// every image's tokens in row-major merge-unit order. Errors: [`Error::Shape`] / [`Error::Input`]
    /// when the grids disagree with N or do not divide by the merge size.
    pub fn forward(&self, rec: &mut Recorder, hidden_states: &Tensor, grid_thw: &[[usize; 3]]) -> Result<Tensor> {
        hidden_states.expect_float(rec.gpu(), "hidden_states")?;
        let m2 = self.merge * self.merge;
        let n = match *hidden_states.shape() {
            [n, c] if c == self.in_features => n,
            _ => return Err(Error::shape("hidden_states", format!("[N, {}]", self.in_features), hidden_states.shape())),
        };
        let mut total = 0usize;
        for (i, &[t, h, w]) in grid_thw.iter().enumerate() {
            if h % self.merge != 0 || w % self.merge != 0 {
                return Err(Error::input(
                    "image_grid_thw",
                    format!("image {i}: {h}×{w} patches do not split into {m}×{m} merge units", m = self.merge),
                ));
            }
            total = total.checked_add(t * h * w).ok_or_else(|| Error::input("image_grid_thw", "patch count overflows"))?;
        }
        if total != n {
            return Err(Error::input("image_grid_thw", format!("the grids hold {total} patches; hidden_states has {n} rows")));
        }
        let x = self.norm.forward(rec, hidden_states)?.reshape(&[n / m2, m2 * self.in_features])?;
        let h = self.fc1.forward(rec, &x, Activation::Gelu)?;
        let y = self.fc2.forward(rec, &h, Activation::Identity)?;
        match self.window_units {
            None => Ok(y),
            Some(vw) => record_gather_rows(rec, &y, &unpermute(grid_thw, self.merge, vw), "image_grid_thw"),
        }
    }
}

/// `argsort(window_index)` of Qwen2.5-VL's `get_window_index`: per image and frame, the merge-unit
/// grid cut into vw×vw windows from the top left (edge windows smaller), windows and the units in
/// them row-major; later images offset by earlier images' unit counts. Output row r of the merger
/// (row-major units) is window-order row `result[r]`.
pub fn unpermute(grid_thw: &[[usize; 3]], merge: usize, vw: usize) -> Vec<i64> {
    let mut window_index = Vec::new();
    let mut offset = 0;
    for &[t, h, w] in grid_thw {
        let (uh, uw) = (h / merge, w / merge);
        for f in 0..t {
            for wy in 0..uh.div_ceil(vw) {
                for wx in 0..uw.div_ceil(vw) {
                    for y in wy * vw..((wy + 1) * vw).min(uh) {
                        for x in wx * vw..((wx + 1) * vw).min(uw) {
                            window_index.push(offset + (f * uh + y) * uw + x);
                        }
                    }
                }
            }
        }
        offset += t * uh * uw;
    }
    let mut order: Vec<usize> = (0..window_index.len()).collect();
    order.sort_by_key(|&i| window_index[i]);
    order.into_iter().map(|i| i as i64).collect()
}

/// `image_grid_thw` [n, 3] as (t, h, w) triples of positive sizes.
pub(crate) fn grid_thw(inputs: &Inputs) -> Result<Vec<[usize; 3]>> {
    let (shape, v) = inputs.ints("image_grid_thw")?;
    match shape {
        [_, 3] if v.iter().all(|&x| (1..1 << 20).contains(&x)) => {
            Ok(v.chunks(3).map(|c| [c[0] as usize, c[1] as usize, c[2] as usize]).collect())
        }
        _ => Err(Error::input("image_grid_thw", format!("expected [n, 3] (t, h, w) in 1 ..< 2^20 per image, got {shape:?} {}", head(v)))),
    }
}

/// The first values of an integer input, for an error message of bounded size.
pub(crate) fn head(v: &[i64]) -> String {
    match v.len() {
        0..=12 => format!("{v:?}"),
        n => format!("{:?} … ({n} values)", &v[..12]),
    }
}

impl Model for Qwen2VlMerger {
    fn inputs(&self) -> &'static [&'static str] {
        &["hidden_states", "image_grid_thw"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        Ok(vec![("output", self.forward(rec, inputs.tensor("hidden_states")?, &grid_thw(inputs)?)?)])
    }
    fn describe(&self) -> Vec<String> {
        let m = self.merge;
        let v = match self.window_units {
            Some(vw) => format!("; output un-permuted from {vw}×{vw}-unit windows"),
            None => String::new(),
        };
        vec![format!(
            "merger: {m}×{m} patches of width {} → one token: norm, Linear {} → {}, GELU, Linear → {}{v}",
            self.in_features, self.fc1.in_features, self.fc1.out_features, self.fc2.out_features
        )]
    }
}
