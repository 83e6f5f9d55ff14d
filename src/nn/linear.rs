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

    /// Several Linears with the same input stacked into one ([W1; W2; ...] rows): one GEMM instead
    /// of several. Each part is `[out_f, in_f]` under its own prefix.
    pub fn stack(gpu: &Gpu, parts: &[&WeightSource], in_f: usize, out_f: usize, bias: Bias) -> Result<Linear> {
        let mut w = Vec::with_capacity(parts.len() * out_f * in_f);
        let mut b = Vec::with_capacity(parts.len() * out_f);
        let mut has_bias = bias != Bias::None;
        for ws in parts {
            w.extend(ws.get("weight", &[out_f, in_f])?.data);
            has_bias &= bias == Bias::Required || ws.contains("bias");
        }
        if has_bias {
            for ws in parts {
                b.extend(ws.get("bias", &[out_f])?.data);
            }
        }
        let n = parts.len() * out_f;
        Ok(Linear {
            weight: Tensor::from_slice(gpu, &w, &[n, in_f])?,
            bias: if has_bias { Some(Tensor::from_slice(gpu, &b, &[n])?) } else { None },
            in_features: in_f,
            out_features: n,
        })
    }

    /// A Linear from host data (random weights for demos, or weights computed at load).
    pub fn from_host(gpu: &Gpu, weight: &[f32], bias: Option<&[f32]>, in_f: usize, out_f: usize) -> Result<Linear> {
        Ok(Linear {
            weight: Tensor::from_slice(gpu, weight, &[out_f, in_f])?,
            bias: bias.map(|b| Tensor::from_slice(gpu, b, &[out_f])).transpose()?,
            in_features: in_f,
            out_features: out_f,
        })
    }

    /// Random weights ~ U(-1/√in, 1/√in), as torch initialises Linear.
    pub fn random(gpu: &Gpu, in_f: usize, out_f: usize, bias: bool, rng: &mut crate::util::Rng) -> Result<Linear> {
        let s = 1.0 / (in_f as f32).sqrt();
        let w = rng.vec(out_f * in_f, s);
        let b = bias.then(|| rng.vec(out_f, s));
        Linear::from_host(gpu, &w, b.as_deref(), in_f, out_f)
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
