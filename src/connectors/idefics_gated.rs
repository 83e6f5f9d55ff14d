//! IDEFICS's gated cross-attention layer (transformers `IdeficsGatedCrossAttentionLayer`,
//! `models/idefics/modeling_idefics.py`), run before decoder layer `j · cross_layer_interval`:
//!
//! ```text
//! h   = x + tanh(alpha_cross_attn) ⊙ where(gate, o_proj(attn(q_proj(RMSNorm(x)), k/v_proj(images))), 0)
//! out = h + tanh(alpha_dense)      ⊙ down_proj(act(gate_proj(n)) · up_proj(n)),   n = RMSNorm(h)
//! ```
//! `alpha_*` are `[1]` (`alpha_type: float`) or `[1, 1, D]` (`vector`: folded into the rows of
//! `o_proj` / `down_proj` at load). Optional per-head RMSNorm q/k norms (`qk_layer_norms`).
//! Each text token attends the images `image_attention_mask` gives it; a token with none gets a
//! zero attention output (the reference's uniform softmax over `finfo.min` scores, then
//! `masked_fill(gate == 0, 0)`), and the MLP half still runs on every token.

use crate::checkpoint::{Config, WeightSource};
use crate::kernels::attention::AttnOpts;
use crate::kernels::Activation;
use crate::nn::{Attention, Bias, GatedFeedForward, Linear, Norm, QkNorm, RmsNorm};
use crate::runtime::{DType, Error, Gpu, Recorder, Result, Tensor};

/// What a gated layer reads from an `idefics` config (transformers `IdeficsConfig` defaults for absent fields).
#[derive(Clone, Debug)]
pub struct IdeficsGatedConfig {
    /// `hidden_size` (D).
    pub hidden_size: usize,
    /// `vision_config.embed_dim` (E): the width of the image tokens.
    pub embed_dim: usize,
    /// `num_attention_heads`; head_dim = D / heads.
    pub num_attention_heads: usize,
    /// `intermediate_size` of the MLP.
    pub intermediate_size: usize,
    /// `hidden_act` of the MLP's gate.
    pub hidden_act: Activation,
    /// `rms_norm_eps` (the layer norms and the q/k norms).
    pub rms_norm_eps: f32,
    /// `alpha_type`: `float` (false) or `vector` (true).
    pub alpha_vector: bool,
    /// `qk_layer_norms`.
    pub qk_layer_norms: bool,
}

impl IdeficsGatedConfig {
    /// Reads the top level of an `idefics` config.
    pub fn from_config(c: &Config) -> Result<IdeficsGatedConfig> {
        Ok(IdeficsGatedConfig {
            hidden_size: c.opt_usize("hidden_size")?.unwrap_or(4096),
            embed_dim: c.sub_or_default("vision_config").opt_usize("embed_dim")?.unwrap_or(768),
            num_attention_heads: c.opt_usize("num_attention_heads")?.unwrap_or(32),
            intermediate_size: c.opt_usize("intermediate_size")?.unwrap_or(11008),
            hidden_act: Activation::from_name(&c.opt_str("hidden_act")?.unwrap_or_else(|| "silu".into()))?,
            rms_norm_eps: c.opt_f64("rms_norm_eps")?.unwrap_or(1e-6) as f32,
            alpha_vector: match c.opt_str("alpha_type")?.as_deref() {
                None | Some("float") => false,
                Some("vector") => true,
                // IdeficsGatedCrossAttentionLayer raises ValueError for any other alpha_type.
                Some(other) => return Err(Error::config("alpha_type", format!("`{other}`; expected `float` or `vector`"))),
            },
            qk_layer_norms: c.opt_bool("qk_layer_norms")?.unwrap_or(false),
        })
    }
}

/// `image_attention_mask` checked and turned into what the attention kernel reads (made only by
/// [`IdeficsGatedCrossAttention::upload_mask`]): per-token key ranges, a per-token additive mask
/// when some token sees images that are not consecutive, and `cross_attention_gate` [b, L].
#[derive(Clone, Debug)]
pub struct ImageAttentionMask {
    ranges: Tensor,
    mask: Option<Tensor>,
    /// `cross_attention_gate` [b, L]: 1 where the token attends at least one image.
    pub gate: Tensor,
    /// (batch, text tokens, images, tokens per image) it was built for.
    pub dims: [usize; 4],
}

/// One IDEFICS gated cross-attention layer.
#[derive(Debug)]
pub struct IdeficsGatedCrossAttention {
    /// The configuration it was built with.
    pub config: IdeficsGatedConfig,
    input_layernorm: RmsNorm,
    attn: Attention,
    o_proj: Linear,
    post_attention_layernorm: RmsNorm,
    mlp: GatedFeedForward,
    /// tanh(alpha_cross_attn) (1 when a vector alpha is folded into `o_proj`).
    pub attn_alpha: f32,
    /// tanh(alpha_dense) (1 when a vector alpha is folded into `down_proj`).
    pub ff_alpha: f32,
    /// The compute dtype (the weights'; masks are made in it).
    pub dtype: DType,
}

impl IdeficsGatedCrossAttention {
    /// Loads the layer under `ws` (e.g. `model.gated_cross_attn_layers.0`), with shape checks from `c`.
    pub fn load(gpu: &Gpu, c: IdeficsGatedConfig, ws: &WeightSource) -> Result<IdeficsGatedCrossAttention> {
        let (d, e) = (c.hidden_size, c.embed_dim);
        // IdeficsAttention raises ValueError unless the heads divide hidden_size.
        let head_dim = crate::nn::attention::head_dim(d, c.num_attention_heads, "num_attention_heads")?;
        let a = ws.pp("cross_attn");
        let qk_norm = match c.qk_layer_norms {
            true => Some(QkNorm {
                q: Norm::Rms(RmsNorm::load(gpu, &a.pp("q_layer_norm"), head_dim, c.rms_norm_eps)?),
                k: Norm::Rms(RmsNorm::load(gpu, &a.pp("k_layer_norm"), head_dim, c.rms_norm_eps)?),
            }),
            false => None,
        };
        let proj = [&a.pp("q_proj"), &a.pp("k_proj"), &a.pp("v_proj")];
        let attn = Attention::load_projections(gpu, proj, d, e, [c.num_attention_heads; 2], head_dim, qk_norm)?;
        // A float alpha scales the GEMM epilogue; a vector one is folded into the output rows.
        let alpha = |name: &str| -> Result<Vec<f32>> {
            let shape: &[usize] = if c.alpha_vector { &[1, 1, d] } else { &[1] };
            Ok(ws.get_host(name, shape)?.data.iter().map(|v| v.tanh()).collect())
        };
        let (alpha_attn, alpha_ff) = (alpha("alpha_cross_attn")?, alpha("alpha_dense")?);
        let scaled = |w: &WeightSource, in_f: usize, scale: &[f32]| -> Result<Option<Linear>> {
            if !c.alpha_vector {
                return Ok(None);
            }
            let mut weight = w.get_host("weight", &[d, in_f])?.data;
            for (row, s) in weight.chunks_mut(in_f.max(1)).zip(scale) {
                row.iter_mut().for_each(|v| *v *= s);
            }
            Linear::from_host(gpu, &weight, None, in_f, d, w.dtype()).map(Some)
        };
        let o_proj = match scaled(&a.pp("o_proj"), d, &alpha_attn)? {
            Some(l) => l,
            None => Linear::load(gpu, &a.pp("o_proj"), Some(d), Some(d), Bias::None)?,
        };
        let down = scaled(&ws.pp("mlp.down_proj"), c.intermediate_size, &alpha_ff)?;
        let mlp = GatedFeedForward::load(gpu, &ws.pp("mlp"), d, c.intermediate_size, c.hidden_act, down)?;
        let scalar = |a: &[f32]| if c.alpha_vector { 1.0 } else { a[0] };
        Ok(IdeficsGatedCrossAttention {
            input_layernorm: RmsNorm::load(gpu, &ws.pp("input_layernorm"), d, c.rms_norm_eps)?,
            post_attention_layernorm: RmsNorm::load(gpu, &ws.pp("post_attention_layernorm"), d, c.rms_norm_eps)?,
            attn,
            o_proj,
            mlp,
            attn_alpha: scalar(&alpha_attn),
            ff_alpha: scalar(&alpha_ff),
            dtype: ws.dtype(),
            config: c,
        })
    }

    /// One line: widths, heads, alphas, q/k norms, MLP.
    pub fn summary(&self) -> String {
        let c = &self.config;
        format!(
            "text width {}, image width {}, {} heads, alpha_type {}, q/k norms {}, MLP {} → {} ({:?}-gated)",
            c.hidden_size,
            c.embed_dim,
            c.num_attention_heads,
            if c.alpha_vector { "vector" } else { "float" },
            if c.qk_layer_norms { "RMSNorm" } else { "none" },
            c.hidden_size,
            c.intermediate_size,
            c.hidden_act
        )
    }

    /// Checks `image_attention_mask` [b, L, num_images] and builds what the layer reads for images
    /// of `n` tokens each, as `IdeficsModel.forward` (transformers 5) does: any nonzero value means
    /// "sees this image" (`torch.where(mask.bool(), 0, finfo.min)`), repeated over the image's
    /// tokens, and `cross_attention_gate = any(mask)`. `n` is the token count per image that
    /// [`Self::forward`] will see (image_hidden_states [b, num_images·n, E]). Errors:
    /// [`Error::Shape`] for a length other than b·L·num_images; [`Error::Limit`] when b·L, or the
    /// per-token mask [b, L, num_images·n] built for tokens that see images with gaps between
    /// them, passes the device's storage-binding size.
    pub fn upload_mask(&self, gpu: &Gpu, mask: &[i64], [b, len, images]: [usize; 3], n: usize) -> Result<ImageAttentionMask> {
        if Some(mask.len()) != b.checked_mul(len).and_then(|v| v.checked_mul(images)) {
            return Err(Error::shape("image_attention_mask", [b, len, images], mask.len()));
        }
        // With no images the mask is empty whatever b·L says: bound the ranges by the binding size
        // before building them (16 bytes a token).
        let max = gpu.limits().max_storage_buffer_binding_size;
        if b.checked_mul(len).is_none_or(|t| t as u64 * 16 > max) {
            let requested = (b as u64).saturating_mul(len as u64).saturating_mul(16);
            return Err(Error::Limit {
                op: "image_attention_mask".into(),
                limit: "max_storage_buffer_binding_size".into(),
                requested,
                max,
            });
        }
        let mut ranges = Vec::with_capacity(b * len * 4);
        let mut gate = Vec::with_capacity(b * len);
        let mut gaps = false;
        let row = |t: usize| &mask[t * images..(t + 1) * images];
        for t in 0..b * len {
            let row = row(t);
            let seen: Vec<usize> = (0..images).filter(|&m| row[m] != 0).collect();
            let (lo, hi) = match (seen.first(), seen.last()) {
                (Some(&f), Some(&l)) => (f * n, (l + 1) * n),
                _ => (0, 0),
            };
            gaps |= !seen.is_empty() && seen.len() != seen[seen.len() - 1] - seen[0] + 1;
            ranges.extend([lo as u32, hi as u32, 0, 0]);
            // any(mask repeated over n tokens): nothing is seen when the images have no tokens.
            gate.push(if seen.is_empty() || n == 0 { 0.0 } else { 1.0 });
        }
        // Tokens that see images with a gap between them also need the images in between masked.
        let mask_t = match gaps {
            false => None,
            true => {
                let lk = images * n;
                let size = self.dtype.size() as u64;
                let elems = (b * len).checked_mul(lk).filter(|&e| e as u64 * size <= gpu.limits().max_storage_buffer_binding_size);
                let elems = elems.ok_or_else(|| Error::Limit {
                    op: "image_attention_mask".into(),
                    limit: "max_storage_buffer_binding_size".into(),
                    requested: (b * len) as u64 * lk as u64 * size,
                    max: gpu.limits().max_storage_buffer_binding_size,
                })?;
                let mut m = vec![0f32; elems];
                for t in 0..b * len {
                    for (img, _) in row(t).iter().enumerate().filter(|(_, &v)| v == 0) {
                        m[t * lk + img * n..t * lk + (img + 1) * n].fill(self.dtype.lowest());
                    }
                }
                Some(Tensor::from_host(gpu, &m, &[b, len, lk], self.dtype)?)
            }
        };
        let ranges = Tensor::from_u32(gpu, &ranges, &[b * len * 4])?;
        let gate = Tensor::from_host(gpu, &gate, &[b, len], self.dtype)?;
        Ok(ImageAttentionMask { ranges, mask: mask_t, gate, dims: [b, len, images, n] })
    }

    /// Records the layer. x [b, L, D], images [b, num_images·n, E], mask from [`Self::upload_mask`]
    /// → [b, L, D]. Errors: [`Error::Shape`] for widths, ranks, or a mask built for another geometry.
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor, images: &Tensor, mask: &ImageAttentionMask) -> Result<Tensor> {
        x.expect_float(rec.gpu(), "hidden_states")?;
        images.expect_float(rec.gpu(), "image_hidden_states")?;
        mask.ranges.check_gpu(rec.gpu(), "image_attention_mask")?;
        let c = &self.config;
        let [mb, ml, mi, mn] = mask.dims;
        let (b, len) = match *x.shape() {
            [b, l, d] if d == c.hidden_size => (b, l),
            _ => return Err(Error::shape("hidden_states", format!("[b, L, {}]", c.hidden_size), x.shape())),
        };
        images.expect_shape("image_hidden_states", &[b, mi * mn, c.embed_dim])?;
        if (mb, ml) != (b, len) {
            return Err(Error::shape("image_attention_mask", [b, len, mi], [mb, ml, mi]));
        }
        let h = self.input_layernorm.forward(rec, x)?;
        let opts = AttnOpts { mask: mask.mask.as_ref(), ranges: Some(&mask.ranges), kv_heads: None };
        let ctx = self.attn.context(rec, &h, images, opts)?;
        let h = self.o_proj.forward_residual(rec, &ctx, x, self.attn_alpha)?;
        let n = self.post_attention_layernorm.forward(rec, &h)?;
        self.mlp.forward_residual(rec, &n, &h, self.ff_alpha)
    }
}
