//! Connectors, and `Connector`: pick one from `config.json`'s `model_type` and run it on named
//! input tensors (what `vlmc run` does).

pub mod llava;
pub mod qformer;

pub use llava::LlavaProjector;
pub use qformer::{QFormer, QFormerConfig};

use std::path::Path;

use crate::checkpoint::{Config, WeightSource};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// A named output tensor.
#[derive(Clone, Debug)]
pub struct Output {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// Any connector this crate can load from a checkpoint folder.
pub enum Connector {
    Llava(LlavaProjector),
    QFormer(QFormer),
}

impl Connector {
    /// Reads `config.json` and the weights in `dir`; `model_type` picks the connector.
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<Connector> {
        let dir = dir.as_ref();
        let cfg = Config::from_file(dir.join("config.json"))?;
        let model_type = cfg.str("model_type")?;
        match model_type.as_str() {
            "llava" | "llava_llama" | "llava_mistral" | "llava_qwen" => {
                let ws = WeightSource::open_dir(dir)?;
                Ok(Connector::Llava(LlavaProjector::load(gpu, &cfg, &ws)?))
            }
            "blip-2" => Ok(Connector::QFormer(QFormer::load(gpu, &cfg, &WeightSource::open_dir(dir)?)?)),
            other => Err(Error::UnknownModelType(other.to_string())),
        }
    }

    /// Names of the input tensors this connector reads.
    pub fn input_names(&self) -> &'static [&'static str] {
        match self {
            Connector::Llava(_) => &["image_features"],
            Connector::QFormer(_) => &["image_embeds"],
        }
    }

    /// Runs on inputs read from a safetensors file (names as in the golden README).
    /// The forward is one submit; outputs are read back after it.
    pub fn run(&self, gpu: &Gpu, inputs: &WeightSource) -> Result<Vec<Output>> {
        let input = |name: &str| -> Result<Tensor> {
            let h = inputs.get_any(name).map_err(|e| match e {
                Error::MissingWeight { name, location } => Error::input(name, format!("not found in {location}")),
                other => other,
            })?;
            Tensor::from_slice(gpu, &h.data, &h.shape)
        };
        let mut rec = Recorder::new(gpu);
        let outs: Vec<(&str, Tensor)> = match self {
            Connector::Llava(p) => {
                let x = input("image_features")?;
                if x.rank() != 3 {
                    return Err(Error::shape("image_features", format!("[B, N, {}]", p.in_features), x.shape()));
                }
                vec![("output", p.forward(&mut rec, &x)?)]
            }
            Connector::QFormer(q) => {
                let (h, projected) = q.forward(&mut rec, &input("image_embeds")?)?;
                vec![("output", projected), ("qformer_output", h)]
            }
        };
        rec.submit()?;
        outs.into_iter()
            .map(|(name, t)| Ok(Output { name: name.to_string(), shape: t.shape().to_vec(), data: t.to_vec(gpu)? }))
            .collect()
    }
}
