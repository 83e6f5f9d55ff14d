//! Building blocks shared by the connectors. Each holds its GPU weights and records its kernels.

pub mod linear;
pub mod norm;

pub use linear::{Bias, Linear};
pub use norm::LayerNorm;
