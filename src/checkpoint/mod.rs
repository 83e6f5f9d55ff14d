//! Checkpoint loading: config.json → typed configs (or one inferred from the tensors, `infer`),
//! safetensors and PyTorch checkpoints → `WeightSource`, key-layout aliases (`layouts`).

pub mod config;
pub mod infer;
pub mod layouts;
pub mod random;
pub(crate) mod shards;
pub(crate) mod stored;
pub(crate) mod torch;
pub mod weights;

pub use config::Config;
pub use weights::{save_f32, save_tensors, HostTensor, WeightSource};
