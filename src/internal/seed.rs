//! Connectors with seeded random weights (`WeightSource::random`) at the shapes the project is
//! measured at, loaded through the model registry like any checkpoint, in F32 or F16.

use crate::checkpoint::{Config, WeightSource};
use crate::connectors::Connector;
use crate::runtime::{DType, Gpu, Result};

fn load(gpu: &Gpu, config: serde_json::Value, seed: u64, dtype: DType) -> Result<Connector> {
    Connector::load(gpu, &Config::from_value(config), Some(&WeightSource::random(seed).with_dtype(dtype)?))
}

/// LLaVA-1.5 projector: 1024 → 4096 → 4096 (CLIP-L/336 into Vicuna-7B).
pub fn llava(gpu: &Gpu, dtype: DType) -> Result<Connector> {
    let c = serde_json::json!({"model_type": "llava", "projector_hidden_act": "gelu",
        "vision_config": {"hidden_size": 1024}, "text_config": {"hidden_size": 4096}});
    load(gpu, c, 1, dtype)
}

/// BLIP-2 Q-Former on ViT-g: 32 queries × 768, 12 layers, 12 heads, FFN 3072, into OPT-2.7b (2560).
pub fn qformer(gpu: &Gpu, dtype: DType) -> Result<Connector> {
    let c = serde_json::json!({"model_type": "blip-2", "num_query_tokens": 32,
        "qformer_config": {"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, "intermediate_size": 3072,
            "cross_attention_frequency": 2, "encoder_hidden_size": 1408, "hidden_act": "gelu", "layer_norm_eps": 1e-12},
        "text_config": {"hidden_size": 2560}});
    load(gpu, c, 2, dtype)
}

/// OpenFlamingo Perceiver on CLIP-L features: depth 6, 8 heads × 64, 64 latents.
pub fn perceiver(gpu: &Gpu, dtype: DType) -> Result<Connector> {
    let c = serde_json::json!({"model_type": "open_flamingo",
        "perceiver": {"dim": 1024, "depth": 6, "dim_head": 64, "heads": 8, "num_latents": 64, "ff_mult": 4}});
    load(gpu, c, 3, dtype)
}

/// One gated cross-attention block: 4096-wide text reading 1024-wide media, 8 heads × 64.
pub fn gated_xattn(gpu: &Gpu, dtype: DType) -> Result<Connector> {
    let c = serde_json::json!({"model_type": "open_flamingo",
        "gated_xattn": {"dim": 4096, "dim_visual": 1024, "dim_head": 64, "heads": 8, "ff_mult": 4,
            "only_attend_immediate_media": true}});
    load(gpu, c, 4, dtype)
}

/// 128 text tokens interleaving 4 images: an `<image>` token opens each quarter.
pub fn media_locations() -> Vec<i64> {
    (0..128).map(|i| (i % 32 == 0) as i64).collect()
}
