//! `nn.Linear` with its weights on the GPU.

use crate::checkpoint::WeightSource;
use crate::kernels::gemm::{linear_out_shape, record_gemm_into, Residual, ROW_BLOCK};
use crate::kernels::Activation;
use crate::runtime::{DType, Error, Gpu, Recorder, Result, Tensor};

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

/// A block of output features: rows `start..start + weight.shape()[0]` of the full weight.
#[derive(Debug)]
pub struct LinearPart {
    /// First output feature of this block.
    pub start: usize,
    /// Weight rows [rows, in_features].
    pub weight: Tensor,
    /// Bias `[rows]`.
    pub bias: Option<Tensor>,
}

/// Weights larger than the device's storage-binding limit are kept as several row blocks, each
/// its own GEMM writing its column block of the output.
#[derive(Debug)]
pub struct Linear {
    /// Row blocks (one unless the weight is past the binding limit).
    pub parts: Vec<LinearPart>,
    /// Input width.
    pub in_features: usize,
    /// Output width.
    pub out_features: usize,
}

impl Linear {
    /// Loads `{prefix}.weight` `[out, in]` (and `{prefix}.bias` `[out]`). `in_f` / `out_f` are checked
    /// when given; otherwise taken from the stored weight.
    pub fn load(gpu: &Gpu, ws: &WeightSource, in_f: Option<usize>, out_f: Option<usize>, bias: Bias) -> Result<Linear> {
        let full = ws.full_name("weight");
        let stored = match (in_f, out_f, ws.shape("weight")) {
            (_, _, Some(s)) => s,
            (Some(i), Some(o), None) => vec![o, i], // a random source: the caller's shape
            (_, _, None) => return Err(Error::MissingWeight { name: full, location: ws.location().to_string() }),
        };
        if stored.len() != 2 {
            return Err(Error::shape(full, "[out_features, in_features]", stored));
        }
        let in_features = in_f.unwrap_or(stored[1]);
        let out_features = out_f.unwrap_or(stored[0]);
        let weight = ws.get_host("weight", &[out_features, in_features])?;
        let bias = match bias {
            Bias::None => None,
            Bias::IfPresent if !ws.contains("bias") => None,
            _ => Some(ws.get_host("bias", &[out_features])?),
        };
        Linear::from_host(gpu, &weight.data, bias.as_ref().map(|b| b.data.as_slice()), in_features, out_features, ws.dtype())
    }

    /// Several Linears with the same input stacked into one ([W1; W2; ...] rows): one GEMM instead
    /// of several. Each part is `[out_f, in_f]` under its own prefix.
    pub fn stack(gpu: &Gpu, parts: &[&WeightSource], in_f: usize, out_f: usize, bias: Bias) -> Result<Linear> {
        // No reservation from out_f · in_f: they come from a config; get_host checks each stored
        // shape before reading it.
        let (mut w, mut b) = (Vec::new(), Vec::new());
        let mut has_bias = bias != Bias::None;
        for ws in parts {
            w.extend(ws.get_host("weight", &[out_f, in_f])?.data);
            has_bias &= bias == Bias::Required || ws.contains("bias");
        }
        if has_bias {
            for ws in parts {
                b.extend(ws.get_host("bias", &[out_f])?.data);
            }
        }
        let dtype = parts.first().map(|p| p.dtype()).unwrap_or(DType::F32);
        Linear::from_host(gpu, &w, has_bias.then_some(b.as_slice()), in_f, parts.len() * out_f, dtype)
    }

    /// A Linear from host data (weights computed at load), uploaded in `dtype`. weight: [out_f, in_f]
    /// row-major, bias: `[out_f]`. Splits the weight into row blocks that fit
    /// `max_storage_buffer_binding_size`, each a multiple of the GEMM's [`ROW_BLOCK`] rows.
    pub fn from_host(gpu: &Gpu, weight: &[f32], bias: Option<&[f32]>, in_f: usize, out_f: usize, dtype: DType) -> Result<Linear> {
        if weight.len() != in_f * out_f || bias.is_some_and(|b| b.len() != out_f) {
            return Err(Error::shape("linear weight", [out_f, in_f], weight.len()));
        }
        let max_bytes = gpu.limits().max_storage_buffer_binding_size as usize;
        let row_bytes = in_f.max(1) * dtype.size();
        let rows = if out_f * row_bytes <= max_bytes { out_f.max(1) } else { (max_bytes / row_bytes) / ROW_BLOCK * ROW_BLOCK };
        if rows == 0 {
            return Err(Error::Limit {
                op: "linear weight row".into(),
                limit: "max_storage_buffer_binding_size".into(),
                requested: (ROW_BLOCK * row_bytes) as u64,
                max: max_bytes as u64,
            });
        }
        let mut parts = Vec::new();
        for start in (0..out_f.max(1)).step_by(rows) {
            let end = (start + rows).min(out_f);
            parts.push(LinearPart {
                start,
                weight: Tensor::from_host(gpu, &weight[start * in_f..end * in_f], &[end - start, in_f], dtype)?,
                bias: bias.map(|b| Tensor::from_host(gpu, &b[start..end], &[end - start], dtype)).transpose()?,
            });
        }
        Ok(Linear { parts, in_features: in_f, out_features: out_f })
    }

    /// y = act(x·Wᵀ + b).
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor, act: Activation) -> Result<Tensor> {
        self.record(rec, x, act, None)
    }

    /// y = res + alpha · (x·Wᵀ + b).
    pub fn forward_residual(&self, rec: &mut Recorder, x: &Tensor, res: &Tensor, alpha: f32) -> Result<Tensor> {
        self.record(rec, x, Activation::Identity, Some(Residual { res, alpha }))
    }

    fn record(&self, rec: &mut Recorder, x: &Tensor, act: Activation, residual: Option<Residual>) -> Result<Tensor> {
        if x.shape().last() != Some(&self.in_features) {
            return Err(Error::shape("linear input", format!("[.., {}]", self.in_features), x.shape()));
        }
        let y = Tensor::empty(rec.gpu(), &linear_out_shape(x, self.out_features)?, x.dtype())?;
        for part in &self.parts {
            record_gemm_into(rec, x, &part.weight, part.bias.as_ref(), &y, part.start, act, residual, None)?;
        }
        Ok(y)
    }
}
