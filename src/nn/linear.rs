//! `nn.Linear` with its weights on the GPU.

use crate::checkpoint::WeightSource;
use crate::kernels::gemm::{record_linear, Residual};
use crate::kernels::Activation;
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// Whether a Linear has a bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    /// The bias must be present.
    Required,
    /// No bias (and none is read).
    None,
    /// Use it if the checkpoint has it.
    IfPresent,
}

pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub in_features: usize,
    pub out_features: usize,
}

impl Linear {
    /// Loads `{prefix}.weight` [out, in] (and `{prefix}.bias` [out]). `in_f` / `out_f` are checked
    /// when given; otherwise taken from the stored weight.
    pub fn load(gpu: &Gpu, ws: &WeightSource, in_f: Option<usize>, out_f: Option<usize>, bias: Bias) -> Result<Linear> {
        let full = ws.full_name("weight");
        let stored = ws.shape("weight").ok_or_else(|| Error::MissingWeight { name: full.clone(), location: ws.location().to_string() })?;
        if stored.len() != 2 {
            return Err(Error::shape(full, "[out_features, in_features]", stored));
        }
        let in_features = in_f.unwrap_or(stored[1]);
        let out_features = out_f.unwrap_or(stored[0]);
        let weight = ws.tensor(gpu, "weight", &[out_features, in_features])?;
        let bias = match bias {
            Bias::None => None,
            Bias::IfPresent if !ws.contains("bias") => None,
            _ => Some(ws.tensor(gpu, "bias", &[out_features])?),
        };
        Ok(Linear { weight, bias, in_features, out_features })
    }

    /// y = act(x·Wᵀ + b).
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor, act: Activation) -> Result<Tensor> {
        record_linear(rec, x, &self.weight, self.bias.as_ref(), act, None)
    }

    /// y = res + alpha · (x·Wᵀ + b).
    pub fn forward_residual(&self, rec: &mut Recorder, x: &Tensor, res: &Tensor, alpha: f32) -> Result<Tensor> {
        record_linear(rec, x, &self.weight, self.bias.as_ref(), Activation::Identity, Some(Residual { res, alpha }))
    }

    /// Multiply-adds per row.
    pub fn flops_per_row(&self) -> u64 {
        2 * self.in_features as u64 * self.out_features as u64
    }
}
