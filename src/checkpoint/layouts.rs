//! Key-layout aliases: the different names real checkpoints give the same tensors.
//! They live here and nowhere else.

use super::WeightSource;

/// HF LLaVA / LLaVA-NeXT projector: `save_pretrained` writes `multi_modal_projector.*`; newer
/// transformers nest the model under `model.`.
pub const LLAVA_HF_PROJECTOR: &[&str] = &["multi_modal_projector", "model.multi_modal_projector"];
/// Original LLaVA (`llava_llama`): `model.mm_projector.*`; a projector saved alone drops `model.`.
pub const LLAVA_ORIGINAL_PROJECTOR: &[&str] = &["model.mm_projector", "mm_projector"];
/// LLaVA-NeXT's learned newline embedding.
pub const LLAVA_NEXT_NEWLINE: &[&str] = &["image_newline", "model.image_newline"];
/// BLIP-2 parts (with or without a leading `model.`).
pub const BLIP2_ROOT: &[&str] = &["", "model"];
/// OpenFlamingo parts (plain state dict, or wrapped under `model.`).
pub const FLAMINGO_ROOT: &[&str] = &["", "model"];

/// The first prefix under which `probe` exists.
pub fn find(ws: &WeightSource, candidates: &[&str], probe: &str) -> Option<WeightSource> {
    candidates.iter().map(|p| ws.pp(p)).find(|w| w.contains(probe))
}

/// The first of `names` that exists as a tensor.
pub fn find_tensor<'a>(ws: &WeightSource, names: &[&'a str]) -> Option<&'a str> {
    names.iter().copied().find(|n| ws.contains(n))
}

/// The full names tried, for error messages.
pub fn tried(candidates: &[&str], probe: &str) -> String {
    candidates.iter().map(|p| if p.is_empty() { probe.to_string() } else { format!("{p}.{probe}") }).collect::<Vec<_>>().join(" or ")
}
