//! Building blocks shared by the connectors. Each holds its GPU weights and records its kernels.

pub mod attention;
pub mod feedforward;
pub mod linear;
pub mod norm;

pub use attention::{Attention, QkNorm};
pub use feedforward::{FeedForward, GatedFeedForward};
pub use linear::{Bias, Linear};
pub use norm::{LayerNorm, Norm, RmsNorm};
