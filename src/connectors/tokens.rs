//! Tokens per image, from a model's config alone: what `vlmc info MODEL_DIR` prints. Each line
//! follows the model's processor (transformers' `*Processor` / image processor defaults where the
//! config does not say).

use super::budget::{pixtral_grid, qwen_grid};
use super::AnyResPacker;
use crate::checkpoint::Config;
use crate::runtime::Result;

/// Vision-tower patches per side from `vision_config.image_size / patch_size` (the model's
/// defaults when absent; InternVL writes both as [h, w] lists, of which the height is taken).
fn side(cfg: &Config, image: usize, patch: usize) -> Result<usize> {
    let vc = cfg.sub_or_default("vision_config");
    let read = |key: &str, default: usize| -> Result<usize> {
        match vc.raw(key) {
            Some(serde_json::Value::Array(a)) => match a.first().and_then(|v| v.as_u64()) {
                Some(v) if v > 0 => Ok(v as usize),
                _ => Err(crate::Error::config(format!("vision_config.{key}"), format!("{a:?}: expected [h, w] positive integers"))),
            },
            _ => Ok(vc.opt_usize(key)?.unwrap_or(default)),
        }
    };
    Ok(read("image_size", image)? / read("patch_size", patch)?)
}

/// `vision_config.patch_size` · `spatial_merge_size` (read where each model keeps it): the side in
/// pixels of one merged token.
fn cell(cfg: &Config, merge_in_vision: bool) -> Result<usize> {
    let vc = cfg.sub_or_default("vision_config");
    let merge = if merge_in_vision { vc.opt_usize("spatial_merge_size")? } else { cfg.opt_usize("spatial_merge_size")? };
    Ok(vc.opt_usize("patch_size")?.unwrap_or(14) * merge.unwrap_or(2))
}

/// One line: how many tokens one image puts in the language model's context for this config
/// (and, where it depends on the image, the count for a 672×672 one). Errors: [`crate::Error::Config`]
/// for a malformed field it reads.
pub fn tokens_per_image(cfg: &Config) -> Result<String> {
    let model_type = cfg.str("model_type")?;
    let example = [672, 672];
    Ok(match model_type.as_str() {
        "llava" | "llava_llama" | "llava_mistral" | "llava_qwen" => {
            let s = side(cfg, 336, 14)?;
            let cls = cfg.opt_str("vision_feature_select_strategy")?.is_some_and(|v| v == "full") as usize;
            format!("{} (one per tower token: {s}×{s} patches{})", s * s + cls, if cls == 1 { " + CLS" } else { "" })
        }
        "llava_next" | "llava_next_video" => {
            let n = AnyResPacker::from_config(cfg)?.token_count(example)?;
            format!("depends on the image (AnyRes tiles, unpadding, a newline per row): {n} for 672×672")
        }
        "llava_onevision" => {
            "depends on the image (AnyRes tiles, anyres_max bilinear downsample, newlines); video frames ⌈side/2⌉² each".into()
        }
        "blip-2" | "instructblip" => format!("{} (num_query_tokens)", cfg.opt_usize("num_query_tokens")?.unwrap_or(32)),
        "open_flamingo" => {
            let n = cfg.sub_or_default("perceiver").opt_usize("num_latents")?.unwrap_or(64);
            format!("1 <image> token in the text; {n} latents per image reach it through gated cross-attention")
        }
        "idefics" => {
            let n = cfg.sub_or_default("perceiver_config").opt_usize("resampler_n_latents")?.unwrap_or(64);
            format!("1 <image> token in the text; {n} latents per image (with use_resampler) reach it through gated cross-attention")
        }
        "qwen2_vl" | "qwen2_5_vl" => {
            let f = cell(cfg, true)?;
            let [h, w] = qwen_grid(example, f)?;
            format!("one per merged {f}-px cell at the image's own resolution (smart_resize): {} for 672×672", h * w / 4)
        }
        "internvl" => {
            let s = side(cfg, 448, 14)?;
            let k = (1.0 / cfg.opt_f64("downsample_ratio")?.unwrap_or(0.5)).round().max(1.0) as usize;
            format!("{} per tile ({s}×{s} patches, pixel shuffle {k}×{k}); dynamic tiling adds tiles and a thumbnail", (s / k).pow(2))
        }
        "idefics3" | "smolvlm" => {
            // Idefics3VisionConfig's defaults: 224 px, 32-px patches.
            let s = side(cfg, 224, 32)?;
            let k = cfg.opt_usize("scale_factor")?.unwrap_or(2).max(1);
            format!("{} per tile ({s}×{s} patches, pixel shuffle {k}×{k}); image splitting adds tiles and a global view", (s / k).pow(2))
        }
        "gemma3" => format!("{} (mm_tokens_per_image)", cfg.opt_usize("mm_tokens_per_image")?.unwrap_or(256)),
        "paligemma" => {
            // PaliGemmaConfig without a vision_config: 14-px patches; SiglipVisionConfig's 16 otherwise.
            let s = side(cfg, 224, if cfg.has("vision_config") { 16 } else { 14 })?;
            format!("{} ({s}×{s} patches)", s * s)
        }
        "mistral3" => {
            let f = cell(cfg, false)?;
            let (_, n) = pixtral_grid(example, f);
            format!("rows·(cols + 1) for the image's grid of {f}-px cells (a break token per row): {n} for 672×672")
        }
        "mllama" => {
            let s = side(cfg, 448, 14)?;
            let tiles = cfg.sub_or_default("vision_config").opt_usize("max_num_tiles")?.unwrap_or(4);
            format!("1 <|image|> token in the text; up to {tiles} tiles × {} tokens reach it through cross-attention", s * s + 1)
        }
        "idefics2" => format!(
            "{} per image or crop (resampler_n_latents)",
            cfg.sub_or_default("perceiver_config").opt_usize("resampler_n_latents")?.unwrap_or(64)
        ),
        "pool2x2" => "a quarter of the input grid's tokens (⌊h/2⌋·⌊w/2⌋)".into(),
        "tome" => format!("the input's tokens less r = {}", cfg.opt_count("r")?.unwrap_or(0)),
        other => format!("not known for `{other}`"),
    })
}
