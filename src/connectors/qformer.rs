//! BLIP-2 Q-Former, as transformers' `Blip2QFormerModel` computes it for the query tokens, followed
//! by `language_projection`:
//!
//! ```text
//! h = LayerNorm(query_tokens expanded over the batch)
//! for each layer i:
//!     h = LayerNorm(dense(SelfAttn(h)) + h)
//!     if i % cross_attention_frequency == 0:
//!         h = LayerNorm(dense(CrossAttn(h, image_embeds)) + h)
//!     h = LayerNorm(output_query(act(intermediate_query(h))) + h)
//! soft_prompt = language_projection(h)
//! ```

use std::path::Path;

use super::registry::{Connector, Inputs, Model, Named};
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::attention::AttnOpts;
use crate::kernels::elementwise::record_copy_rows;
use crate::kernels::Activation;
use crate::nn::{Attention, Bias, LayerNorm, Linear};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// The `qformer_config` fields the Q-Former reads (names as in transformers).
#[derive(Clone, Debug)]
pub struct QFormerConfig {
    /// Query token width.
    pub hidden_size: usize,
    /// Attention heads.
    pub num_attention_heads: usize,
    /// Layers.
    pub num_hidden_layers: usize,
    /// Feed-forward hidden width.
    pub intermediate_size: usize,
    /// Every this many layers has cross-attention to the image.
    pub cross_attention_frequency: usize,
    /// Image embedding width (the vision tower's).
    pub encoder_hidden_size: usize,
    /// Feed-forward activation.
    pub hidden_act: Activation,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// Learned query tokens (the output length).
    pub num_query_tokens: usize,
}

impl QFormerConfig {
    /// From a BLIP-2 / InstructBLIP `config.json`: the `qformer_config` block (transformers'
    /// defaults when it or a field is absent), `encoder_hidden_size` from `vision_config.hidden_size`
    /// (default 1408), which `Blip2Config.__init__` writes over the Q-Former's own value.
    pub fn from_config(cfg: &Config) -> Result<QFormerConfig> {
        let q = cfg.sub_or_default("qformer_config");
        let vision_width = cfg.sub_or_default("vision_config").opt_usize("hidden_size")?.unwrap_or(1408);
        Ok(QFormerConfig {
            hidden_size: q.opt_usize("hidden_size")?.unwrap_or(768),
            num_attention_heads: q.opt_usize("num_attention_heads")?.unwrap_or(12),
            num_hidden_layers: q.opt_count("num_hidden_layers")?.unwrap_or(12),
            intermediate_size: q.opt_usize("intermediate_size")?.unwrap_or(3072),
            cross_attention_frequency: q.opt_usize("cross_attention_frequency")?.unwrap_or(2),
            encoder_hidden_size: vision_width,
            hidden_act: Activation::from_name(&q.opt_str("hidden_act")?.unwrap_or_else(|| "gelu".into()))?,
            layer_norm_eps: q.opt_f64("layer_norm_eps")?.unwrap_or(1e-12) as f32,
            num_query_tokens: cfg.opt_usize("num_query_tokens")?.unwrap_or(32),
        })
    }
}

/// Attention + `output.dense` + `output.LayerNorm` (BERT's post-norm block).
#[derive(Debug)]
pub(crate) struct AttnBlock {
    attn: Attention,
    dense: Linear,
    norm: LayerNorm,
}

impl AttnBlock {
    pub(crate) fn load(gpu: &Gpu, ws: &WeightSource, c: &QFormerConfig, kv_dim: usize) -> Result<AttnBlock> {
        let a = ws.pp("attention");
        let h = c.hidden_size;
        Ok(AttnBlock {
            attn: Attention::load_separate(
                gpu,
                &a.pp("query"),
                &a.pp("key"),
                &a.pp("value"),
                h,
                kv_dim,
                c.num_attention_heads,
                Bias::Required,
            )?,
            dense: Linear::load(gpu, &ws.pp("output.dense"), Some(h), Some(h), Bias::Required)?,
            norm: LayerNorm::load(gpu, &ws.pp("output.LayerNorm"), h, c.layer_norm_eps)?,
        })
    }

    /// LayerNorm(dense(attn(x, kv)) + x)
    pub(crate) fn forward(&self, rec: &mut Recorder, x: &Tensor, kv: &Tensor) -> Result<Tensor> {
        self.forward_opts(rec, x, kv, AttnOpts::default())
    }

    /// LayerNorm(dense(attn(x, kv, opts)) + x): with a key mask.
    pub(crate) fn forward_opts(&self, rec: &mut Recorder, x: &Tensor, kv: &Tensor, opts: AttnOpts) -> Result<Tensor> {
        let ctx = self.attn.context(rec, x, kv, opts)?;
        let h = self.dense.forward(rec, &ctx, Activation::Identity)?;
        self.norm.forward_residual(rec, &h, x)
    }
}

/// Linear → act → Linear → LayerNorm(· + x): BERT's feed-forward (`intermediate*` / `output*`).
#[derive(Debug)]
pub(crate) struct Ffn {
    up: Linear,
    down: Linear,
    norm: LayerNorm,
}

impl Ffn {
    pub(crate) fn load(gpu: &Gpu, l: &WeightSource, up: &str, down: &str, c: &QFormerConfig) -> Result<Ffn> {
        let h = c.hidden_size;
        Ok(Ffn {
            up: Linear::load(gpu, &l.pp(format!("{up}.dense")), Some(h), Some(c.intermediate_size), Bias::Required)?,
            down: Linear::load(gpu, &l.pp(format!("{down}.dense")), Some(c.intermediate_size), Some(h), Bias::Required)?,
            norm: LayerNorm::load(gpu, &l.pp(format!("{down}.LayerNorm")), h, c.layer_norm_eps)?,
        })
    }

    pub(crate) fn forward(&self, rec: &mut Recorder, x: &Tensor, act: Activation) -> Result<Tensor> {
        let f = self.up.forward(rec, x, act)?;
        let f = self.down.forward(rec, &f, Activation::Identity)?;
        self.norm.forward_residual(rec, &f, x)
    }
}

#[derive(Debug)]
struct QFormerLayer {
    self_attn: AttnBlock,
    cross_attn: Option<AttnBlock>,
    /// The query rows' `intermediate_query` / `output_query` feed-forward.
    ffn: Ffn,
}

/// BLIP-2's Q-Former and `language_projection` (transformers `Blip2QFormerModel`,
/// `models/blip_2/modeling_blip_2.py`): image_embeds [B, N, encoder_hidden_size] →
/// (qformer_output [B, Q, hidden_size], soft prompt [B, Q, text width]).
#[derive(Debug)]
pub struct QFormer {
    /// The configuration it was built with.
    pub config: QFormerConfig,
    query_tokens: Tensor,
    layernorm: LayerNorm,
    layers: Vec<QFormerLayer>,
    language_projection: Linear,
}

impl QFormer {
    /// Loads a `blip-2` checkpoint folder (`config.json` + safetensors).
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<QFormer> {
        Connector::from_dir(gpu, dir)?.into_model()
    }

    /// Builds from a BLIP-2 config and weights. Only the Q-Former's query path and
    /// `language_projection` are read: checkpoints without the text-FFN weights (the released
    /// OPT/T5 ones) load. `text_config.hidden_size`, when present, is checked against the projection.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<QFormer> {
        let c = QFormerConfig::from_config(cfg)?;
        let ws = layouts::require(ws, layouts::BLIP2_ROOT, "query_tokens")?;
        let h = c.hidden_size;
        crate::nn::attention::head_dim(h, c.num_attention_heads, "qformer_config.num_attention_heads")?;
        let query_tokens = ws.get(gpu, "query_tokens", &[1, c.num_query_tokens, h])?;
        let layernorm = LayerNorm::load(gpu, &ws.pp("qformer.layernorm"), h, c.layer_norm_eps)?;
        let mut layers = Vec::new(); // grows as the weights load: the count is a config value
        for i in 0..c.num_hidden_layers {
            let l = ws.pp(format!("qformer.encoder.layer.{i}"));
            let cross = i % c.cross_attention_frequency == 0;
            layers.push(QFormerLayer {
                self_attn: AttnBlock::load(gpu, &l.pp("attention"), &c, h)?,
                cross_attn: if cross { Some(AttnBlock::load(gpu, &l.pp("crossattention"), &c, c.encoder_hidden_size)?) } else { None },
                ffn: Ffn::load(gpu, &l, "intermediate_query", "output_query", &c)?,
            });
        }
        let text_width = cfg.sub("text_config").map(|t| t.opt_usize("hidden_size")).transpose()?.flatten();
        let language_projection = Linear::load(gpu, &ws.pp("language_projection"), Some(h), text_width, Bias::Required)?;
        Ok(QFormer { config: c, query_tokens, layernorm, layers, language_projection })
    }

    /// Width of the language model the soft prompt is projected into.
    pub fn text_width(&self) -> usize {
        self.language_projection.out_features
    }

    /// Records the Q-Former. image_embeds [B, N, encoder_hidden_size] →
    /// (qformer_output [B, Q, hidden], soft prompt [B, Q, text_width]). N > 0; B = 0 gives empty
    /// outputs. Errors: [`Error::Shape`] for another width or rank.
    pub fn forward(&self, rec: &mut Recorder, image_embeds: &Tensor) -> Result<(Tensor, Tensor)> {
        image_embeds.expect_float(rec.gpu(), "image_embeds")?;
        let c = &self.config;
        let b = match *image_embeds.shape() {
            // b = 0: an empty batch, as in PyTorch. N = 0 image tokens raises in transformers 5
            // (the cross-attention's `view(b, 0, -1, head_dim)` cannot reshape 0 elements).
            [b, n, w] if w == c.encoder_hidden_size && n > 0 => b,
            _ => {
                return Err(Error::shape(
                    "image_embeds",
                    format!("[B, N, {}] (encoder_hidden_size)", c.encoder_hidden_size),
                    image_embeds.shape(),
                ))
            }
        };
        // 1. Query tokens [1, Q, H] broadcast over the batch, then the embedding LayerNorm.
        let queries = Tensor::empty(rec.gpu(), &[b, c.num_query_tokens, c.hidden_size], image_embeds.dtype())?;
        record_copy_rows(rec, &self.query_tokens, 0, &queries, 0, c.num_query_tokens)?;
        let mut h = self.layernorm.forward(rec, &queries)?;
        // 2. Layers: self-attention, cross-attention every `cross_attention_frequency`, query FFN.
        for layer in &self.layers {
            h = layer.self_attn.forward(rec, &h, &h)?;
            if let Some(cross) = &layer.cross_attn {
                h = cross.forward(rec, &h, image_embeds)?;
            }
            h = layer.ffn.forward(rec, &h, c.hidden_act)?;
        }
        // 3. Soft prompt for the language model.
        let projected = self.language_projection.forward(rec, &h, Activation::Identity)?;
        Ok((h, projected))
    }
}

impl Model for QFormer {
    fn inputs(&self) -> &'static [&'static str] {
        &["image_embeds"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let (h, projected) = self.forward(rec, inputs.tensor("image_embeds")?)?;
        Ok(vec![("output", projected), ("qformer_output", h)])
    }
    fn describe(&self) -> Vec<String> {
        let c = &self.config;
        vec![
            format!(
                "Q-Former: {} layers, hidden {}, {} heads, cross-attention every {} layer(s) over {}-wide image tokens",
                c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.cross_attention_frequency, c.encoder_hidden_size
            ),
            format!(
                "{} query tokens per image → language_projection {} → {}",
                c.num_query_tokens, c.hidden_size, self.language_projection.out_features
            ),
        ]
    }
}
