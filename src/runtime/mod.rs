//! Runtime: GPU context, tensors, buffer pool, the per-forward recorder, and the error type.

pub mod error;
pub mod gpu;
mod options;
pub(crate) mod pool;
pub mod profile;
pub(crate) use pool::{READY, UNWRITTEN};
pub mod recorder;
pub mod tensor;
pub mod tune;
pub mod tune_cache;

pub use error::{Error, Result};
pub(crate) use gpu::block_on;
#[cfg(not(target_arch = "wasm32"))]
pub use gpu::enumerate_adapters;
pub use gpu::{Gpu, GpuOptions};
pub use recorder::{Cost, DispatchProfile, Recorder, Timing};
pub use tensor::{DType, Tensor};
pub use tune::Tuner;
