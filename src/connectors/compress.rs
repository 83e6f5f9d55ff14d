//! Token compression stages: 2×2 spatial pooling and Token Merging (ToMe).

use super::registry::{Inputs, Model, Named};
use crate::checkpoint::Config;
use crate::kernels::pool::record_avg_pool2x2;
use crate::kernels::tome::{effective_r, record_tome};
use crate::runtime::{Error, Recorder, Result, Tensor};

/// 2×2 average pooling over an h × w token grid (576 → 144 for a 24 × 24 CLIP grid).
#[derive(Clone, Copy, Debug)]
pub struct Pool2x2 {
    /// Token grid (h, w) of the input.
    pub grid: [usize; 2],
}

impl Pool2x2 {
    /// Loads a `pool2x2` stage folder (`config.json` only).
    pub fn from_dir(gpu: &crate::Gpu, dir: impl AsRef<std::path::Path>) -> Result<Pool2x2> {
        super::Connector::from_dir(gpu, dir)?.into_model()
    }

    /// From a `pool2x2` stage config: `{"grid": [h, w]}`.
    pub fn from_config(cfg: &Config) -> Result<Pool2x2> {
        let g = cfg.raw("grid").and_then(|v| v.as_array()).map(|a| a.iter().map(|x| x.as_u64()).collect::<Vec<_>>());
        match g.as_deref() {
            Some([Some(h), Some(w)]) if *h > 0 && *w > 0 && *h < (1 << 20) && *w < (1 << 20) => {
                Ok(Pool2x2 { grid: [*h as usize, *w as usize] })
            }
            _ => Err(Error::config("grid", "expected [h, w] with positive sides")),
        }
    }

    /// Tokens after pooling: ⌊h/2⌋·⌊w/2⌋.
    pub fn output_tokens(&self) -> usize {
        (self.grid[0] / 2) * (self.grid[1] / 2)
    }

    /// tokens [b, h·w, C] → [b, (h/2)·(w/2), C].
    pub fn forward(&self, rec: &mut Recorder, tokens: &Tensor) -> Result<Tensor> {
        tokens.expect_float(rec.gpu(), "tokens")?;
        record_avg_pool2x2(rec, tokens, self.grid[0], self.grid[1])
    }
}

/// ToMe's bipartite soft matching with size-weighted averaging. Rounds compose: feed the returned
/// sizes into the next round.
#[derive(Clone, Copy, Debug)]
pub struct TokenMerger {
    /// Tokens to merge away (capped at half the mergeable tokens, as ToMe does).
    pub r: usize,
    /// Whether token 0 is a class token that is never merged.
    pub class_token: bool,
}

impl TokenMerger {
    /// Loads a `tome` stage folder (`config.json` only).
    pub fn from_dir(gpu: &crate::Gpu, dir: impl AsRef<std::path::Path>) -> Result<TokenMerger> {
        super::Connector::from_dir(gpu, dir)?.into_model()
    }

    /// From a `tome` stage config: `{"r": 6, "class_token": false}`.
    pub fn from_config(cfg: &Config) -> Result<TokenMerger> {
        let r = cfg.raw("r").and_then(|v| v.as_u64()).ok_or_else(|| Error::config("r", "expected a non-negative integer"))? as usize;
        if cfg.opt_bool("distill_token")?.unwrap_or(false) {
            return Err(Error::config("distill_token", "true: protecting DeiT's distillation token is not implemented"));
        }
        Ok(TokenMerger { r, class_token: cfg.opt_bool("class_token")?.unwrap_or(false) })
    }

    /// Tokens left from `t` after one round.
    pub fn output_tokens(&self, t: usize) -> usize {
        t - effective_r(t, self.r, self.class_token)
    }

    /// (tokens [b, t, C], metric [b, t, Cm], size [b, t, 1]) → (merged [b, t − r', C],
    /// size [b, t − r', 1]) with r' = min(r, mergeable / 2) ([`Self::output_tokens`]); r' = 0 returns
    /// the tokens unchanged, as ToMe does. Errors: shapes ([`crate::Error::Shape`]).
    pub fn forward(&self, rec: &mut Recorder, tokens: &Tensor, metric: &Tensor, size: &Tensor) -> Result<(Tensor, Tensor)> {
        tokens.expect_float(rec.gpu(), "tokens")?;
        metric.expect_float(rec.gpu(), "metric")?;
        size.expect_float(rec.gpu(), "size")?;
        record_tome(rec, tokens, metric, size, self.r, self.class_token)
    }
}

impl Model for Pool2x2 {
    fn inputs(&self) -> &'static [&'static str] {
        &["tokens"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        Ok(vec![("output", self.forward(rec, inputs.tensor("tokens")?)?)])
    }
    fn describe(&self) -> Vec<String> {
        let [h, w] = self.grid;
        vec![format!("2×2 average pooling of a {h}×{w} grid: {} → {} tokens", h * w, self.output_tokens())]
    }
}

impl Model for TokenMerger {
    fn inputs(&self) -> &'static [&'static str] {
        &["tokens", "metric", "size"]
    }
    /// Without `size` every token counts once (`merge_wavg`: `size = ones_like(x[..., 0, None])`).
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let (x, metric) = (inputs.tensor("tokens")?, inputs.tensor("metric")?);
        let ones;
        let size = match inputs.contains("size") {
            true => inputs.tensor("size")?,
            false => {
                // Sized from metric [b, t, Cm ≥ 1], whose data bounds b·t (tokens may have C = 0).
                let (b, t) = match *metric.shape() {
                    [b, t, cm] if cm > 0 => (b, t),
                    _ => return Err(Error::shape("metric", "[b, t, Cm]", metric.shape())),
                };
                ones = Tensor::from_host(rec.gpu(), &vec![1.0; b * t], &[b, t, 1], x.dtype())?;
                &ones
            }
        };
        let (x, size) = self.forward(rec, x, metric, size)?;
        Ok(vec![("output", x), ("size", size)])
    }
    fn describe(&self) -> Vec<String> {
        vec![format!(
            "ToMe: r = {} merges per image (t → t − r, clamped as merge.py does); class token kept apart: {}",
            self.r, self.class_token
        )]
    }
}
