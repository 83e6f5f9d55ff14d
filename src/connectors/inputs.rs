//! Named inputs and outputs of a connector run: float tensors already on the GPU, and small
//! integer inputs (`image_size`, `media_locations`) kept on the host.

use std::collections::HashMap;

use crate::checkpoint::WeightSource;
use crate::runtime::{DType, Error, Gpu, Result, Tensor};

/// One named input.
#[derive(Clone, Debug)]
pub enum Input {
    /// A float tensor on the GPU.
    Tensor(Tensor),
    /// Integers on the host (row-major, with their shape).
    Ints {
        /// Row-major shape.
        shape: Vec<usize>,
        /// Values.
        data: Vec<i64>,
    },
}

/// A name → input map, what `Connector::record` reads. `image_size` (LLaVA-NeXT, `[2]`: h, w in
/// pixels) and `media_locations` (OpenFlamingo, `[b, L]` of 0/1) are integers ([`Inputs::with_ints`]);
/// every other input is a float tensor ([`Inputs::with_tensor`]).
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    map: HashMap<String, Input>,
    /// The file they were read from, for "not found in …" errors.
    source: Option<String>,
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

    /// Reads those of `names` the file holds: float tensors are uploaded, integer ones kept on the
    /// host. A name the connector then needs and the file lacks is an [`Error::Input`] naming it
    /// and the file (some connectors pick their path by which inputs are given).
    pub fn read(gpu: &Gpu, file: &WeightSource, names: &[&str]) -> Result<Inputs> {
        Self::read_as(gpu, file, names, DType::F32)
    }

    /// [`Inputs::read`] with float tensors uploaded in `dtype` (a connector's compute dtype).
    pub fn read_as(gpu: &Gpu, file: &WeightSource, names: &[&str], dtype: DType) -> Result<Inputs> {
        let mut inputs = Inputs { source: Some(file.location().to_string()), ..Inputs::new() };
        for &name in names {
            if !file.contains(name) {
                continue;
            }
            inputs = match file.get_any(name) {
                Ok(h) => inputs.with_tensor(name, Tensor::from_host(gpu, &h.data, &h.shape, dtype)?),
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
        self.map.get(name).ok_or_else(|| match &self.source {
            Some(file) => Error::input(name, format!("not found in {file}")),
            None => Error::input(name, "missing"),
        })
    }

    /// Whether an input called `name` is there.
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// The float tensor `name`.
    pub fn tensor(&self, name: &str) -> Result<&Tensor> {
        match self.get(name)? {
            Input::Tensor(t) => Ok(t),
            Input::Ints { .. } => Err(Error::DType { tensor: name.into(), dtype: "integer".into(), expected: "a float tensor".into() }),
        }
    }

    /// The float tensors, by name.
    pub(crate) fn tensors(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.map.iter().filter_map(|(n, i)| match i {
            Input::Tensor(t) => Some((n.as_str(), t)),
            Input::Ints { .. } => None,
        })
    }

    /// The integers `name` with their shape.
    pub fn ints(&self, name: &str) -> Result<(&[usize], &[i64])> {
        match self.get(name)? {
            // `with_ints` takes any shape and data: a length that disagrees is refused here.
            Input::Ints { shape, data } if shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) != Some(data.len()) => {
                Err(Error::shape(name, shape.as_slice(), format!("{} values", data.len())))
            }
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
    /// Output name (`output`, `qformer_output`, `projected`, `media`, `size`).
    pub name: String,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Values.
    pub data: Vec<f32>,
}

/// The outputs of one run, in the order the connector lists them (`output` first), by name.
#[derive(Clone, Debug)]
pub struct Outputs(pub(crate) Vec<Output>);

impl Outputs {
    /// The output called `name`; an [`Error::Input`] listing the names there are otherwise.
    pub fn get(&self, name: &str) -> Result<&Output> {
        let missing = || Error::input("output name", format!("no output is called `{name}` (outputs: {})", self.names().join(", ")));
        self.0.iter().find(|o| o.name == name).ok_or_else(missing)
    }

    /// Output names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.0.iter().map(|o| o.name.as_str()).collect()
    }

    /// The outputs as a vector.
    pub fn into_vec(self) -> Vec<Output> {
        self.0
    }
}

impl std::ops::Deref for Outputs {
    type Target = [Output];
    fn deref(&self) -> &[Output] {
        &self.0
    }
}

impl IntoIterator for Outputs {
    type Item = Output;
    type IntoIter = std::vec::IntoIter<Output>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Outputs {
    type Item = &'a Output;
    type IntoIter = std::slice::Iter<'a, Output>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
