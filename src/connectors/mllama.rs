//! Llama 3.2 Vision's connector (`models/mllama/modeling_mllama.py`): `multi_modal_projector` and
//! one cross-attention decoder layer (`MllamaCrossAttentionDecoderLayer`), the layer
//! `text_config.cross_attention_layers[layer_index]` (the first by default):
//!
//! ```text
//! projected = multi_modal_projector(cross_attention_states)      [b, n·t·P, d]  (keys: image, tile, patch)
//! h   = x + tanh(cross_attn_attn_gate) · o_proj(attn(q_norm(q_proj(RMSNorm(x))), k_norm(k_proj(projected)), v_proj(projected)))
//! out = h + tanh(cross_attn_mlp_gate) · row_mask · down(act(gate(m)) · up(m)),   m = RMSNorm(h)
//! ```
//! q/k norms are RMSNorms over head_dim; grouped-query attention (`num_key_value_heads`); no RoPE,
//! no biases. The mask follows `_prepare_cross_attention_mask`: a (image, tile) entry of 1 lets the
//! token see that tile's P tokens, anything else masks them with finfo.min; a token that sees
//! nothing gets an all-zero bias (it attends every key) and a row mask of 0 on its MLP branch only.

use super::registry::{Inputs, Model, Named};
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::attention::AttnOpts;
use crate::kernels::Activation;
use crate::nn::{Attention, Bias, GatedFeedForward, Linear, Norm, QkNorm, RmsNorm};
use crate::runtime::{DType, Error, Gpu, Recorder, Result, Tensor};

/// Where the decoder layers sit: as `save_pretrained` writes them, and as transformers 5 keeps them.
const LAYER_ROOTS: &[&str] = &["language_model.model.layers", "model.language_model.layers", "language_model.layers"];

/// The projector and one cross-attention decoder layer of an `mllama` checkpoint.
#[derive(Debug)]
pub struct Mllama {
    projector: Linear,
    input_layernorm: RmsNorm,
    attn: Attention,
    o_proj: Linear,
    post_attention_layernorm: RmsNorm,
    mlp: GatedFeedForward,
    /// tanh(cross_attn_attn_gate).
    pub attn_gate: f32,
    /// tanh(cross_attn_mlp_gate).
    pub mlp_gate: f32,
    /// The decoder layer run (`cross_attention_layers[layer_index]`).
    pub layer: usize,
    /// Text width d.
    pub hidden_size: usize,
    dtype: DType,
}

impl Mllama {
    /// Loads `multi_modal_projector.{weight, bias}` and decoder layer
    /// `text_config.cross_attention_layers[layer_index]` (`layer_index` 0 unless set, e.g. by
    /// `vlmc run --layer`). Widths from `text_config` (MllamaTextConfig defaults when absent) and
    /// `vision_config.vision_output_dim`. Errors: [`Error::Config`] for a `layer_index` past the
    /// list or heads that do not divide; [`Error::MissingWeight`] / [`Error::Shape`] from the weights.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<Mllama> {
        let tc = cfg.sub_or_default("text_config");
        let d = tc.opt_usize("hidden_size")?.unwrap_or(4096);
        let heads = tc.opt_usize("num_attention_heads")?.unwrap_or(32);
        let kv_heads = tc.opt_usize("num_key_value_heads")?.unwrap_or(8);
        let eps = tc.opt_f64("rms_norm_eps")?.unwrap_or(1e-5) as f32;
        let hidden = tc.opt_usize("intermediate_size")?.unwrap_or(14336);
        let act = Activation::from_name(&tc.opt_str("hidden_act")?.unwrap_or_else(|| "silu".into()))?;
        let layers: Vec<usize> = match tc.raw("cross_attention_layers") {
            None => vec![3, 8, 13, 18, 23, 28, 33, 38],
            Some(serde_json::Value::Array(a)) => {
                a.iter().map(|v| v.as_u64().map(|v| v as usize)).collect::<Option<_>>().ok_or_else(|| {
                    Error::config("text_config.cross_attention_layers", format!("{a:?}: expected a list of layer indices"))
                })?
            }
            Some(v) => return Err(Error::config("text_config.cross_attention_layers", format!("{v}: expected a list of layer indices"))),
        };
        let j = cfg.opt_index("layer_index")?.unwrap_or(0);
        let layer = *layers.get(j).ok_or_else(|| {
            Error::config("layer_index", format!("{j}, but this Mllama has {} cross-attention layers {layers:?}", layers.len()))
        })?;
        let vis = cfg.sub_or_default("vision_config").opt_usize("vision_output_dim")?.unwrap_or(7680);
        let pws = layouts::require(ws, layouts::LLAVA_HF_PROJECTOR, "weight")?;
        let projector = Linear::load(gpu, &pws, Some(vis), Some(d), Bias::Required)?;
        let root = layouts::require(ws, LAYER_ROOTS, &format!("{layer}.cross_attn_attn_gate"))?.pp(layer.to_string());
        // MllamaTextCrossAttention: head_dim = hidden_size / num_attention_heads.
        let head_dim = crate::nn::attention::head_dim(d, heads, "text_config.num_attention_heads")?;
        let a = root.pp("cross_attn");
        let qk = QkNorm {
            q: Norm::Rms(RmsNorm::load(gpu, &a.pp("q_norm"), head_dim, eps)?),
            k: Norm::Rms(RmsNorm::load(gpu, &a.pp("k_norm"), head_dim, eps)?),
        };
        let proj = [&a.pp("q_proj"), &a.pp("k_proj"), &a.pp("v_proj")];
        let attn = Attention::load_projections(gpu, proj, d, d, [heads, kv_heads], head_dim, Some(qk))?;
        let gate = |name: &str| -> Result<f32> { Ok(root.get_host(name, &[1])?.data[0].tanh()) };
        Ok(Mllama {
            projector,
            input_layernorm: RmsNorm::load(gpu, &root.pp("input_layernorm"), d, eps)?,
            o_proj: Linear::load(gpu, &a.pp("o_proj"), Some(d), Some(d), Bias::None)?,
            post_attention_layernorm: RmsNorm::load(gpu, &root.pp("post_attention_layernorm"), d, eps)?,
            mlp: GatedFeedForward::load(gpu, &root.pp("mlp"), d, hidden, act, None)?,
            attn,
            attn_gate: gate("cross_attn_attn_gate")?,
            mlp_gate: gate("cross_attn_mlp_gate")?,
            layer,
            hidden_size: d,
            dtype: ws.dtype(),
        })
    }

    /// Records the projector and the layer. x: hidden_states [b, L, d]; states:
    /// cross_attention_states [b, n, t, P, vision_output_dim]; mask: cross_attention_mask
    /// [b, L, n, t] as ints → (output [b, L, d], projected [b·n·t, P, d]). Errors: [`Error::Shape`]
    /// naming the input whose shape disagrees; [`Error::Limit`] when the per-token mask
    /// [b, L, n·t·P] passes the storage-binding size.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor, states: &Tensor, mask: (&[usize], &[i64])) -> Result<(Tensor, Tensor)> {
        x.expect_float(rec.gpu(), "hidden_states")?;
        states.expect_float(rec.gpu(), "cross_attention_states")?;
        let d = self.hidden_size;
        let (b, len) = match *x.shape() {
            [b, l, w] if w == d => (b, l),
            _ => return Err(Error::shape("hidden_states", format!("[b, L, {d}]"), x.shape())),
        };
        let cv = self.projector.in_features;
        let [n, t, p] = match *states.shape() {
            [sb, n, t, p, c] if sb == b && c == cv => [n, t, p],
            _ => return Err(Error::shape("cross_attention_states", format!("[{b}, images, tiles, P, {cv}]"), states.shape())),
        };
        let (mshape, mvals) = mask;
        if mshape != [b, len, n, t] {
            return Err(Error::shape("cross_attention_mask", [b, len, n, t], mshape));
        }
        let (bias, rows) = self.upload_mask(rec.gpu(), mvals, [b, len, n * t], p)?;
        let projected = self.projector.forward(rec, &states.reshape(&[b, n * t * p, cv])?, Activation::Identity)?;
        let h = self.input_layernorm.forward(rec, x)?;
        let ctx = self.attn.context(rec, &h, &projected, AttnOpts { mask: bias.as_ref(), ..Default::default() })?;
        let h = self.o_proj.forward_residual(rec, &ctx, x, self.attn_gate)?;
        let m = self.post_attention_layernorm.forward(rec, &h)?;
        let y = self.mlp.forward_residual_rows(rec, &m, &h, self.mlp_gate, rows.as_ref())?;
        Ok((y, projected.reshape(&[b * n * t, p, d])?))
    }

    /// `_prepare_cross_attention_mask` on the host: the additive per-token bias [b, L, tiles·P]
    /// (`None` when every token sees every tile) and the row mask [b·L] (`None` when every token
    /// sees some tile). A value of exactly 1 allows a tile (the reference masks where 1 − v ≠ 0).
    fn upload_mask(&self, gpu: &Gpu, m: &[i64], [b, len, tiles]: [usize; 3], p: usize) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let rows: Vec<f32> = m.chunks(tiles.max(1)).map(|r| if r.contains(&1) { 1.0 } else { 0.0 }).take(b * len).collect();
        let rows = if tiles == 0 { vec![0.0; b * len] } else { rows };
        let row_mask = if rows.iter().all(|&r| r == 1.0) { None } else { Some(Tensor::from_host(gpu, &rows, &[b * len], self.dtype)?) };
        if m.iter().all(|&v| v == 1) {
            return Ok((None, row_mask));
        }
        let lk = tiles * p;
        let max = gpu.limits().max_storage_buffer_binding_size;
        let elems = (b * len).checked_mul(lk).filter(|&e| (e as u64).saturating_mul(self.dtype.size() as u64) <= max);
        let elems = elems.ok_or_else(|| Error::Limit {
            op: "cross_attention_mask".into(),
            limit: "max_storage_buffer_binding_size".into(),
            requested: (b * len) as u64 * lk as u64 * self.dtype.size() as u64,
            max,
        })?;
        let mut bias = vec![0f32; elems];
        for (r, row) in m.chunks(tiles.max(1)).take(b * len).enumerate() {
            // A row that sees nothing keeps an all-zero bias (cross_attention_mask *= row mask).
            if rows[r] == 0.0 {
                continue;
            }
            for (tile, _) in row.iter().enumerate().filter(|(_, &v)| v != 1) {
                bias[r * lk + tile * p..r * lk + (tile + 1) * p].fill(self.dtype.lowest());
            }
        }
        Ok((Some(Tensor::from_host(gpu, &bias, &[b, len, lk], self.dtype)?), row_mask))
    }
}

impl Model for Mllama {
    fn inputs(&self) -> &'static [&'static str] {
        &["hidden_states", "cross_attention_states", "cross_attention_mask"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let (y, projected) = self.forward(
            rec,
            inputs.tensor("hidden_states")?,
            inputs.tensor("cross_attention_states")?,
            inputs.ints("cross_attention_mask")?,
        )?;
        Ok(vec![("output", y), ("projected", projected)])
    }
    fn describe(&self) -> Vec<String> {
        vec![
            format!("multi_modal_projector: Linear {} → {}", self.projector.in_features, self.projector.out_features),
            format!(
                "cross-attention decoder layer {}: width {}, {} query / {} K/V heads × {}, RMSNorm q/k norms, tanh gates {:.3} (attention) {:.3} (MLP), SwiGLU MLP",
                self.layer,
                self.hidden_size,
                self.attn.heads(),
                self.attn.kv_heads(),
                self.attn.head_dim(),
                self.attn_gate,
                self.mlp_gate
            ),
        ]
    }
}
