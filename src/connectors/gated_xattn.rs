//! Flamingo's gated cross-attention block (OpenFlamingo `GatedCrossAttentionBlock`), inserted
//! between the frozen language model's layers:
//!
//! ```text
//! x = x + tanh(attn_gate) · to_out(attn(q = to_q(LN(x)), kv = to_kv(media flattened over (T, n)),
//!                                        media mask from media_locations))
//! x = x + tanh(ff_gate)   · FF(x)
//! ```
//! Media masking: `text_time = cumsum(media_locations)` (inclusive). With
//! `only_attend_immediate_media` a token sees only media `text_time` and tokens before the first
//! image get a zero attention output; otherwise it sees every media ≤ `text_time`, and tokens before
//! the first image attend uniformly to all media (OpenFlamingo masks every score to -max).
//! The mask is computed on the GPU from the packed locations.

use crate::checkpoint::{layouts, Config, WeightSource};
use crate::kernels::attention::{pack_locations, record_media_ranges, AttnOpts};
use crate::kernels::elementwise::record_copy_rows;
use crate::nn::{Attention, Bias, FeedForward, LayerNorm, Linear};
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};

const EPS: f32 = 1e-5;

/// The `gated_xattn` block of an `open_flamingo` config.
#[derive(Clone, Debug)]
pub struct GatedXattnConfig {
    /// Width of the language model's hidden states.
    pub dim: usize,
    /// Width of the media tokens.
    pub dim_visual: usize,
    /// Width of one attention head.
    pub dim_head: usize,
    /// Attention heads.
    pub heads: usize,
    /// Feed-forward expansion (hidden = ff_mult·dim).
    pub ff_mult: usize,
    /// Text attends only to the latest media (true) or to every media so far.
    pub only_attend_immediate_media: bool,
    /// Which `lang_encoder.gated_cross_attn_layers.{i}` to load (default: the first present).
    pub layer_index: Option<usize>,
}

impl GatedXattnConfig {
    /// Reads the `gated_xattn` object of an `open_flamingo` config (OpenFlamingo's defaults for absent fields).
    pub fn from_config(c: &Config) -> Result<GatedXattnConfig> {
        Ok(GatedXattnConfig {
            dim: c.usize("dim")?,
            dim_visual: c.usize("dim_visual")?,
            dim_head: c.opt_usize("dim_head")?.unwrap_or(64),
            heads: c.opt_usize("heads")?.unwrap_or(8),
            ff_mult: c.opt_usize("ff_mult")?.unwrap_or(4),
            only_attend_immediate_media: c.opt_bool("only_attend_immediate_media")?.unwrap_or(true),
            layer_index: c.opt_index("layer_index")?,
        })
    }
}

/// `media_locations` checked and packed for [`GatedCrossAttention::forward`] (made only by
/// [`GatedCrossAttention::upload_locations`]), with the geometry it was checked against.
#[derive(Clone, Debug)]
pub struct MediaLocations {
    packed: Tensor,
    batch: usize,
    len: usize,
    t_img: usize,
}

impl MediaLocations {
    /// (batch, text tokens per row) it was checked for.
    pub fn shape(&self) -> [usize; 2] {
        [self.batch, self.len]
    }
    /// The media count the rows were checked against.
    pub fn t_img(&self) -> usize {
        self.t_img
    }
}

/// OpenFlamingo's `GatedCrossAttentionBlock` (`open_flamingo/src/helpers.py`):
/// hidden_states [b, L, dim] reading media [b, T_img, n, dim_visual] → [b, L, dim].
#[derive(Debug)]
pub struct GatedCrossAttention {
    /// The configuration it was built with.
    pub config: GatedXattnConfig,
    norm: LayerNorm,
    attn: Attention,
    to_out: Linear,
    ff: FeedForward,
    /// tanh(attn_gate), read once at load: the attention branch's weight.
    pub attn_alpha: f32,
    /// tanh(ff_gate), read once at load: the feed-forward branch's weight.
    pub ff_alpha: f32,
    /// The key prefix the layer was loaded from (e.g. `lang_encoder.gated_cross_attn_layers.3`).
    pub prefix: String,
}

impl GatedCrossAttention {
    /// Loads the `gated_xattn` block of an `open_flamingo` folder; an error when it has none.
    pub fn from_dir(gpu: &Gpu, dir: impl AsRef<std::path::Path>) -> Result<GatedCrossAttention> {
        let f = super::OpenFlamingo::from_dir(gpu, dir)?;
        f.gated.ok_or_else(|| Error::config("gated_xattn", "missing: this open_flamingo config has only a `perceiver` block"))
    }

    /// Loads one gated layer with shape checks from `c`: `lang_encoder.gated_cross_attn_layers.{i}`
    /// for `layer_index` i (else the lowest present), or in a released `checkpoint.pt` the
    /// `layer_index`-th `gated_cross_attn_layer` in decoder-block order (OpenFlamingo's j-th non-None
    /// gated layer).
    pub fn load(gpu: &Gpu, c: GatedXattnConfig, ws: &WeightSource) -> Result<GatedCrossAttention> {
        // The layer: `{root}.{layer_index}` of a config-based checkpoint, or the `layer_index`-th
        // gated layer in decoder order of a released `checkpoint.pt`; the first one by default.
        let layers = layouts::flamingo_gated_layers(ws);
        let want = c.layer_index.unwrap_or(0);
        let root = layouts::FLAMINGO_GATED_ROOTS.iter().find(|r| layers.first().is_some_and(|p| p.starts_with(*r)));
        let found = match (root, layers.is_empty()) {
            (Some(root), _) => {
                Some(format!("{root}.{}", c.layer_index.map_or_else(|| layers[0][root.len() + 1..].to_string(), |i| i.to_string())))
            }
            (None, false) => layers.get(want).cloned(),
            // Nothing listed (a random source answers every name): the config-based layout.
            (None, true) => Some(format!("{}.{want}", layouts::FLAMINGO_GATED_ROOTS[0])),
        };
        let l = found.map(|p| ws.pp(p)).filter(|l| l.contains("attn_gate")).ok_or_else(|| Error::MissingWeight {
            name: match layers.len() {
                0 => format!(
                    "{}.{want}.attn_gate or {}.<block>.gated_cross_attn_layer.attn_gate",
                    layouts::FLAMINGO_GATED_ROOTS[0],
                    layouts::FLAMINGO_DECODER_ROOTS[0]
                ),
                n => format!("gated layer {want} (the checkpoint has {n}: {})", layers.join(", ")),
            },
            location: ws.location().to_string(),
        })?;
        let gate = |name: &str| -> Result<f32> { Ok(l.get_host(name, &[1])?.data[0].tanh()) };
        let a = l.pp("attn");
        let inner = c.heads * c.dim_head;
        Ok(GatedCrossAttention {
            norm: LayerNorm::load(gpu, &a.pp("norm"), c.dim, EPS)?,
            attn: Attention::load_fused(gpu, &a.pp("to_q"), &a.pp("to_kv"), c.dim, c.dim_visual, c.heads, c.dim_head)?,
            to_out: Linear::load(gpu, &a.pp("to_out"), Some(inner), Some(c.dim), Bias::None)?,
            ff: FeedForward::load(gpu, &l.pp("ff"), c.dim, c.ff_mult, EPS)?,
            attn_alpha: gate("attn_gate")?,
            ff_alpha: gate("ff_gate")?,
            prefix: l.prefix().to_string(),
            config: c,
        })
    }

    /// One line: widths, heads, masking, gates.
    pub fn summary(&self) -> String {
        let c = &self.config;
        format!(
            "gated cross-attention layer `{}`: text width {}, media width {}, {} heads × {}, ff ×{}, {} media; tanh gates {:.4} / {:.4}",
            self.prefix,
            c.dim,
            c.dim_visual,
            c.heads,
            c.dim_head,
            c.ff_mult,
            if c.only_attend_immediate_media { "immediate" } else { "all previous" },
            self.attn_alpha,
            self.ff_alpha
        )
    }

    /// Checks `media_locations` [b, L] (1 at each `<image>` token; OpenFlamingo's cumsum counts any
    /// value) and packs it four to a word for the GPU. `forward` checks the result against its text
    /// and media. A row with more `<image>` tokens than `t_img` media is accepted as OpenFlamingo
    /// accepts it: the tokens past the last media attend uniformly to all media in the immediate
    /// mode (every score is masked there) and to all of them in the all-previous one.
    pub fn upload_locations(&self, gpu: &Gpu, locations: &[u8], b: usize, len: usize, t_img: usize) -> Result<MediaLocations> {
        if locations.len() != b * len {
            return Err(Error::shape("media_locations", [b, len], locations.len()));
        }
        let packed = pack_locations(locations, b, len);
        Ok(MediaLocations { packed: Tensor::from_u32(gpu, &packed, &[packed.len()])?, batch: b, len, t_img })
    }

    /// Records the block. x [b, L, dim], media [b or 1, T_img, n, dim_visual] (one media batch row is
    /// shared by every text row, as the reference's einsum broadcasts it), packed locations from
    /// [`Self::upload_locations`] → [b, L, dim]. Errors: [`Error::Shape`] for widths or ranks,
    /// media of another batch, or locations checked for another (b, L) or media count; T_img·n = 0
    /// (OpenFlamingo's `sim.amax` over no keys raises).
    pub fn forward(&self, rec: &mut Recorder, x: &Tensor, media: &Tensor, locations: &MediaLocations) -> Result<Tensor> {
        x.expect_float(rec.gpu(), "hidden_states")?;
        media.expect_float(rec.gpu(), "media")?;
        locations.packed.check_gpu(rec.gpu(), "media_locations")?;
        let c = &self.config;
        let (b, len) = match *x.shape() {
            [b, l, d] if d == c.dim => (b, l), // an empty batch or text gives an empty output
            _ => return Err(Error::shape("hidden_states", format!("[b, L, {}]", c.dim), x.shape())),
        };
        let (t_img, n) = match *media.shape() {
            [mb, t, n, d] if (mb == b || mb == 1) && d == c.dim_visual && t * n > 0 => (t, n),
            _ => return Err(Error::shape("media", format!("[{b}, T_img, n, {}]", c.dim_visual), media.shape())),
        };
        if (locations.batch, locations.len) != (b, len) || locations.t_img != t_img {
            return Err(Error::shape(
                "media_locations",
                format!("[{b}, {len}] for {t_img} media (hidden_states {:?}, media {:?})", x.shape(), media.shape()),
                format!("[{}, {}] for {} media", locations.batch, locations.len, locations.t_img),
            ));
        }
        // 1. Per-token key ranges from media_locations (GPU scan).
        let ranges = record_media_ranges(rec, &locations.packed, b, len, t_img, n, c.only_attend_immediate_media)?;
        // 2. x + tanh(attn_gate) · to_out(attn(LN(x), media))
        let h = self.norm.forward(rec, x)?;
        let media_flat = match media.shape()[0] {
            mb if mb == b => media.reshape(&[b, t_img * n, c.dim_visual])?,
            _ => {
                let shared = Tensor::empty(rec.gpu(), &[b, t_img * n, c.dim_visual], media.dtype())?;
                record_copy_rows(rec, &media.reshape(&[1, t_img * n, c.dim_visual])?, 0, &shared, 0, t_img * n)?;
                shared
            }
        };
        let ctx = self.attn.context(rec, &h, &media_flat, AttnOpts { ranges: Some(&ranges), ..Default::default() })?;
        let x = self.to_out.forward_residual(rec, &ctx, x, self.attn_alpha)?;
        // 3. x + tanh(ff_gate) · FF(x)
        self.ff.forward_residual(rec, &x, self.ff_alpha)
    }
}
