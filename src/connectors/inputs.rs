//! Named inputs and outputs of a connector run: float tensors already on the GPU, and small
//! integer inputs (`image_size`, `media_locations`) kept on the host.

use std::collections::HashMap;

use crate::checkpoint::WeightSource;
use crate::runtime::{Error, Gpu, Result, Tensor};

/// One named input.
#[derive(Clone, Debug)]
pub enum Input {
    /// A float tensor on the GPU.
    Tensor(Tensor),
    /// Integers on the host (row-major, with their shape).
    Ints { shape: Vec<usize>, data: Vec<i64> },
}

/// A name → input map, what `Connector::record` reads.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    map: HashMap<String, Input>,
}

impl Inputs {
    /// No inputs.
    pub fn new() -> Inputs {
        Inputs::default()
    }

    /// Adds a float tensor under `name` (builder style).
    pub fn with_tensor(mut self, name: &str, t: Tensor) -> Inputs {
        self.map.insert(name.to_string(), Input::Tensor(t));
        self
    }

    /// Adds integers of `shape` under `name` (builder style).
    pub fn with_ints(mut self, name: &str, shape: &[usize], data: Vec<i64>) -> Inputs {
        self.map.insert(name.to_string(), Input::Ints { shape: shape.to_vec(), data });
        self
    }

    /// Reads `names` from a safetensors file: float tensors are uploaded, integer ones kept on the
    /// host. A name missing from the file is an [`Error::Input`] naming it and the file.
    pub fn read(gpu: &Gpu, file: &WeightSource, names: &[&str]) -> Result<Inputs> {
        let mut inputs = Inputs::new();
        for &name in names {
            if !file.contains(name) {
                return Err(Error::input(name, format!("not found in {}", file.location())));
            }
            inputs = match file.get_any(name) {
                Ok(h) => inputs.with_tensor(name, Tensor::from_slice(gpu, &h.data, &h.shape)?),
                Err(Error::DType { .. }) => {
                    let (shape, data) = file.get_int(name)?;
                    inputs.with_ints(name, &shape, data)
                }
                Err(e) => return Err(e),
            };
        }
        Ok(inputs)
    }

    fn get(&self, name: &str) -> Result<&Input> {
        self.map.get(name).ok_or_else(|| Error::input(name, "missing"))
    }

    /// The float tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        match self.get(name)? {
            Input::Tensor(t) => Ok(t),
            Input::Ints { .. } => Err(Error::DType { tensor: name.into(), dtype: "integer".into(), expected: "a float tensor".into() }),
        }
    }

    /// The integers `name` with their shape.
    pub fn ints(&self, name: &str) -> Result<(&[usize], &[i64])> {
        match self.get(name)? {
            Input::Ints { shape, data } => Ok((shape, data)),
            Input::Tensor(t) => {
                Err(Error::DType { tensor: name.into(), dtype: format!("{:?}", t.dtype()), expected: "an integer tensor".into() })
            }
        }
    }
}

/// A named output read back to the host.
#[derive(Clone, Debug)]
pub struct Output {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}
