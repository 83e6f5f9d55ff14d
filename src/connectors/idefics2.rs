//! Idefics2's connector (`Idefics2Connector`, `models/idefics2/modeling_idefics2.py`): a SwiGLU
//! modality projection, then a Perceiver resampler with RMSNorms and grouped-query attention:
//!
//! ```text
//! x = down(act(gate(h)) · up(h))                       h: image_hidden_states [B, seq, C] → [B, seq, d]
//! latents = repeat(latents, B)                          [B, n, d]
//! per layer:  lat_n = RMSNorm(latents)
//!             latents += o_proj(attn(q = q_proj(lat_n), k/v = k/v_proj(concat(RMSNorm(x), lat_n))))
//!             latents += down(act(gate(m)) · up(m)),    m = RMSNorm(latents), hidden 4·d
//! out = RMSNorm(latents)                                [B, n, d]
//! ```
//! Keys are the context first, then the latents; `patch_attention_mask` [B, seq] masks context keys
//! (any nonzero value, or `true`, is a real patch: transformers 5 turns it into a bool mask with
//! `create_bidirectional_mask`); the latents are always visible. head_dim is `resampler_head_dim`, scale head_dim^-0.5; no biases anywhere.

use super::registry::{Inputs, Model, Named};
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::attention::AttnOpts;
use crate::kernels::elementwise::record_copy_rows;
use crate::kernels::Activation;
use crate::nn::{Attention, Bias, GatedFeedForward, Linear, RmsNorm};
use crate::runtime::{DType, Error, Gpu, Recorder, Result, Tensor};

/// Where the connector sits (`save_pretrained` and transformers 5 both write `model.connector`).
const ROOTS: &[&str] = &["model.connector", "connector"];

#[derive(Debug)]
struct Idefics2PerceiverLayer {
    input_latents_norm: RmsNorm,
    input_context_norm: RmsNorm,
    attn: Attention,
    o_proj: Linear,
    post_attention_layernorm: RmsNorm,
    mlp: GatedFeedForward,
}

/// The connector of an `idefics2` checkpoint.
#[derive(Debug)]
pub struct Idefics2Connector {
    modality_projection: GatedFeedForward,
    latents: Tensor,
    layers: Vec<Idefics2PerceiverLayer>,
    norm: RmsNorm,
    /// Vision width C (the input's).
    pub in_features: usize,
    /// Text width d (the output's).
    pub hidden_size: usize,
    /// `resampler_n_latents`: tokens out per image.
    pub n_latents: usize,
    dtype: DType,
}

impl Idefics2Connector {
    /// Loads `model.connector.{modality_projection, perceiver_resampler}`. Widths: C =
    /// `vision_config.hidden_size`, d = `text_config.hidden_size`, the projection's hidden width
    /// `text_config.intermediate_size` and act `text_config.hidden_act`; the resampler's from
    /// `perceiver_config` (`Idefics2PerceiverConfig` defaults when absent). As `Idefics2Config`
    /// does, a perceiver `hidden_size` (default 4096) other than the text width means the text's
    /// `rms_norm_eps` (1e-5 without a `text_config`, `MistralConfig`'s 1e-6 in one that omits it).
    /// Errors: [`Error::Config`] for heads that do not divide; [`Error::MissingWeight`] /
    /// [`Error::Shape`] from the weights.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<Idefics2Connector> {
        let (vc, tc, pc) = (cfg.sub_or_default("vision_config"), cfg.sub_or_default("text_config"), cfg.sub_or_default("perceiver_config"));
        let c = vc.opt_usize("hidden_size")?.unwrap_or(768);
        let d = tc.opt_usize("hidden_size")?.unwrap_or(4096);
        let act = |c: &Config| -> Result<Activation> { Activation::from_name(&c.opt_str("hidden_act")?.unwrap_or_else(|| "silu".into())) };
        let ws = layouts::require(ws, ROOTS, "perceiver_resampler.latents")?;
        let mp = ws.pp("modality_projection");
        let hidden = tc.opt_usize("intermediate_size")?.unwrap_or(14336);
        let down = Linear::load(gpu, &mp.pp("down_proj"), Some(hidden), Some(d), Bias::None)?;
        let modality_projection = GatedFeedForward::load(gpu, &mp, c, hidden, act(&tc)?, Some(down))?;
        let n_latents = pc.opt_usize("resampler_n_latents")?.unwrap_or(64);
        let depth = pc.opt_count("resampler_depth")?.unwrap_or(3);
        let heads = pc.opt_usize("resampler_n_heads")?.unwrap_or(16);
        let kv_heads = pc.opt_usize("num_key_value_heads")?.unwrap_or(4);
        let head_dim = pc.opt_usize("resampler_head_dim")?.unwrap_or(96);
        let eps = match pc.opt_usize("hidden_size")?.unwrap_or(4096) == d {
            true => pc.opt_f64("rms_norm_eps")?.unwrap_or(1e-6),
            false => tc.opt_f64("rms_norm_eps")?.unwrap_or(if cfg.has("text_config") { 1e-6 } else { 1e-5 }),
        } as f32;
        let p_act = act(&pc)?;
        let r = ws.pp("perceiver_resampler");
        let layers = (0..depth)
            .map(|i| {
                let l = r.pp(format!("layers.{i}"));
                let a = l.pp("self_attn");
                let proj = [&a.pp("q_proj"), &a.pp("k_proj"), &a.pp("v_proj")];
                Ok(Idefics2PerceiverLayer {
                    input_latents_norm: RmsNorm::load(gpu, &l.pp("input_latents_norm"), d, eps)?,
                    input_context_norm: RmsNorm::load(gpu, &l.pp("input_context_norm"), d, eps)?,
                    attn: Attention::load_projections(gpu, proj, d, d, [heads, kv_heads], head_dim, None)?,
                    o_proj: Linear::load(gpu, &a.pp("o_proj"), Some(heads * head_dim), Some(d), Bias::None)?,
                    post_attention_layernorm: RmsNorm::load(gpu, &l.pp("post_attention_layernorm"), d, eps)?,
                    mlp: GatedFeedForward::load(gpu, &l.pp("mlp"), d, 4 * d, p_act, None)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Idefics2Connector {
            modality_projection,
            latents: r.get(gpu, "latents", &[n_latents, d])?,
            layers,
            norm: RmsNorm::load(gpu, &r.pp("norm"), d, eps)?,
            in_features: c,
            hidden_size: d,
            n_latents,
            dtype: ws.dtype(),
        })
    }

    /// Records the connector. image_hidden_states [B, seq, C], `patch_attention_mask` [B, seq]
    /// (ints or bools; `None`: every patch real) → [B, n_latents, d]. Errors: [`Error::Shape`]
    /// naming the input whose shape disagrees.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor, mask: Option<(&[usize], &[i64])>) -> Result<Tensor> {
        x.expect_float(rec.gpu(), "image_hidden_states")?;
        let gpu = rec.gpu();
        let (b, seq) = match *x.shape() {
            [b, s, c] if c == self.in_features => (b, s),
            _ => return Err(Error::shape("image_hidden_states", format!("[B, seq, {}]", self.in_features), x.shape())),
        };
        let (n, d) = (self.n_latents, self.hidden_size);
        // Additive key mask [B, seq + n]: finfo.min where a patch is not real, 0 for the latents.
        let bias = match mask {
            Some((shape, _)) if shape != [b, seq] => return Err(Error::shape("patch_attention_mask", [b, seq], shape)),
            Some((_, v)) if v.contains(&0) => {
                let mut host = Vec::with_capacity(b * (seq + n));
                for row in v.chunks(seq.max(1)).take(b) {
                    host.extend(row.iter().map(|&m| if m != 0 { 0.0 } else { self.dtype.lowest() }));
                    host.extend(std::iter::repeat_n(0.0, n));
                }
                Some(Tensor::from_host(gpu, &host, &[b, seq + n], self.dtype)?)
            }
            _ => None,
        };
        let context = self.modality_projection.forward(rec, x)?;
        let mut latents = Tensor::empty(gpu, &[b, n, d], x.dtype())?;
        record_copy_rows(rec, &self.latents.reshape(&[1, n, d])?, 0, &latents, 0, n)?;
        for l in &self.layers {
            let lat_n = l.input_latents_norm.forward(rec, &latents)?;
            let ctx_n = l.input_context_norm.forward(rec, &context)?;
            let kv_in = Tensor::empty(gpu, &[b, seq + n, d], x.dtype())?;
            record_copy_rows(rec, &ctx_n, 0, &kv_in, 0, seq)?;
            record_copy_rows(rec, &lat_n, 0, &kv_in, seq, n)?;
            let attn = l.attn.context(rec, &lat_n, &kv_in, AttnOpts { mask: bias.as_ref(), ..Default::default() })?;
            latents = l.o_proj.forward_residual(rec, &attn, &latents, 1.0)?;
            let m = l.post_attention_layernorm.forward(rec, &latents)?;
            latents = l.mlp.forward_residual(rec, &m, &latents, 1.0)?;
        }
        self.norm.forward(rec, &latents)
    }
}

impl Model for Idefics2Connector {
    fn inputs(&self) -> &'static [&'static str] {
        &["image_hidden_states", "patch_attention_mask"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let mask = if inputs.contains("patch_attention_mask") { Some(inputs.ints("patch_attention_mask")?) } else { None };
        Ok(vec![("output", self.forward(rec, inputs.tensor("image_hidden_states")?, mask)?)])
    }
    fn describe(&self) -> Vec<String> {
        let a = self.layers.first().map(|l| &l.attn);
        vec![
            format!("modality projection: SwiGLU {} → {}", self.in_features, self.hidden_size),
            format!(
                "Perceiver resampler: {} layers, {} latents of width {}, {} query / {} K/V heads × {}, RMSNorms",
                self.layers.len(),
                self.n_latents,
                self.hidden_size,
                a.map_or(0, |a| a.heads()),
                a.map_or(0, |a| a.kv_heads()),
                a.map_or(0, |a| a.head_dim())
            ),
        ]
    }
}
