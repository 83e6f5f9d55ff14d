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

/// LLaVA-1.5 from pixels: CLIP ViT-L/14-336 (24 layers, 16 heads, quick_gelu) run to
/// `layers` (23 = LLaVA's −2), then the 1024 → 4096 → 4096 projector. Input `pixel_values`
/// [1, 3, 336, 336]; output [1, 576, 4096].
pub fn llava_pixels(gpu: &Gpu, dtype: DType, layers: usize) -> Result<Connector> {
    let c = serde_json::json!({"model_type": "llava", "load_vision_tower": true, "projector_hidden_act": "gelu",
        "vision_feature_layer": layers, "vision_feature_select_strategy": "default",
        "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024, "intermediate_size": 4096,
            "num_attention_heads": 16, "num_hidden_layers": 24, "image_size": 336, "patch_size": 14, "hidden_act": "quick_gelu"},
        "text_config": {"hidden_size": 4096}});
    load(gpu, c, 7, dtype)
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

/// A zoo connector at a released model's shapes, and the inputs one image gives it: tensors to fill
/// with random values (name, shape) and integer inputs (name, shape, values).
#[derive(Debug)]
pub struct ZooSeed {
    /// The connector, with seeded random weights.
    pub connector: Connector,
    /// Float inputs: (name, shape).
    pub tensors: Vec<(&'static str, Vec<usize>)>,
    /// Integer inputs: (name, shape, values).
    pub ints: Vec<(&'static str, Vec<usize>, Vec<i64>)>,
}

/// The zoo's connectors (and InstructBLIP's and IDEFICS's) at the shapes of the model `vlmc budget`
/// names for them, for an image of
/// (h, w) pixels where the model's resolution is dynamic (Qwen2-VL / Qwen2.5-VL: `grid` (h, w) in
/// 14-px patches; Mistral 3: (h, w) patches of 14 px). `None` for a `model_type` outside the zoo.
pub fn zoo(gpu: &Gpu, model_type: &str, grid: [usize; 2], dtype: DType) -> Result<Option<ZooSeed>> {
    use serde_json::json;
    let [gh, gw] = grid;
    type Floats = Vec<(&'static str, Vec<usize>)>;
    type Ints = Vec<(&'static str, Vec<usize>, Vec<i64>)>;
    let (config, tensors, ints): (_, Floats, Ints) = match model_type {
        // Qwen2-VL-7B: ViT 1280 → LM 3584.
        "qwen2_vl" => (
            json!({"model_type": "qwen2_vl", "vision_config": {"embed_dim": 1280, "hidden_size": 3584, "spatial_merge_size": 2}}),
            vec![("hidden_states", vec![gh * gw, 1280])],
            vec![("image_grid_thw", vec![1, 3], vec![1, gh as i64, gw as i64])],
        ),
        // Qwen2.5-VL-7B: the same widths, window order undone.
        "qwen2_5_vl" => (
            json!({"model_type": "qwen2_5_vl", "vision_config": {"hidden_size": 1280, "out_hidden_size": 3584,
                "spatial_merge_size": 2, "window_size": 112, "patch_size": 14}}),
            vec![("hidden_states", vec![gh * gw, 1280])],
            vec![("image_grid_thw", vec![1, 3], vec![1, gh as i64, gw as i64])],
        ),
        // InternVL3-8B: InternViT-300M (1024) at 448 px, one tile: CLS + 32×32 → 256 tokens of 3584.
        "internvl" => (
            json!({"model_type": "internvl", "downsample_ratio": 0.5, "vision_config": {"hidden_size": 1024},
                "text_config": {"hidden_size": 3584}}),
            vec![("image_features", vec![1, 1025, 1024])],
            vec![],
        ),
        // Idefics3-8B: SigLIP (1152) at 364 px, 26×26 patches, scale 2 → 169 tokens of 4096 per tile.
        "idefics3" => (
            json!({"model_type": "idefics3", "scale_factor": 2, "vision_config": {"hidden_size": 1152},
                "text_config": {"hidden_size": 4096}}),
            vec![("image_hidden_states", vec![1, 676, 1152])],
            vec![],
        ),
        // Gemma 3 4B: SigLIP at 896 px (64×64 patches) pooled 4×4 → 256 tokens of 2560.
        "gemma3" => (
            json!({"model_type": "gemma3", "mm_tokens_per_image": 256, "vision_config": {"hidden_size": 1152,
                "image_size": 896, "patch_size": 14}, "text_config": {"hidden_size": 2560}}),
            vec![("vision_outputs", vec![1, 4096, 1152])],
            vec![],
        ),
        // PaliGemma-3B-224: SigLIP 16×16 patches → 256 tokens of 2048.
        "paligemma" => (
            json!({"model_type": "paligemma", "vision_config": {"hidden_size": 1152, "projection_dim": 2048}}),
            vec![("image_features", vec![1, 256, 1152])],
            vec![],
        ),
        // Mistral-Small-3.1-24B: Pixtral (1024, 14-px patches) → LM 5120.
        "mistral3" => (
            json!({"model_type": "mistral3", "spatial_merge_size": 2, "vision_config": {"hidden_size": 1024, "patch_size": 14},
                "text_config": {"hidden_size": 5120, "rms_norm_eps": 1e-5}}),
            vec![("image_features", vec![gh * gw, 1024])],
            vec![("image_sizes", vec![1, 2], vec![14 * gh as i64, 14 * gw as i64])],
        ),
        // Llama-3.2-11B-Vision: 4 tiles × 1601 tokens of 7680 → 4096; the layer on 128 text tokens.
        "mllama" => (
            json!({"model_type": "mllama", "vision_config": {"vision_output_dim": 7680},
                "text_config": {"hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
                    "intermediate_size": 14336, "rms_norm_eps": 1e-5, "cross_attention_layers": [3]}}),
            vec![("hidden_states", vec![1, 128, 4096]), ("cross_attention_states", vec![1, 1, 4, 1601, 7680])],
            vec![("cross_attention_mask", vec![1, 128, 1, 4], vec![1; 512])],
        ),
        // Idefics2-8B: SigLIP at 980 px (70×70 patches) → SwiGLU 1152 → 14336 → 4096, Perceiver to 64.
        "idefics2" => (
            json!({"model_type": "idefics2", "vision_config": {"hidden_size": 1152},
                "text_config": {"hidden_size": 4096, "intermediate_size": 14336, "hidden_act": "silu"},
                "perceiver_config": {"hidden_size": 4096, "resampler_n_latents": 64, "resampler_depth": 3,
                    "resampler_n_heads": 16, "resampler_head_dim": 96, "num_key_value_heads": 4, "rms_norm_eps": 1e-5}}),
            vec![("image_hidden_states", vec![1, 4900, 1152])],
            vec![],
        ),
        // InstructBLIP-Vicuna-7B: BLIP-2's Q-Former reading a 32-token instruction, into 4096.
        "instructblip" => (
            json!({"model_type": "instructblip", "num_query_tokens": 32,
                "qformer_config": {"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, "intermediate_size": 3072,
                    "cross_attention_frequency": 2, "encoder_hidden_size": 1408, "hidden_act": "gelu", "layer_norm_eps": 1e-12,
                    "vocab_size": 30523, "max_position_embeddings": 512},
                "text_config": {"hidden_size": 4096}}),
            vec![("image_embeds", vec![1, 257, 1408])],
            vec![("qformer_input_ids", vec![1, 32], (0..32).collect()), ("qformer_attention_mask", vec![1, 32], vec![1; 32])],
        ),
        // IDEFICS-9B's Perceiver: 257 ViT-H tokens (1280) → 64 latents, 6 layers of 16 heads × 96.
        "idefics" => (
            json!({"model_type": "idefics", "hidden_size": 4096, "num_attention_heads": 32, "intermediate_size": 11008,
                "num_hidden_layers": 32, "cross_layer_interval": 4, "use_resampler": true, "vision_config": {"embed_dim": 1280},
                "perceiver_config": {"resampler_depth": 6, "resampler_head_dim": 96, "resampler_n_heads": 16, "resampler_n_latents": 64}}),
            vec![("image_hidden_states", vec![1, 257, 1280])],
            vec![],
        ),
        _ => return Ok(None),
    };
    Ok(Some(ZooSeed { connector: load(gpu, config, 5, dtype)?, tensors, ints }))
}
