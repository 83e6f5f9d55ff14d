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
    if !ws.names().contains(&"perceiver.latents") && gated.is_empty() {
        return None;
    }
    Some(openflamingo_from(ws, &gated))
}

fn openflamingo_from(ws: &WeightSource, gated: &[String]) -> Result<Inferred> {
    let (mut derived, mut assumed) = (Vec::new(), Vec::new());
    let mut config = json!({"model_type": "open_flamingo"});
    let defaults = [("dim_head", 64), ("heads", 8)];
    if ws.contains("perceiver.latents") {
        let (num_latents, vis) = (dim(ws, "perceiver.latents", 0)?, dim(ws, "perceiver.latents", 1)?);
        let depth = (0..).take_while(|i| ws.contains(&format!("perceiver.layers.{i}.0.to_q.weight"))).count();
        let ff = dim(ws, "perceiver.layers.0.1.1.weight", 0)?;
        derived.push(format!("perceiver.dim = {vis}, num_latents = {num_latents} (perceiver.latents)"));
        derived.push(format!("perceiver.depth = {depth} (perceiver.layers.*)"));
        derived.push(format!("perceiver.ff_mult = {} (perceiver.layers.0.1.1.weight)", ff / vis));
        config["perceiver"] = json!({"dim": vis, "depth": depth, "num_latents": num_latents, "ff_mult": ff / vis});
        for (k, v) in defaults {
            config["perceiver"][k] = json!(v);
            assumed.push(format!("perceiver.{k} = {v}"));
        }
    }
    if let Some(first) = gated.first() {
        let at = |s: &str| format!("{first}.{s}");
        let (lang, visual) = (dim(ws, &at("attn.to_q.weight"), 1)?, dim(ws, &at("attn.to_kv.weight"), 1)?);
        let ff = dim(ws, &at("ff.1.weight"), 0)?;
        derived.push(format!("gated_xattn.dim = {lang} ({first}.attn.to_q.weight), dim_visual = {visual} (attn.to_kv.weight)"));
        derived.push(format!("gated_xattn.ff_mult = {} ({first}.ff.1.weight); {} gated layers", ff / lang, gated.len()));
        config["gated_xattn"] = json!({"dim": lang, "dim_visual": visual, "ff_mult": ff / lang, "only_attend_immediate_media": true});
        assumed.push("gated_xattn.only_attend_immediate_media = true".into());
        for (k, v) in defaults {
            config["gated_xattn"][k] = json!(v);
            assumed.push(format!("gated_xattn.{k} = {v}"));
        }
    }
    Ok(Inferred { config: Config::from_value(config), derived, assumed })
}

/// Sets `value` (JSON) at the dotted `path` of `config`, creating objects on the way: what
/// `vlmc run --set gated_xattn.heads=16` and `--layer N` do to a config.
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
        at = obj.entry(key).or_insert_with(|| json!({}));
    }
    Ok(())
}
