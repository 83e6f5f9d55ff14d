//! Connectors, one file per family, and the model registry that picks one from `config.json`'s
//! `model_type` ([`registry`]: `Connector::from_dir`, `Connector::run`, what `vlmc run` does).

pub mod budget;
pub mod compress;
pub mod from_pixels;
pub mod gated_xattn;
pub mod gemma;
pub mod idefics;
pub mod idefics2;
pub mod idefics_gated;
pub mod inputs;
pub mod instructblip;
pub mod llava;
pub mod llava_next;
pub mod llava_onevision;
pub mod mistral3;
pub mod mllama;
pub mod models;
pub mod open_flamingo;
pub mod perceiver;
pub mod pixel_shuffle;
pub mod qformer;
pub mod qwen2_vl;
pub mod registry;
pub mod tokens;
pub mod vision_tower;

pub use compress::{Pool2x2, TokenMerger};
pub use from_pixels::{Blip2FromPixels, LlavaFromPixels, LlavaNextFromPixels};
pub use gated_xattn::{GatedCrossAttention, GatedXattnConfig};
pub use gemma::GemmaProjector;
pub use idefics::Idefics;
pub use idefics2::Idefics2Connector;
pub use idefics_gated::{IdeficsGatedConfig, IdeficsGatedCrossAttention, ImageAttentionMask};
pub use inputs::{Input, Inputs, Output, Outputs};
pub use instructblip::InstructBlip;
pub use llava::{LlavaNextVideo, LlavaProjector};
pub use llava_next::{AnyResPacker, LlavaNext};
pub use llava_onevision::LlavaOnevision;
pub use mistral3::Mistral3Projector;
pub use mllama::Mllama;
pub use open_flamingo::OpenFlamingo;
pub use perceiver::{PerceiverConfig, PerceiverResampler};
pub use pixel_shuffle::PixelShuffleProjector;
pub use qformer::{QFormer, QFormerConfig};
pub use qwen2_vl::Qwen2VlMerger;
pub use registry::{Connector, LoadOptions, Model, ModelEntry, MODELS};
pub use vision_tower::VisionTower;
