//! `open_flamingo`: a Perceiver Resampler, a gated cross-attention block, or both (the
//! Perceiver's output is then the block's media), as OpenFlamingo's `Flamingo` wires them
//! (`open_flamingo/src/flamingo.py`).

use super::registry::{Inputs, Model, Named};
use super::{GatedCrossAttention, GatedXattnConfig, PerceiverConfig, PerceiverResampler};
use crate::checkpoint::{Config, WeightSource};
use crate::runtime::{Error, Gpu, Recorder, Result};

/// The blocks an `open_flamingo` config names: `perceiver`, `gated_xattn`, or both.
#[derive(Debug)]
pub struct OpenFlamingo {
    /// The Perceiver Resampler, when the config has a `perceiver` object.
    pub perceiver: Option<PerceiverResampler>,
    /// The gated cross-attention block, when the config has a `gated_xattn` object.
    pub gated: Option<GatedCrossAttention>,
}

impl OpenFlamingo {
    /// Loads an `open_flamingo` folder (`config.json` + safetensors or the weights of a checkpoint).
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<std::path::Path>) -> Result<OpenFlamingo> {
        super::Connector::from_dir(gpu, dir)?.into_model()
    }

    /// Loads the blocks the config's `perceiver` / `gated_xattn` objects describe; a top-level
    /// `layer_index` picks the gated layer (see [`GatedXattnConfig::layer_index`]).
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<OpenFlamingo> {
        let perceiver = cfg.sub("perceiver").map(|c| PerceiverResampler::load(gpu, PerceiverConfig::from_config(&c)?, ws)).transpose()?;
        // The top-level `layer_index` (`vlmc run --layer N`) wins over `gated_xattn.layer_index`.
        let layer = cfg.opt_index("layer_index")?;
        let gated = cfg
            .sub("gated_xattn")
            .map(|c| {
                let c = GatedXattnConfig {
                    layer_index: layer.or(GatedXattnConfig::from_config(&c)?.layer_index),
                    ..GatedXattnConfig::from_config(&c)?
                };
                GatedCrossAttention::load(gpu, c, ws)
            })
            .transpose()?;
        if perceiver.is_none() && gated.is_none() {
            return Err(Error::config("open_flamingo", "needs a `perceiver` or a `gated_xattn` block"));
        }
        Ok(OpenFlamingo { perceiver, gated })
    }
}

/// `media_locations` [b, L] as bytes. OpenFlamingo builds it as `input_ids == media_token_id`
/// (`flamingo.py`), a 0/1 mask, and its `cumsum` counts larger values; they are kept up to 255
/// (one byte per token). A negative value, which would make `text_time` go back, or one past 255 is
/// an error that names its row and value.
pub fn locations_u8(shape: &[usize], values: &[i64]) -> Result<(usize, usize, Vec<u8>)> {
    let (b, len) = match *shape {
        [b, l] => (b, l),
        _ => return Err(Error::shape("media_locations", "[b, L]", shape)),
    };
    if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !(0..=255).contains(*v)) {
        return Err(Error::input(
            "media_locations",
            format!("row {} holds {v}; expected a count of <image> tokens, 0 ..= 255", i / len.max(1)),
        ));
    }
    Ok((b, len, values.iter().map(|&v| v as u8).collect()))
}

impl Model for OpenFlamingo {
    fn inputs(&self) -> &'static [&'static str] {
        match (&self.perceiver, &self.gated) {
            (Some(_), None) => &["vision_features"],
            (None, _) => &["hidden_states", "media", "media_locations"],
            (Some(_), Some(_)) => &["vision_features", "hidden_states", "media", "media_locations"],
        }
    }

    /// With both blocks the inputs pick the path, as the reference's cases do: `hidden_states`
    /// runs the gated layer (on `media`, or on the Perceiver's output of `vision_features`);
    /// without it, `vision_features` runs the Perceiver alone.
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let text = self.gated.is_some() && (self.perceiver.is_none() || inputs.contains("hidden_states"));
        if self.perceiver.is_some() && self.gated.is_some() {
            // Inputs that would be silently ignored are an error instead.
            if text && inputs.contains("media") && inputs.contains("vision_features") {
                return Err(Error::input("media", "give `media` or `vision_features` (the Perceiver makes the media), not both"));
            }
            if !text && (inputs.contains("media") || inputs.contains("media_locations")) {
                return Err(Error::input(
                    "hidden_states",
                    "missing: `media` / `media_locations` run the gated layer, which needs the text",
                ));
            }
        }
        let media = match &self.perceiver {
            Some(p) if !(text && inputs.contains("media")) => p.forward(rec, inputs.tensor("vision_features")?)?,
            _ => inputs.tensor("media")?.clone(),
        };
        let (Some(gx), true) = (&self.gated, text) else { return Ok(vec![("output", media)]) };
        let x = inputs.tensor("hidden_states")?;
        let (shape, values) = inputs.ints("media_locations")?;
        let (b, len, locs) = locations_u8(shape, values)?;
        if media.rank() != 4 {
            return Err(Error::shape("media", "[b, T_img, n, dim_visual]", media.shape()));
        }
        let t_img = media.shape()[1];
        let packed = gx.upload_locations(rec.gpu(), &locs, b, len, t_img)?;
        let y = gx.forward(rec, x, &media, &packed)?;
        Ok(if self.perceiver.is_some() && !inputs.contains("media") { vec![("output", y), ("media", media)] } else { vec![("output", y)] })
    }
    fn describe(&self) -> Vec<String> {
        self.perceiver.iter().map(|p| p.summary()).chain(self.gated.iter().map(|g| g.summary())).collect()
    }
}
