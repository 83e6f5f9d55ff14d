//! Checkpoint loading: config.json → typed configs, safetensors → `WeightSource`.

pub mod config;
pub mod layouts;
pub mod random;
pub mod weights;

pub use config::Config;
pub use weights::{save_f32, HostTensor, WeightSource};
