//! Activations by their transformers `ACT2FN` names, with f64 CPU references.

use crate::runtime::{Error, Result};

/// Activations by their transformers `ACT2FN` names; the discriminants are the WGSL `ACT_*` ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Activation {
    /// No activation (`linear`, `identity`).
    Identity = 0,
    /// Exact erf GELU (`gelu`).
    Gelu = 1,
    /// tanh approximation (`gelu_pytorch_tanh`, `gelu_new`, `gelu_fast`).
    GeluTanh = 2,
    /// `quick_gelu`: x·σ(1.702x).
    QuickGelu = 3,
    /// `relu`.
    Relu = 4,
    /// `silu` / `swish`.
    Silu = 5,
}

impl Activation {
    /// Every activation, for tests.
    pub const ALL: [Activation; 6] =
        [Activation::Identity, Activation::Gelu, Activation::GeluTanh, Activation::QuickGelu, Activation::Relu, Activation::Silu];

    /// Parses an ACT2FN name.
    pub fn from_name(name: &str) -> Result<Activation> {
        Ok(match name {
            "gelu" => Activation::Gelu,
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Activation::GeluTanh,
            "quick_gelu" => Activation::QuickGelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            "linear" | "identity" => Activation::Identity,
            other => return Err(Error::UnknownActivation(other.to_string())),
        })
    }

    /// CPU reference in f64.
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Activation::Identity => x,
            Activation::Gelu => 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2)),
            Activation::GeluTanh => {
                let c = (2.0 / std::f64::consts::PI).sqrt();
                0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
            }
            Activation::QuickGelu => x / (1.0 + (-1.702 * x).exp()),
            Activation::Relu => x.max(0.0),
            Activation::Silu => x / (1.0 + (-x).exp()),
        }
    }
}
