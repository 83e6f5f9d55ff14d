//! The crate's one error type. Every variant names what went wrong and where: the tensor or field,
//! what was expected and what was found.

use std::path::PathBuf;

/// Result alias used across the public API.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, each variant naming what and where: the tensor or field, the
/// expected and the actual. wgpu's own validation and out-of-memory errors arrive as [`Error::Gpu`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No GPU adapter at all (no Vulkan/Metal/DX12 driver, no GL).
    #[error(
        "no GPU adapter found (backends tried: {backends}). Install a Vulkan driver: on Debian/Ubuntu \
         `apt-get install mesa-vulkan-drivers` gives lavapipe, a CPU Vulkan driver; on other systems \
         install your GPU vendor's driver. WGPU_BACKEND / WGPU_ADAPTER_NAME narrow the choice{detail}"
    )]
    NoAdapter {
        /// The wgpu backends that were searched.
        backends: String,
        /// What else was seen (e.g. the adapters `WGPU_ADAPTER_NAME` did not match).
        detail: String,
    },

    /// The adapter refused to create a device with the requested features/limits.
    #[error("could not create a device on adapter `{adapter}`: {message}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// What went wrong, in the words of the layer that reported it.
        message: String,
    },

    /// A wgpu validation / out-of-memory / internal error captured by an error scope.
    #[error("GPU error in `{op}`: {message}")]
    Gpu {
        /// The operation that failed (a kernel, `upload`, `submit`, ...).
        op: String,
        /// What went wrong, in the words of the layer that reported it.
        message: String,
    },

    /// The device was lost (driver reset, OOM kill, ...). Build a new `Gpu` to continue.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),

    /// A tensor had the wrong shape.
    #[error("shape mismatch for `{tensor}`: expected {expected}, got {actual}")]
    Shape {
        /// The tensor, weight or binding (`kernel.binding`) concerned.
        tensor: String,
        /// What was expected.
        expected: String,
        /// What was found.
        actual: String,
    },

    /// A weight the connector needs is not in the checkpoint.
    #[error("missing weight `{name}` in {location}")]
    MissingWeight {
        /// The full name (weights) or the input name.
        name: String,
        /// Where it was looked for (folder, file, or `random weights`).
        location: String,
    },

    /// A tensor is stored in a dtype we cannot read.
    #[error("tensor `{tensor}` has dtype {dtype}; expected {expected}")]
    DType {
        /// The tensor, weight or binding (`kernel.binding`) concerned.
        tensor: String,
        /// The dtype found.
        dtype: String,
        /// What was expected.
        expected: String,
    },

    /// A config.json field is missing or holds a value we do not understand.
    #[error("config field `{field}`: {message}")]
    Config {
        /// The config field (dotted path) or environment variable.
        field: String,
        /// What went wrong, in the words of the layer that reported it.
        message: String,
    },

    /// `model_type` names a connector this crate does not implement; `known` lists those it does
    /// (from `connectors::registry`).
    #[error("unknown model_type `{model_type}` (known: {known})")]
    UnknownModelType {
        /// The `model_type` that was asked for.
        model_type: String,
        /// Every `model_type` the model registry loads.
        known: String,
    },

    /// A tensor was recorded, bound or read with a `Gpu` other than the one that created it.
    #[error("tensor `{tensor}` belongs to Gpu #{owner}, but was used with Gpu #{used}: record and read it with the Gpu that created it")]
    OtherGpu {
        /// The tensor, weight or binding (`kernel.binding`) concerned.
        tensor: String,
        /// Id of the `Gpu` that made the tensor.
        owner: u64,
        /// Id of the `Gpu` it was used with.
        used: u64,
    },

    /// A tensor written by recorded kernels was read before their `Recorder` was submitted (or
    /// after it was dropped unsubmitted).
    #[error("tensor `{tensor}` is written by recorded kernels that were never submitted: call Recorder::submit before reading it")]
    Pending {
        /// The tensor, weight or binding (`kernel.binding`) concerned.
        tensor: String,
    },

    /// A tensor made by `Tensor::empty` was read before anything wrote it.
    #[error("tensor `{tensor}` was never written: fill it with a kernel (and submit) or an upload before reading it")]
    Unwritten {
        /// The tensor (its shape and dtype, or `kernel.binding`).
        tensor: String,
    },

    /// The adapter or the crate lacks what an operation needs (a feature, a kernel built for a dtype).
    #[error("{what} needs {needs}")]
    Unsupported {
        /// What was asked for.
        what: String,
        /// What it needs that is missing.
        needs: String,
    },

    /// An activation name not in transformers' ACT2FN subset we support.
    #[error("unknown activation `{0}` (known: gelu, gelu_pytorch_tanh, gelu_new, quick_gelu, relu, silu, linear/identity)")]
    UnknownActivation(String),

    /// An original-LLaVA `mm_projector_type` we do not recognise.
    #[error("unknown mm_projector_type `{0}` (known: linear, identity, mlp<N>x_gelu)")]
    UnknownProjectorType(String),

    /// A user-supplied input tensor is wrong (rank, width, values).
    #[error("input `{name}`: {message}")]
    Input {
        /// The full name (weights) or the input name.
        name: String,
        /// What went wrong, in the words of the layer that reported it.
        message: String,
    },

    /// A request exceeds a device limit and could not be split.
    #[error("`{op}` needs {requested} but the device limit `{limit}` is {max}")]
    Limit {
        /// The operation that failed (a kernel, `upload`, `submit`, ...).
        op: String,
        /// The wgpu limit's name (or `u32 kernel parameter`).
        limit: String,
        /// What the operation needed.
        requested: u64,
        /// The device's limit.
        max: u64,
    },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A safetensors file is malformed.
    #[error("{path}: not a valid safetensors file: {message}")]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What went wrong, in the words of the layer that reported it.
        message: String,
    },

    /// A PyTorch checkpoint could not be read (not a container `torch.save` writes, truncated,
    /// a missing storage, no tensors).
    #[error("{path}: not a readable PyTorch checkpoint: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What the reader found wrong.
        message: String,
    },

    /// An image could not be decoded or preprocessed: a truncated or unsupported file, one past
    /// the size limits, or a geometry the processor cannot produce.
    #[error("image {source_name}: {message}")]
    Image {
        /// The file, or `<bytes>` / `<image N>` for in-memory images.
        source_name: String,
        /// What went wrong.
        message: String,
    },

    /// A JSON file is malformed.
    #[error("{path}: invalid JSON: {message}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What went wrong, in the words of the layer that reported it.
        message: String,
    },
}

impl Error {
    /// [`Error::Shape`] for `tensor`, with the expected and actual shapes as their `Debug` text.
    pub fn shape(tensor: impl Into<String>, expected: impl std::fmt::Debug, actual: impl std::fmt::Debug) -> Self {
        // A description passed as a string reads better without Debug's quotes.
        let text = |v: String| v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).map(str::to_string).unwrap_or(v);
        Error::Shape { tensor: tensor.into(), expected: text(format!("{expected:?}")), actual: text(format!("{actual:?}")) }
    }
    /// [`Error::Input`] for the input `name`.
    pub fn input(name: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Input { name: name.into(), message: message.into() }
    }
    /// [`Error::Config`] for the config field `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config { field: field.into(), message: message.into() }
    }
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
