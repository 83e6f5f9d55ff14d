//! InstructBLIP's instruction-aware Q-Former (transformers `InstructBlipQFormerModel` +
//! `language_projection`, `models/instructblip/modeling_instructblip.py`):
//!
//! ```text
//! x = LayerNorm(cat(query_tokens, word_emb(ids) + pos_emb(arange(T))))        [B, Q + T, H]
//! for each layer i:
//!     x = LayerNorm(dense(SelfAttn(x, key mask = cat(ones(Q), attention_mask))) + x)
//!     q, t = x[:, :Q], x[:, Q:]
//!     if i % cross_attention_frequency == 0:  q = LayerNorm(dense(CrossAttn(q, image_embeds)) + q)
//!     q = LayerNorm(output_query(act(intermediate_query(q))) + q)
//!     t = LayerNorm(output(act(intermediate(t))) + t)
//!     x = cat(q, t)
//! qformer_output = x[:, :Q];  soft prompt = language_projection(qformer_output)
//! ```

use std::path::Path;

use super::qformer::{AttnBlock, Ffn};
use super::registry::{Connector, Inputs, Model, Named};
use super::QFormerConfig;
use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::attention::AttnOpts;
use crate::kernels::elementwise::{record_add_rows, record_copy_rows, record_gather_rows};
use crate::kernels::Activation;
use crate::nn::{Bias, LayerNorm, Linear};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

#[derive(Debug)]
struct Layer {
    self_attn: AttnBlock,
    cross_attn: Option<AttnBlock>,
    query_ffn: Ffn,
    text_ffn: Ffn,
}

/// InstructBLIP's Q-Former: image_embeds [B, N, encoder_hidden_size] and the instruction
/// (`qformer_input_ids`, `qformer_attention_mask` [B, T]) → (qformer_output [B, Q, H],
/// soft prompt [B, Q, text width]).
#[derive(Debug)]
pub struct InstructBlip {
    /// The configuration it was built with (`encoder_hidden_size` from `vision_config.hidden_size`).
    pub config: QFormerConfig,
    query_tokens: Tensor,
    word_embeddings: Tensor,
    position_embeddings: Tensor,
    layernorm: LayerNorm,
    layers: Vec<Layer>,
    language_projection: Linear,
}

impl InstructBlip {
    /// Loads an `instructblip` checkpoint folder (only the Q-Former and `language_projection`).
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<Path>) -> Result<InstructBlip> {
        Connector::from_dir(gpu, dir)?.into_model()
    }

    /// Builds from an InstructBLIP config (`qformer_config` with `vocab_size` and
    /// `max_position_embeddings`) and weights.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<InstructBlip> {
        // InstructBlipConfig, like Blip2Config, writes the vision width over encoder_hidden_size.
        let c = QFormerConfig::from_config(cfg)?;
        let q = cfg.sub_or_default("qformer_config");
        // InstructBlipQFormerConfig's defaults: vocab_size 30522, max_position_embeddings 512.
        let (vocab, max_pos) = (q.opt_usize("vocab_size")?.unwrap_or(30522), q.opt_usize("max_position_embeddings")?.unwrap_or(512));
        let ws = layouts::require(ws, layouts::BLIP2_ROOT, "query_tokens")?;
        let h = c.hidden_size;
        crate::nn::attention::head_dim(h, c.num_attention_heads, "qformer_config.num_attention_heads")?;
        let e = ws.pp("qformer.embeddings");
        let mut layers = Vec::new(); // grows as the weights load: the count is a config value
        for i in 0..c.num_hidden_layers {
            let l = ws.pp(format!("qformer.encoder.layer.{i}"));
            layers.push(Layer {
                self_attn: AttnBlock::load(gpu, &l.pp("attention"), &c, h)?,
                cross_attn: (i % c.cross_attention_frequency == 0)
                    .then(|| AttnBlock::load(gpu, &l.pp("crossattention"), &c, c.encoder_hidden_size))
                    .transpose()?,
                query_ffn: Ffn::load(gpu, &l, "intermediate_query", "output_query", &c)?,
                text_ffn: Ffn::load(gpu, &l, "intermediate", "output", &c)?,
            });
        }
        let text_width = cfg.sub("text_config").map(|t| t.opt_usize("hidden_size")).transpose()?.flatten();
        Ok(InstructBlip {
            query_tokens: ws.get(gpu, "query_tokens", &[1, c.num_query_tokens, h])?,
            word_embeddings: e.get(gpu, "word_embeddings.weight", &[vocab, h])?,
            position_embeddings: e.get(gpu, "position_embeddings.weight", &[max_pos, h])?,
            layernorm: LayerNorm::load(gpu, &e.pp("layernorm"), h, c.layer_norm_eps)?,
            layers,
            language_projection: Linear::load(gpu, &ws.pp("language_projection"), Some(h), text_width, Bias::Required)?,
            config: c,
        })
    }

    /// Records the Q-Former. image_embeds [B, N, encoder_hidden_size]; `input_ids` and
    /// `attention_mask` [B, T] (row-major, a key attended where the mask is nonzero) → (qformer_output [B, Q, H],
    /// soft prompt [B, Q, text width]). Errors: shapes, ids outside the vocabulary, T past
    /// `max_position_embeddings`.
    pub fn forward(
        &self,
        rec: &mut Recorder,
        image_embeds: &Tensor,
        input_ids: &[i64],
        attention_mask: &[i64],
        t: usize,
    ) -> Result<(Tensor, Tensor)> {
        image_embeds.expect_float(rec.gpu(), "image_embeds")?;
        let c = &self.config;
        let (q, h) = (c.num_query_tokens, c.hidden_size);
        let b = match *image_embeds.shape() {
            // N = 0 raises in transformers 5, as for BLIP-2 (the cross-attention's view).
            [b, n, w] if w == c.encoder_hidden_size && n > 0 => b,
            _ => {
                return Err(Error::shape(
                    "image_embeds",
                    format!("[B, N, {}] (vision_config.hidden_size)", c.encoder_hidden_size),
                    image_embeds.shape(),
                ))
            }
        };
        let max_pos = self.position_embeddings.shape()[0];
        if t > max_pos {
            // InstructBlipQFormerEmbeddings slices position_ids[:T] and fails to add past the table.
            return Err(Error::input("qformer_input_ids", format!("{t} tokens, past max_position_embeddings {max_pos}")));
        }
        if input_ids.len() != b * t || attention_mask.len() != b * t {
            let got = (input_ids.len(), attention_mask.len());
            return Err(Error::shape("qformer_input_ids / qformer_attention_mask", format!("[{b}, {t}] each"), got));
        }
        // 1. Embeddings: cat(queries, words + positions), then LayerNorm over all Q + T rows.
        let gpu = rec.gpu();
        let text = record_gather_rows(rec, &self.word_embeddings, input_ids, "qformer_input_ids")?;
        if b * t > 0 {
            record_add_rows(rec, &text, &self.position_embeddings, 1, t)?; // row r gets position r % T
        }
        let x = Tensor::empty(gpu, &[b, q + t, h], image_embeds.dtype())?;
        record_copy_rows(rec, &self.query_tokens, 0, &x, 0, q)?;
        record_copy_rows(rec, &text.reshape(&[b, t, h])?, 0, &x, q, t)?;
        let mut x = self.layernorm.forward(rec, &x)?;
        // 2. Key mask: queries always seen; a text key where attention_mask is nonzero (transformers 5
        //    `create_bidirectional_mask` reads it as bool), else finfo.min.
        let mask: Vec<f32> = (0..b)
            .flat_map(|r| {
                (0..q).map(|_| 0.0).chain(attention_mask[r * t..(r + 1) * t].iter().map(|&m| {
                    if m != 0 {
                        0.0
                    } else {
                        image_embeds.dtype().lowest()
                    }
                }))
            })
            .collect();
        let mask = Tensor::from_host(gpu, &mask, &[b, q + t], image_embeds.dtype())?;
        for l in &self.layers {
            x = l.self_attn.forward_opts(rec, &x, &x, AttnOpts { mask: Some(&mask), ..Default::default() })?;
            let (mut qs, ts) = (Tensor::empty(gpu, &[b, q, h], x.dtype())?, Tensor::empty(gpu, &[b, t, h], x.dtype())?);
            record_copy_rows(rec, &x, 0, &qs, 0, q)?;
            record_copy_rows(rec, &x, q, &ts, 0, t)?;
            if let Some(cross) = &l.cross_attn {
                qs = cross.forward(rec, &qs, image_embeds)?;
            }
            let qs = l.query_ffn.forward(rec, &qs, c.hidden_act)?;
            let ts = l.text_ffn.forward(rec, &ts, c.hidden_act)?;
            x = Tensor::empty(gpu, &[b, q + t, h], qs.dtype())?;
            record_copy_rows(rec, &qs, 0, &x, 0, q)?;
            record_copy_rows(rec, &ts, 0, &x, q, t)?;
        }
        // 3. The query rows, and the soft prompt for the language model.
        let out = Tensor::empty(gpu, &[b, q, h], x.dtype())?;
        record_copy_rows(rec, &x, 0, &out, 0, q)?;
        let projected = self.language_projection.forward(rec, &out, Activation::Identity)?;
        Ok((out, projected))
    }
}

impl Model for InstructBlip {
    fn inputs(&self) -> &'static [&'static str] {
        &["image_embeds", "qformer_input_ids", "qformer_attention_mask"]
    }
    fn record(&self, rec: &mut Recorder, inputs: &Inputs) -> Result<Named> {
        let (shape, ids) = inputs.ints("qformer_input_ids")?;
        let image_embeds = inputs.tensor("image_embeds")?;
        let t = match *shape {
            [b, t] if Some(&b) == image_embeds.shape().first() => t,
            _ => return Err(Error::shape("qformer_input_ids", format!("[{}, T]", image_embeds.shape().first().unwrap_or(&0)), shape)),
        };
        // Without a mask every token is attended (InstructBlipForConditionalGeneration: ones_like(ids)).
        let ones;
        let mask = match inputs.contains("qformer_attention_mask") {
            true => {
                let (mshape, mask) = inputs.ints("qformer_attention_mask")?;
                if mshape != shape {
                    return Err(Error::shape("qformer_attention_mask", shape, mshape));
                }
                mask
            }
            false => {
                ones = vec![1i64; ids.len()];
                &ones
            }
        };
        let (h, projected) = self.forward(rec, image_embeds, ids, mask, t)?;
        Ok(vec![("output", projected), ("qformer_output", h)])
    }
    fn describe(&self) -> Vec<String> {
        let c = &self.config;
        vec![format!(
            "Q-Former: {} layers, hidden {}, {} heads, cross-attention every {} layer(s) over {}-wide image tokens; the instruction (qformer_input_ids) joins the self-attention",
            c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.cross_attention_frequency, c.encoder_hidden_size
        ), format!("{} query tokens per image → language_projection {} → {}", c.num_query_tokens, c.hidden_size, self.language_projection.out_features)]
    }
}
