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
    /// `gelu_10`: exact GELU clipped to [-10, 10] (`ClippedGELUActivation`).
    Gelu10 = 6,
    /// `relu6`.
    Relu6 = 7,
    /// `relu2`: relu(x)² (`ReLUSquaredActivation`).
    Relu2 = 8,
    /// `sigmoid`.
    Sigmoid = 9,
    /// `tanh`.
    Tanh = 10,
    /// `leaky_relu`: `nn.LeakyReLU()` (slope 0.01).
    LeakyRelu = 11,
    /// `mish`: x·tanh(softplus(x)).
    Mish = 12,
}

impl Activation {
    /// Every activation, for tests.
    pub const ALL: [Activation; 13] = [
        Activation::Identity,
        Activation::Gelu,
        Activation::GeluTanh,
        Activation::QuickGelu,
        Activation::Relu,
        Activation::Silu,
        Activation::Gelu10,
        Activation::Relu6,
        Activation::Relu2,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::LeakyRelu,
        Activation::Mish,
    ];

    /// Parses an ACT2FN name.
    pub fn from_name(name: &str) -> Result<Activation> {
        Ok(match name {
            "gelu" | "gelu_python" => Activation::Gelu,
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" | "gelu_accurate" => Activation::GeluTanh,
            "gelu_10" => Activation::Gelu10,
            "relu6" => Activation::Relu6,
            "relu2" => Activation::Relu2,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "leaky_relu" => Activation::LeakyRelu,
            "mish" => Activation::Mish,
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
            Activation::Gelu10 => Activation::Gelu.apply(x).clamp(-10.0, 10.0),
            Activation::Relu6 => x.clamp(0.0, 6.0),
            Activation::Relu2 => x.max(0.0).powi(2),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
            Activation::LeakyRelu => {
                if x >= 0.0 {
                    x
                } else {
                    0.01 * x
                }
            }
            Activation::Mish => x * (if x > 20.0 { x } else { x.exp().ln_1p() }).tanh(),
        }
    }
}
