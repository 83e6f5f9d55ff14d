//! The element type of a stored tensor, whatever the container (safetensors or a PyTorch
//! checkpoint), and its little-endian bytes decoded to what the loaders read: f32, or i64.

use safetensors::tensor::Dtype;

/// Element type of a stored tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    U32,
    I16,
    I8,
    U8,
    Bool,
    /// Anything this crate does not read (its name for error messages).
    Other(&'static str),
}

impl From<Dtype> for Stored {
    fn from(d: Dtype) -> Stored {
        match d {
            Dtype::F64 => Stored::F64,
            Dtype::F32 => Stored::F32,
            Dtype::F16 => Stored::F16,
            Dtype::BF16 => Stored::BF16,
            Dtype::I64 => Stored::I64,
            Dtype::I32 => Stored::I32,
            Dtype::U32 => Stored::U32,
            Dtype::I16 => Stored::I16,
            Dtype::I8 => Stored::I8,
            Dtype::U8 => Stored::U8,
            Dtype::BOOL => Stored::Bool,
            _ => Stored::Other("another safetensors dtype"),
        }
    }
}

impl Stored {
    /// The name in error messages (`F16`, `I64`, `BOOL`, ...).
    pub fn name(self) -> String {
        match self {
            Stored::Other(name) => name.to_string(),
            d => format!("{d:?}").to_uppercase(),
        }
    }

    /// Float bytes widened to f32; `None` for an integer dtype.
    pub fn floats(self, bytes: &[u8]) -> Option<Vec<f32>> {
        Some(match self {
            Stored::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Stored::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Stored::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Stored::F64 => bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect(),
            _ => return None,
        })
    }

    /// Integer (or bool) bytes widened to i64; `None` for a float dtype.
    pub fn ints(self, bytes: &[u8]) -> Option<Vec<i64>> {
        Some(match self {
            Stored::I64 => bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
            Stored::I32 => bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64).collect(),
            Stored::U32 => bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as i64).collect(),
            Stored::I16 => bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]]) as i64).collect(),
            Stored::U8 | Stored::Bool => bytes.iter().map(|&b| b as i64).collect(),
            Stored::I8 => bytes.iter().map(|&b| b as i8 as i64).collect(),
            _ => return None,
        })
    }
}
