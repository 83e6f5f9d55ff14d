//! Key-layout aliases: the different names real checkpoints give the same tensors.
//! They live here and nowhere else.

use super::WeightSource;
use crate::runtime::{Error, Result};

/// HF LLaVA / LLaVA-NeXT projector: `save_pretrained` writes `multi_modal_projector.*`; newer
/// transformers nest the model under `model.`.
pub const LLAVA_HF_PROJECTOR: &[&str] = &["multi_modal_projector", "model.multi_modal_projector"];
/// Original LLaVA (`llava_llama`): `model.mm_projector.*`; a projector saved alone drops `model.`.
pub const LLAVA_ORIGINAL_PROJECTOR: &[&str] = &["model.mm_projector", "mm_projector"];
/// LLaVA-NeXT's learned newline embedding.
pub const LLAVA_NEXT_NEWLINE: &[&str] = &["image_newline", "model.image_newline"];
/// BLIP-2 parts (with or without a leading `model.`).
pub const BLIP2_ROOT: &[&str] = &["", "model"];
/// IDEFICS parts: `IdeficsForVisionText2Text` saves `model.*`, a bare `IdeficsModel` drops it.
pub const IDEFICS_ROOT: &[&str] = &["model", ""];
/// OpenFlamingo parts (plain state dict, or wrapped under `model.`).
pub const FLAMINGO_ROOT: &[&str] = &["", "model"];

/// The first prefix under which `probe` exists.
pub fn find(ws: &WeightSource, candidates: &[&str], probe: &str) -> Option<WeightSource> {
    candidates.iter().map(|p| ws.pp(p)).find(|w| w.contains(probe))
}

/// [`find`], or [`Error::MissingWeight`] naming every full name tried.
pub fn require(ws: &WeightSource, candidates: &[&str], probe: &str) -> Result<WeightSource> {
    find(ws, candidates, probe).ok_or_else(|| Error::MissingWeight { name: tried(candidates, probe), location: ws.location().to_string() })
}

/// The first of `names` that exists as a tensor.
pub fn find_tensor<'a>(ws: &WeightSource, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|n| ws.contains(n))
}

/// The full names tried, for error messages.
pub fn tried(candidates: &[&str], probe: &str) -> String {
    candidates.iter().map(|p| if p.is_empty() { probe.to_string() } else { format!("{p}.{probe}") }).collect::<Vec<_>>().join(" or ")
}

/// OpenFlamingo's gated layers as `Flamingo` keeps them (`{root}.{i}`): what a config-based
/// checkpoint names; `i` is the layer's index.
pub const FLAMINGO_GATED_ROOTS: &[&str] =
    &["lang_encoder.gated_cross_attn_layers", "model.lang_encoder.gated_cross_attn_layers", "gated_cross_attn_layers"];
/// The decoder blocks a released `checkpoint.pt` keeps them in (`{root}.{block}.gated_cross_attn_layer`):
/// LLaMA / MPT / GPT-NeoX language models (OpenFlamingo `decoder_layers_attr_name`).
pub const FLAMINGO_DECODER_ROOTS: &[&str] = &[
    "lang_encoder.model.layers",
    "lang_encoder.transformer.blocks",
    "lang_encoder.gpt_neox.layers",
    "model.lang_encoder.model.layers",
    "model.lang_encoder.transformer.blocks",
    "model.lang_encoder.gpt_neox.layers",
];

/// Every gated cross-attention layer in `ws`, in order, as the prefix of its `attn_gate`: the
/// decoder blocks' `gated_cross_attn_layer`s by block when there are any (the j-th is
/// OpenFlamingo's j-th non-None gated layer; an unfiltered state dict also holds the
/// `gated_cross_attn_layers.{block}` duplicates, which these win over), else `{root}.{i}` by `i`.
pub fn flamingo_gated_layers(ws: &WeightSource) -> Vec<String> {
    let prefixes: Vec<&str> = ws.names().into_iter().filter_map(|n| n.strip_suffix(".attn_gate")).collect();
    let indexed = |root: &str, suffix: &str| -> Vec<(usize, String)> {
        let mut v: Vec<(usize, String)> = prefixes
            .iter()
            .filter_map(|p| Some((p.strip_prefix(root)?.strip_prefix('.')?.strip_suffix(suffix)?.parse().ok()?, p.to_string())))
            .collect();
        v.sort();
        v
    };
    for root in FLAMINGO_DECODER_ROOTS {
        let v = indexed(root, ".gated_cross_attn_layer");
        if !v.is_empty() {
            return v.into_iter().map(|(_, p)| p).collect();
        }
    }
    for root in FLAMINGO_GATED_ROOTS {
        let v = indexed(root, "");
        if !v.is_empty() {
            return v.into_iter().map(|(_, p)| p).collect();
        }
    }
    Vec::new()
}
