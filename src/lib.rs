//! # vlm-connectors
//!
//! Vision-language connectors as hand-written WGSL compute shaders on wgpu: the LLaVA projector,
//! the BLIP-2 Q-Former, Flamingo's Perceiver Resampler and gated cross-attention, and the token
//! compression around them. Loaded straight from Hugging Face checkpoint folders.
//!
//! Layers (each uses only the ones below it):
//! - [`connectors`]: LLaVA, Q-Former, Perceiver, gated cross-attention, ...
//! - [`nn`]: Linear, LayerNorm, Attention, FeedForward
//! - [`preprocess`]: image decoding and transformers' image processors (PIL backend)
//! - [`checkpoint`]: config.json and safetensors (mmap, sharded, F32/F16/BF16)
//! - [`kernels`]: WGSL kernels with typed launchers and CPU references
//! - [`runtime`]: GPU context, tensors, buffer pool, recorder, errors
//!
//! A forward records every kernel into one [`Recorder`] and submits once:
//!
//! ```no_run
//! use vlm_connectors::{Gpu, Recorder, Tensor, connectors::LlavaProjector};
//! let gpu = Gpu::new()?;
//! let proj = LlavaProjector::from_dir(&gpu, "path/to/llava-1.5-7b-hf")?;
//! let x = Tensor::from_slice(&gpu, &vec![0.1; 576 * 1024], &[1, 576, 1024])?;
//! let mut rec = Recorder::new(&gpu);
//! let y = proj.forward(&mut rec, &x)?;
//! rec.submit()?;
//! let tokens: Vec<f32> = y.to_vec(&gpu)?;
//! # Ok::<(), vlm_connectors::Error>(())
//! ```

#![warn(missing_docs, missing_debug_implementations)]

pub mod checkpoint;
pub mod connectors;
#[doc(hidden)]
pub mod internal;
pub mod kernels;
pub mod nn;
pub mod preprocess;
pub mod runtime;
pub mod util;

pub use runtime::{DType, Error, Gpu, GpuOptions, Recorder, Result, Tensor};
/// The wgpu this crate is built on (for `GpuOptions`, `Gpu::from_device` and `Tensor::buffer`).
pub use wgpu;

/// The README's code blocks, compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
