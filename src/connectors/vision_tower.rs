//! Vision towers: CLIP's (transformers `CLIPVisionModel`, `models/clip/modeling_clip.py`) and
//! SigLIP's (`SiglipVisionModel`, `models/siglip/modeling_siglip.py`: patch bias, no CLS,
//! positions [N, C], no pre-norm, gelu_pytorch_tanh), run up to the layer(s) a LLaVA-style model
//! selects, and BLIP-2's EVA ViT (`Blip2VisionModel`,
//! `models/blip_2/modeling_blip_2.py`), run whole:
//!
//! ```text
//! pixel_values [B, 3, S, S] → patchify (p×p) → patch_embedding (a GEMM; bias in BLIP-2)  [B, N, C]
//!   → [class_embedding ‖ patches] + position_embedding                                  [B, 1+N, C]
//!   → pre_layrnorm (CLIP) → hidden_states[0]
//!   layer i: h += out_proj(attn(LN1(h)));  h += fc2(act(fc1(LN2(h))))  → hidden_states[i+1]
//! CLIP / SigLIP: features = hidden_states[vision_feature_layer] (negative counts from the end,
//!         as Python does; a list is concatenated on channels), without the first token for the
//!         `default` strategy, no post_layernorm                                    [B, N, C·L]
//! BLIP-2: features = post_layernorm(last layer), CLS kept                           [B, 1+N, C]
//! ```
//! Layers past the selected one are not run (LLaVA's −2 skips the last). BLIP-2's attention is one
//! fused `qkv` [3C, C] (bias q ‖ 0 ‖ v as stored), then `projection`: its rows split into the Q and
//! the stacked K/V projections at load.

use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::attention::AttnOpts;
use crate::kernels::elementwise::{record_add_rows, record_copy_rows};
use crate::kernels::pool::record_patchify;
use crate::kernels::Activation;
use crate::nn::{Attention, Bias, LayerNorm, Linear};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

/// Where the tower sits: transformers 5's `save_pretrained`, Hub checkpoints converted under
/// transformers 4 (`vision_model.` inside), and the `model.`-prefixed in-memory names.
const ROOTS: &[&str] = &["vision_tower", "vision_tower.vision_model", "model.vision_tower", "model.vision_tower.vision_model"];
/// Where BLIP-2's tower sits.
const BLIP2_ROOTS: &[&str] = &["vision_model", "model.vision_model"];

#[derive(Debug)]
struct ClipLayer {
    layer_norm1: LayerNorm,
    attn: Attention,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl ClipLayer {
    /// The parts every tower names alike under `l` (`encoder.layers.{i}`): `layer_norm1/2`,
    /// `mlp.fc1/fc2` (hidden `inter`) and the attention's output projection `self_attn.{out_proj}`.
    fn load(gpu: &Gpu, l: &WeightSource, attn: Attention, out_proj: &str, [c, inter]: [usize; 2], eps: f32) -> Result<ClipLayer> {
        Ok(ClipLayer {
            layer_norm1: LayerNorm::load(gpu, &l.pp("layer_norm1"), c, eps)?,
            attn,
            out_proj: Linear::load(gpu, &l.pp("self_attn").pp(out_proj), Some(c), Some(c), Bias::Required)?,
            layer_norm2: LayerNorm::load(gpu, &l.pp("layer_norm2"), c, eps)?,
            fc1: Linear::load(gpu, &l.pp("mlp.fc1"), Some(c), Some(inter), Bias::Required)?,
            fc2: Linear::load(gpu, &l.pp("mlp.fc2"), Some(inter), Some(c), Bias::Required)?,
        })
    }
}

/// A vision tower (CLIP, SigLIP, or BLIP-2's EVA ViT), loaded up to the deepest layer the model
/// selects.
#[derive(Debug)]
pub struct VisionTower {
    patch_embedding: Linear,
    class_embedding: Option<Tensor>,
    position_embedding: Tensor,
    pre_layrnorm: Option<LayerNorm>,
    post_layernorm: Option<LayerNorm>,
    layers: Vec<ClipLayer>,
    act: Activation,
    /// `vision_config.image_size` S (pixel_values are [B, 3, S, S]).
    pub image_size: usize,
    /// `vision_config.patch_size` p.
    pub patch_size: usize,
    /// Width C.
    pub hidden_size: usize,
    /// Whether the first token (CLIP's CLS) is dropped (`vision_feature_select_strategy`
    /// `default`; transformers drops it for SigLIP too).
    pub drop_cls: bool,
    /// Indices into hidden_states (0 = the embeddings after `pre_layrnorm`, i = layer i's
    /// output; `layers + 1` = `post_layernorm` of the last), concatenated on channels in order.
    pub features: Vec<usize>,
}

/// `vision_feature_layer` (an int, or a list concatenated on channels; default −2) as indices
/// into the n_layers + 1 hidden states, Python-style negatives counting from the end.
fn feature_layers(cfg: &Config, n_layers: usize) -> Result<Vec<usize>> {
    let states = n_layers as i64 + 1;
    let raw = cfg.raw("vision_feature_layer").cloned().unwrap_or(serde_json::json!(-2));
    let list = match &raw {
        serde_json::Value::Array(a) if !a.is_empty() => a.clone(),
        serde_json::Value::Number(_) => vec![raw.clone()],
        _ => return Err(Error::config("vision_feature_layer", format!("{raw}: expected a layer index or a non-empty list of them"))),
    };
    list.iter()
        .map(|v| match v.as_i64() {
            Some(l) if (-states..states).contains(&l) => Ok(if l < 0 { states + l } else { l } as usize),
            _ => Err(Error::config(
                "vision_feature_layer",
                format!("{v}: the tower has {states} hidden states (embeddings + {n_layers} layers)"),
            )),
        })
        .collect()
}

impl VisionTower {
    /// Loads the tower of a `llava`-style config: `vision_config` (CLIP-L/336 when it is absent, as
    /// `LlavaConfig` builds it: 1024 wide, 24 layers of 16 heads, 336 px, 14-px patches; fields a
    /// given one leaves out take `CLIPVisionConfig`'s: 768, 12 × 12, 224, 32; quick_gelu, eps 1e-5),
    /// `vision_feature_layer` (an int, or a list whose states are concatenated on channels;
    /// default −2) and `vision_feature_select_strategy`. Only the layers up to the deepest one
    /// selected are read. `vision_config.model_type` `siglip_vision_model` loads SigLIP
    /// (`SiglipVisionConfig` defaults: 768, 12 × 12, 224 px, 16-px patches, eps 1e-6). Errors:
    /// [`Error::Config`] for a layer outside the tower or a tower that is neither;
    /// [`Error::MissingWeight`] / [`Error::Shape`] from the weights.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<VisionTower> {
        // LlavaConfig / LlavaNextConfig without a vision_config build CLIP-L/336; one that is given
        // but leaves fields out gets CLIPVisionConfig's own defaults.
        let absent = !cfg.has("vision_config");
        let vc = cfg.sub_or_default("vision_config");
        let siglip = match vc.opt_str("model_type")?.as_deref() {
            None | Some("clip_vision_model") => false,
            Some("siglip_vision_model") => true,
            Some(t) => {
                return Err(Error::config(
                    "vision_config.model_type",
                    format!("`{t}`: the towers that run from pixels are clip_vision_model and siglip_vision_model"),
                ))
            }
        };
        // CLIP-L/336 when absent, else CLIPVisionConfig's or SiglipVisionConfig's defaults.
        let d = |clip_l: usize, clip: usize, sig: usize| {
            if siglip {
                sig
            } else if absent {
                clip_l
            } else {
                clip
            }
        };
        let c = vc.opt_usize("hidden_size")?.unwrap_or(d(1024, 768, 768));
        let heads = vc.opt_usize("num_attention_heads")?.unwrap_or(d(16, 12, 12));
        let inter = vc.opt_usize("intermediate_size")?.unwrap_or(d(4096, 3072, 3072));
        let n_layers = vc.opt_count("num_hidden_layers")?.unwrap_or(d(24, 12, 12));
        let image_size = vc.opt_usize("image_size")?.unwrap_or(d(336, 224, 224));
        let patch_size = vc.opt_usize("patch_size")?.unwrap_or(d(14, 32, 16));
        let chans = vc.opt_usize("num_channels")?.unwrap_or(3);
        let eps = vc.opt_f64("layer_norm_eps")?.unwrap_or(if siglip { 1e-6 } else { 1e-5 }) as f32;
        let act = vc.opt_str("hidden_act")?.unwrap_or_else(|| if siglip { "gelu_pytorch_tanh" } else { "quick_gelu" }.into());
        let act = Activation::from_name(&act)?;
        let features = feature_layers(cfg, n_layers)?;
        let drop_cls = match cfg.opt_str("vision_feature_select_strategy")?.as_deref().unwrap_or("default") {
            "default" => true,
            "full" => false,
            other => return Err(Error::config("vision_feature_select_strategy", format!("`{other}`: expected `default` or `full`"))),
        };
        let ws = layouts::require(ws, ROOTS, "embeddings.patch_embedding.weight")?;
        let e = ws.pp("embeddings");
        let patch_cols = chans * patch_size * patch_size;
        let conv = e.get_host("patch_embedding.weight", &[c, chans, patch_size, patch_size])?;
        // SigLIP's conv has a bias and no class token; CLIP's the reverse.
        let bias = siglip.then(|| e.get_host("patch_embedding.bias", &[c])).transpose()?;
        let patch_embedding = Linear::from_host(gpu, &conv.data, bias.as_ref().map(|b| &b.data[..]), patch_cols, c, ws.dtype())?;
        let n = (image_size / patch_size).pow(2);
        let run = features.iter().max().copied().unwrap_or(0);
        let layers = (0..run)
            .map(|i| {
                let l = ws.pp(format!("encoder.layers.{i}"));
                let a = l.pp("self_attn");
                let attn = Attention::load_separate(gpu, &a.pp("q_proj"), &a.pp("k_proj"), &a.pp("v_proj"), c, c, heads, Bias::Required)?;
                ClipLayer::load(gpu, &l, attn, "out_proj", [c, inter], eps)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(VisionTower {
            patch_embedding,
            class_embedding: (!siglip).then(|| e.get(gpu, "class_embedding", &[c])?.reshape(&[1, 1, c])).transpose()?,
            position_embedding: e.get(gpu, "position_embedding.weight", &[n + !siglip as usize, c])?,
            pre_layrnorm: (!siglip).then(|| LayerNorm::load(gpu, &ws.pp("pre_layrnorm"), c, eps)).transpose()?,
            post_layernorm: None,
            layers,
            act,
            image_size,
            patch_size,
            hidden_size: c,
            drop_cls,
            features,
        })
    }

    /// Loads BLIP-2's tower (`vision_model.*`; `Blip2VisionConfig` defaults: 1408 wide, 39 layers
    /// of 16 heads, 224 px, 14-px patches, gelu, eps 1e-6): every layer and `post_layernorm`, the
    /// Q-Former reading all 1 + N tokens. Errors: [`Error::MissingWeight`] / [`Error::Shape`].
    pub fn load_blip2(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<VisionTower> {
        let vc = cfg.sub_or_default("vision_config");
        let c = vc.opt_usize("hidden_size")?.unwrap_or(1408);
        let heads = vc.opt_usize("num_attention_heads")?.unwrap_or(16);
        let inter = vc.opt_usize("intermediate_size")?.unwrap_or(6144);
        let n_layers = vc.opt_count("num_hidden_layers")?.unwrap_or(39);
        let (image_size, patch_size) = (vc.opt_usize("image_size")?.unwrap_or(224), vc.opt_usize("patch_size")?.unwrap_or(14));
        let eps = vc.opt_f64("layer_norm_eps")?.unwrap_or(1e-6) as f32;
        let act = Activation::from_name(&vc.opt_str("hidden_act")?.unwrap_or_else(|| "gelu".into()))?;
        let qkv_bias = vc.opt_bool("qkv_bias")?.unwrap_or(true);
        let ws = layouts::require(ws, BLIP2_ROOTS, "embeddings.patch_embedding.weight")?;
        let e = ws.pp("embeddings");
        let conv = e.get_host("patch_embedding.weight", &[c, 3, patch_size, patch_size])?;
        let bias = e.get_host("patch_embedding.bias", &[c])?;
        let patch_embedding = Linear::from_host(gpu, &conv.data, Some(&bias.data), 3 * patch_size * patch_size, c, ws.dtype())?;
        let n = (image_size / patch_size).pow(2);
        let head_dim = crate::nn::attention::head_dim(c, heads, "vision_config.num_attention_heads")?;
        let layers = (0..n_layers)
            .map(|i| {
                let l = ws.pp(format!("encoder.layers.{i}"));
                let a = l.pp("self_attn");
                // qkv rows: q, then k, then v. Q is the first C rows; K and V stay stacked.
                let w = a.get_host("qkv.weight", &[3 * c, c])?.data;
                let b = match qkv_bias {
                    true => Some(a.get_host("qkv.bias", &[3 * c])?.data),
                    false => None,
                };
                let q = Linear::from_host(gpu, &w[..c * c], b.as_ref().map(|b| &b[..c]), c, c, ws.dtype())?;
                let kv = Linear::from_host(gpu, &w[c * c..], b.as_ref().map(|b| &b[c..]), c, 2 * c, ws.dtype())?;
                ClipLayer::load(gpu, &l, Attention::from_stacked(q, kv, heads, head_dim), "projection", [c, inter], eps)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(VisionTower {
            patch_embedding,
            class_embedding: Some(e.get(gpu, "class_embedding", &[1, 1, c])?),
            position_embedding: e.get(gpu, "position_embedding", &[1, n + 1, c])?.reshape(&[n + 1, c])?,
            pre_layrnorm: None,
            post_layernorm: Some(LayerNorm::load(gpu, &ws.pp("post_layernorm"), c, eps)?),
            layers,
            act,
            image_size,
            patch_size,
            hidden_size: c,
            drop_cls: false,
            features: vec![n_layers + 1],
        })
    }

    /// Records the tower. pixel_values [B, 3, S, S] (S = `image_size`; pixels past the last
    /// whole patch are not read) → the selected features [B, T, C·L]: T = the tokens (CLIP and
    /// EVA: 1 + N with N = (S / p)², SigLIP: N) less the first with the `default` strategy, L =
    /// the number of feature layers (BLIP-2: `post_layernorm` of the last, L = 1, all 1 + N).
    /// Errors: [`Error::Shape`] naming `pixel_values`.
    pub fn forward(&self, rec: &mut Recorder, pixel_values: &Tensor) -> Result<Tensor> {
        pixel_values.expect_float(rec.gpu(), "pixel_values")?;
        let (s, c) = (self.image_size, self.hidden_size);
        let b = match *pixel_values.shape() {
            [b, ch, h, w] if h == s && w == s && ch * self.patch_size * self.patch_size == self.patch_embedding.in_features => b,
            _ => {
                let ch = self.patch_embedding.in_features / (self.patch_size * self.patch_size);
                return Err(Error::shape("pixel_values", format!("[B, {ch}, {s}, {s}]"), pixel_values.shape()));
            }
        };
        let n = (s / self.patch_size).pow(2);
        let patches = record_patchify(rec, pixel_values, self.patch_size)?;
        let patches = self.patch_embedding.forward(rec, &patches, Activation::Identity)?;
        let cls = self.class_embedding.is_some() as usize;
        let t = n + cls;
        let emb = match &self.class_embedding {
            Some(class) => {
                let emb = Tensor::empty(rec.gpu(), &[b, t, c], pixel_values.dtype())?;
                record_copy_rows(rec, class, 0, &emb, 0, 1)?;
                record_copy_rows(rec, &patches, 0, &emb, 1, n)?;
                emb
            }
            None => patches,
        };
        record_add_rows(rec, &emb, &self.position_embedding, 1, t)?;
        let mut h = match &self.pre_layrnorm {
            Some(ln) => ln.forward(rec, &emb)?,
            None => emb,
        };
        let mut picked: Vec<(usize, Tensor)> = Vec::new();
        if self.features.contains(&0) {
            picked.push((0, h.clone()));
        }
        for (i, l) in self.layers.iter().enumerate() {
            let x = l.layer_norm1.forward(rec, &h)?;
            let ctx = l.attn.context(rec, &x, &x, AttnOpts::default())?;
            h = l.out_proj.forward_residual(rec, &ctx, &h, 1.0)?;
            let x = l.layer_norm2.forward(rec, &h)?;
            let x = l.fc1.forward(rec, &x, self.act)?;
            h = l.fc2.forward_residual(rec, &x, &h, 1.0)?;
            if self.features.contains(&(i + 1)) {
                picked.push((i + 1, h.clone()));
            }
        }
        if let Some(ln) = &self.post_layernorm {
            picked.push((self.layers.len() + 1, ln.forward(rec, &h)?));
        }
        let state = |want: &usize| {
            picked.iter().find(|(i, _)| i == want).map(|(_, t)| t.clone()).ok_or_else(|| Error::config("vision_feature_layer", "not run"))
        };
        let h = match &self.features[..] {
            [one] => state(one)?,
            list => {
                // Channel concat: [b·t, L, c] is [b, t, L·c]; layer j's rows go to slot j.
                let out = Tensor::empty(rec.gpu(), &[b * t, list.len(), c], h.dtype())?;
                for (j, want) in list.iter().enumerate() {
                    record_copy_rows(rec, &state(want)?.reshape(&[b * t, 1, c])?, 0, &out, j, 1)?;
                }
                out.reshape(&[b, t, list.len() * c])?
            }
        };
        if !self.drop_cls {
            return Ok(h);
        }
        let out = Tensor::empty(rec.gpu(), &[b, t - 1, h.shape()[2]], h.dtype())?;
        record_copy_rows(rec, &h, 1, &out, 0, t - 1)?;
        Ok(out)
    }

    /// One line: kind, geometry, width, layers run, activation.
    pub fn summary(&self) -> String {
        format!(
            "{} vision tower: {}-px images, {}-px patches, width {}, {} layer{} run ({:?}){}",
            match (self.pre_layrnorm.is_some(), self.class_embedding.is_some()) {
                (true, _) => "CLIP",
                (false, true) => "BLIP-2 (EVA)",
                (false, false) => "SigLIP",
            },
            self.image_size,
            self.patch_size,
            self.hidden_size,
            self.layers.len(),
            if self.layers.len() == 1 { "" } else { "s" },
            self.act,
            if self.drop_cls { ", CLS dropped" } else { "" }
        )
    }
}
