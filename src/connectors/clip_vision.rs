//! CLIP's vision tower (transformers `CLIPVisionModel`, `models/clip/modeling_clip.py`), run up to
//! the layer a LLaVA-style model selects:
//!
//! ```text
//! pixel_values [B, 3, S, S] → patchify (p×p) → patch_embedding (a GEMM, no bias)   [B, N, C]
//!   → [class_embedding ‖ patches] + position_embedding                           [B, 1+N, C]
//!   → pre_layrnorm → hidden_states[0]
//!   layer i: h += out_proj(attn(LN1(h)));  h += fc2(act(fc1(LN2(h))))  → hidden_states[i+1]
//! features = hidden_states[vision_feature_layer] (negative counts from the end, as Python does),
//!            without CLS for the `default` strategy                                 [B, N, C]
//! ```
//! Layers past the selected one are not run (LLaVA's −2 skips the last). `post_layernorm` is not
//! applied (LLaVA does not use it).

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

#[derive(Debug)]
struct ClipLayer {
    layer_norm1: LayerNorm,
    attn: Attention,
    out_proj: Linear,
    layer_norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

/// A CLIP vision tower, loaded up to the layer the model selects.
#[derive(Debug)]
pub struct ClipVisionTower {
    patch_embedding: Linear,
    class_embedding: Tensor,
    position_embedding: Tensor,
    pre_layrnorm: LayerNorm,
    layers: Vec<ClipLayer>,
    act: Activation,
    /// `vision_config.image_size` S (pixel_values are [B, 3, S, S]).
    pub image_size: usize,
    /// `vision_config.patch_size` p.
    pub patch_size: usize,
    /// Width C.
    pub hidden_size: usize,
    /// Whether the CLS token is dropped (`vision_feature_select_strategy` `default`).
    pub drop_cls: bool,
}

impl ClipVisionTower {
    /// Loads the tower of a `llava`-style config: `vision_config` (`CLIPVisionConfig` defaults:
    /// 768 wide, 12 layers of 12 heads, 224 px, 32-px patches, quick_gelu, eps 1e-5),
    /// `vision_feature_layer` (an int; default −2) and `vision_feature_select_strategy`. Only the
    /// layers up to the selected one are read. Errors: [`Error::Config`] for a list of feature
    /// layers (not yet supported), a layer outside the tower or a tower that is not CLIP;
    /// [`Error::MissingWeight`] / [`Error::Shape`] from the weights.
    pub fn load(gpu: &Gpu, cfg: &Config, ws: &WeightSource) -> Result<ClipVisionTower> {
        let vc = cfg.sub_or_default("vision_config");
        if let Some(t) = vc.opt_str("model_type")?.filter(|t| t != "clip_vision_model") {
            return Err(Error::config(
                "vision_config.model_type",
                format!("`{t}`: only the CLIP tower (clip_vision_model) runs from pixels yet"),
            ));
        }
        let c = vc.opt_usize("hidden_size")?.unwrap_or(768);
        let heads = vc.opt_usize("num_attention_heads")?.unwrap_or(12);
        let inter = vc.opt_usize("intermediate_size")?.unwrap_or(3072);
        let n_layers = vc.opt_count("num_hidden_layers")?.unwrap_or(12);
        let (image_size, patch_size) = (vc.opt_usize("image_size")?.unwrap_or(224), vc.opt_usize("patch_size")?.unwrap_or(32));
        let chans = vc.opt_usize("num_channels")?.unwrap_or(3);
        let eps = vc.opt_f64("layer_norm_eps")?.unwrap_or(1e-5) as f32;
        let act = Activation::from_name(&vc.opt_str("hidden_act")?.unwrap_or_else(|| "quick_gelu".into()))?;
        // hidden_states has n_layers + 1 entries (embeddings first); Python indexing.
        let layer = match cfg.raw("vision_feature_layer") {
            None => -2,
            Some(serde_json::Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or(-2),
            Some(v) => return Err(Error::config("vision_feature_layer", format!("{v}: only a single layer index runs from pixels yet"))),
        };
        let states = n_layers as i64 + 1;
        let index = if layer < 0 { states + layer } else { layer };
        if !(0..states).contains(&index) {
            return Err(Error::config(
                "vision_feature_layer",
                format!("{layer}: the tower has {states} hidden states (embeddings + {n_layers} layers)"),
            ));
        }
        let drop_cls = cfg.opt_str("vision_feature_select_strategy")?.as_deref().unwrap_or("default") == "default";
        let ws = layouts::require(ws, ROOTS, "embeddings.patch_embedding.weight")?;
        let e = ws.pp("embeddings");
        let patch_cols = chans * patch_size * patch_size;
        let conv = e.get_host("patch_embedding.weight", &[c, chans, patch_size, patch_size])?;
        let patch_embedding = Linear::from_host(gpu, &conv.data, None, patch_cols, c, ws.dtype())?;
        let n = (image_size / patch_size).pow(2);
        let layers = (0..index as usize)
            .map(|i| {
                let l = ws.pp(format!("encoder.layers.{i}"));
                let a = l.pp("self_attn");
                Ok(ClipLayer {
                    layer_norm1: LayerNorm::load(gpu, &l.pp("layer_norm1"), c, eps)?,
                    attn: Attention::load_separate(gpu, &a.pp("q_proj"), &a.pp("k_proj"), &a.pp("v_proj"), c, c, heads, Bias::Required)?,
                    out_proj: Linear::load(gpu, &a.pp("out_proj"), Some(c), Some(c), Bias::Required)?,
                    layer_norm2: LayerNorm::load(gpu, &l.pp("layer_norm2"), c, eps)?,
                    fc1: Linear::load(gpu, &l.pp("mlp.fc1"), Some(c), Some(inter), Bias::Required)?,
                    fc2: Linear::load(gpu, &l.pp("mlp.fc2"), Some(inter), Some(c), Bias::Required)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ClipVisionTower {
            patch_embedding,
            class_embedding: e.get(gpu, "class_embedding", &[c])?.reshape(&[1, 1, c])?,
            position_embedding: e.get(gpu, "position_embedding.weight", &[n + 1, c])?,
            pre_layrnorm: LayerNorm::load(gpu, &ws.pp("pre_layrnorm"), c, eps)?,
            layers,
            act,
            image_size,
            patch_size,
            hidden_size: c,
            drop_cls,
        })
    }

    /// Records the tower. pixel_values [B, 3, S, S] → the selected features [B, N, C] (or
    /// [B, 1+N, C] with the `full` strategy). Errors: [`Error::Shape`] naming `pixel_values`.
    pub fn forward(&self, rec: &mut Recorder, pixel_values: &Tensor) -> Result<Tensor> {
        pixel_values.expect_float(rec.gpu(), "pixel_values")?;
        let (s, c) = (self.image_size, self.hidden_size);
        let b = match *pixel_values.shape() {
            [b, ch, h, w] if h == s && w == s && ch * self.patch_size * self.patch_size == self.patch_embedding.in_features => b,
            _ => return Err(Error::shape("pixel_values", format!("[B, 3, {s}, {s}]"), pixel_values.shape())),
        };
        let n = (s / self.patch_size).pow(2);
        let patches = record_patchify(rec, pixel_values, self.patch_size)?;
        let patches = self.patch_embedding.forward(rec, &patches, Activation::Identity)?;
        let emb = Tensor::empty(rec.gpu(), &[b, n + 1, c], pixel_values.dtype())?;
        record_copy_rows(rec, &self.class_embedding, 0, &emb, 0, 1)?;
        record_copy_rows(rec, &patches, 0, &emb, 1, n)?;
        record_add_rows(rec, &emb, &self.position_embedding, 1, n + 1)?;
        let mut h = self.pre_layrnorm.forward(rec, &emb)?;
        for l in &self.layers {
            let x = l.layer_norm1.forward(rec, &h)?;
            let ctx = l.attn.context(rec, &x, &x, AttnOpts::default())?;
            h = l.out_proj.forward_residual(rec, &ctx, &h, 1.0)?;
            let x = l.layer_norm2.forward(rec, &h)?;
            let x = l.fc1.forward(rec, &x, self.act)?;
            h = l.fc2.forward_residual(rec, &x, &h, 1.0)?;
        }
        if !self.drop_cls {
            return Ok(h);
        }
        let out = Tensor::empty(rec.gpu(), &[b, n, c], h.dtype())?;
        record_copy_rows(rec, &h, 1, &out, 0, n)?;
        Ok(out)
    }

    /// One line: width, layers run, heads, geometry.
    pub fn summary(&self) -> String {
        format!(
            "CLIP vision tower: {}-px images, {}-px patches, width {}, {} layers run ({:?}){}",
            self.image_size,
            self.patch_size,
            self.hidden_size,
            self.layers.len(),
            self.act,
            if self.drop_cls { ", CLS dropped" } else { "" }
        )
    }
}

/// LLaVA from pixels (`LlavaModel.get_image_features`, `models/llava/modeling_llava.py`): the CLIP
/// tower up to `vision_feature_layer`, then the projector. Built by the `llava` loader when the
/// config's `load_vision_tower` is true (`vlmc run` sets it when the inputs hold `pixel_values`):
/// connector-only users do not pay for the tower's weights.
#[derive(Debug)]
pub struct LlavaFromPixels {
    /// The tower.
    pub tower: ClipVisionTower,
    /// The projector.
    pub projector: super::LlavaProjector,
}

impl super::registry::Model for LlavaFromPixels {
    fn inputs(&self) -> &'static [&'static str] {
        &["pixel_values"]
    }
    /// `output` [B, N, C_text] and the tower's selected `vision_features` [B, N, C].
    fn record(&self, rec: &mut Recorder, inputs: &super::Inputs) -> Result<super::registry::Named> {
        let features = self.tower.forward(rec, inputs.tensor("pixel_values")?)?;
        Ok(vec![("output", self.projector.forward(rec, &features)?), ("vision_features", features)])
    }
    fn describe(&self) -> Vec<String> {
        vec![self.tower.summary(), self.projector.summary()]
    }
}

/// LLaVA-NeXT from pixels (`LlavaNextModel.get_image_features`): one image's AnyRes tiles
/// `pixel_values` [1, tiles, 3, S, S] (the global view first) through the CLIP tower, then the
/// projector on every tile and `pack_image_features` for `image_sizes` [[h, w]]. Built by the
/// `llava_next` loader when `load_vision_tower` is true.
#[derive(Debug)]
pub struct LlavaNextFromPixels {
    /// The tower.
    pub tower: ClipVisionTower,
    /// Projector, AnyRes geometry and `image_newline`.
    pub next: super::LlavaNext,
}

impl super::registry::Model for LlavaNextFromPixels {
    fn inputs(&self) -> &'static [&'static str] {
        &["pixel_values", "image_sizes"]
    }
    /// `output` [T, C_text], `projected` [tiles, N, C_text] and `vision_features` [tiles, N, C].
    /// Errors: [`Error::Shape`] / [`Error::Input`] naming `pixel_values` or `image_sizes` (one image
    /// per call).
    fn record(&self, rec: &mut Recorder, inputs: &super::Inputs) -> Result<super::registry::Named> {
        let px = inputs.tensor("pixel_values")?;
        let tiles = match *px.shape() {
            [1, t, ch, h, w] => px.reshape(&[t, ch, h, w])?,
            _ => return Err(Error::shape("pixel_values", "[1, tiles, 3, S, S] (one image's AnyRes tiles)", px.shape())),
        };
        let size = match inputs.ints("image_sizes")? {
            ([1, 2], &[h, w]) if h > 0 && w > 0 && h < (1 << 31) && w < (1 << 31) => [h as usize, w as usize],
            (shape, _) => return Err(Error::input("image_sizes", format!("expected [[h, w]] for one image, got shape {shape:?}"))),
        };
        let features = self.tower.forward(rec, &tiles)?;
        let (packed, projected) = self.next.forward(rec, &features, size)?;
        Ok(vec![("output", packed), ("projected", projected), ("vision_features", features)])
    }
    fn describe(&self) -> Vec<String> {
        vec![self.tower.summary(), self.next.projector.summary(), self.next.packer.summary()]
    }
}
