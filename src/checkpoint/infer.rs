//! A config for checkpoints that ship none: OpenFlamingo's released `checkpoint.pt` is a filtered
//! state dict and nothing else. What the tensors give is read from their names and shapes; what
//! they cannot give is OpenFlamingo's factory default (`open_flamingo/src/factory.py` builds
//! `PerceiverResampler(dim=vis_dim)` and `GatedCrossAttentionBlock(dim=lang_dim, dim_visual=vis_dim)`
//! with dim_head 64, heads 8, ff_mult 4, only_attend_immediate_media True), and is listed as assumed.

use serde_json::json;

use super::{layouts, Config, WeightSource};
use crate::runtime::{Error, Result};

/// A config made from a checkpoint's tensors, with what it read and what it assumed.
#[derive(Clone, Debug)]
pub struct Inferred {
    /// The config, as a `config.json` would hold it.
    pub config: Config,
    /// What was read from tensor names and shapes (`field = value (from tensor)`).
    pub derived: Vec<String>,
    /// Defaults assumed because no tensor gives them.
    pub assumed: Vec<String>,
}

fn dim(ws: &WeightSource, name: &str, axis: usize) -> Result<usize> {
    let shape = ws.shape(name).ok_or_else(|| Error::MissingWeight { name: name.to_string(), location: ws.location().to_string() })?;
    shape.get(axis).copied().filter(|&d| d > 0).ok_or_else(|| Error::shape(name, format!("a positive dimension {axis}"), shape))
}

/// An OpenFlamingo config from `perceiver.*` and the gated layers, when the checkpoint has either;
/// `None` for anything else.
pub fn openflamingo(ws: &WeightSource) -> Option<Result<Inferred>> {
    let gated = layouts::flamingo_gated_layers(ws);
    let names = ws.names();
    let perceiver = layouts::FLAMINGO_ROOT.iter().map(|r| if r.is_empty() { "perceiver".to_string() } else { format!("{r}.perceiver") });
    let perceiver = perceiver.into_iter().find(|p| names.contains(&format!("{p}.latents").as_str()));
    if perceiver.is_none() && gated.is_empty() {
        return None;
    }
    Some(openflamingo_from(ws, perceiver.as_deref(), &gated))
}

/// `ff.1.weight` [mult·dim, dim] → mult, refusing a width that is not a whole multiple.
fn ff_mult(ws: &WeightSource, name: &str, dim_: usize) -> Result<usize> {
    let ff = dim(ws, name, 0)?;
    if ff < dim_ || !ff.is_multiple_of(dim_) {
        return Err(Error::shape(name, format!("[ff_mult · {dim_}, {dim_}] with a whole ff_mult ≥ 1"), ws.shape(name)));
    }
    Ok(ff / dim_)
}

fn openflamingo_from(ws: &WeightSource, perceiver: Option<&str>, gated: &[String]) -> Result<Inferred> {
    let (mut derived, mut assumed) = (Vec::new(), Vec::new());
    let mut config = json!({"model_type": "open_flamingo"});
    let defaults = [("dim_head", 64), ("heads", 8)];
    if let Some(p) = perceiver {
        let latents = format!("{p}.latents");
        let (num_latents, vis) = (dim(ws, &latents, 0)?, dim(ws, &latents, 1)?);
        // Depth: the highest layer index + 1, so a missing layer is the loader's error, not a silent cut.
        let depth = ws
            .names()
            .iter()
            .filter_map(|n| n.strip_prefix(&format!("{p}.layers."))?.split('.').next()?.parse::<usize>().ok())
            .max()
            .map_or(0, |m| m + 1);
        let mult = ff_mult(ws, &format!("{p}.layers.0.1.1.weight"), vis)?;
        derived.push(format!("perceiver.dim = {vis}, num_latents = {num_latents} ({latents})"));
        derived.push(format!("perceiver.depth = {depth} ({p}.layers.*)"));
        derived.push(format!("perceiver.ff_mult = {mult} ({p}.layers.0.1.1.weight)"));
        config["perceiver"] = json!({"dim": vis, "depth": depth, "num_latents": num_latents, "ff_mult": mult});
        for (k, v) in defaults {
            config["perceiver"][k] = json!(v);
            assumed.push(format!("perceiver.{k} = {v}"));
        }
    }
    if let Some(first) = gated.first() {
        let at = |s: &str| format!("{first}.{s}");
        let (lang, visual) = (dim(ws, &at("attn.to_q.weight"), 1)?, dim(ws, &at("attn.to_kv.weight"), 1)?);
        let mult = ff_mult(ws, &at("ff.1.weight"), lang)?;
        derived.push(format!("gated_xattn.dim = {lang} ({first}.attn.to_q.weight), dim_visual = {visual} (attn.to_kv.weight)"));
        derived.push(format!("gated_xattn.ff_mult = {mult} ({first}.ff.1.weight); {} gated layers", gated.len()));
        config["gated_xattn"] = json!({"dim": lang, "dim_visual": visual, "ff_mult": mult, "only_attend_immediate_media": true});
        assumed.push("gated_xattn.only_attend_immediate_media = true".into());
        for (k, v) in defaults {
            config["gated_xattn"][k] = json!(v);
            assumed.push(format!("gated_xattn.{k} = {v}"));
        }
    }
    Ok(Inferred { config: Config::from_value(config), derived, assumed })
}

/// Sets `value` (JSON) at the dotted `path` of `config`: what `vlmc run --set gated_xattn.heads=16`
/// and `--layer N` do. The objects on the way must exist: `--layer` on a folder without a gated
/// block is an error naming the missing `gated_xattn`, not a half-made block.
pub fn set(config: &mut serde_json::Value, path: &str, value: serde_json::Value) -> Result<()> {
    let mut at = config;
    let mut parts = path.split('.').peekable();
    while let Some(key) = parts.next() {
        if key.is_empty() {
            return Err(Error::config(path, "empty key in a dotted path"));
        }
        let obj = at.as_object_mut().ok_or_else(|| Error::config(path, format!("`{key}` is inside a value that is not an object")))?;
        if parts.peek().is_none() {
            obj.insert(key.to_string(), value);
            return Ok(());
        }
        at = obj.get_mut(key).ok_or_else(|| Error::config(path, format!("this config has no `{key}`")))?;
    }
    Ok(())
}
