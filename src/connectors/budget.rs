//! The token budget: how much of a language model's context each connector scheme leaves for text.

use crate::kernels::tome::effective_r;
use crate::runtime::{Error, Result};

use super::AnyResPacker;

/// Visual tokens of the reference schemes at their usual shapes.
pub const LLAVA_TOKENS: usize = 576; // CLIP-L/336: 24 × 24 patches
/// CLIP-L/336 patch grid side.
pub const LLAVA_GRID: usize = 24;
/// BLIP-2 query tokens.
pub const QFORMER_TOKENS: usize = 32; // BLIP-2 queries
/// Flamingo latents per image.
pub const PERCEIVER_TOKENS: usize = 64; // Flamingo latents per image

/// Which connector a row describes (the timing side builds one of these).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// LLaVA-1.5: one token per patch.
    Llava,
    /// LLaVA with 2×2 pooling first.
    LlavaPool,
    /// LLaVA with one ToMe round first.
    LlavaTome {
        /// Tokens merged away.
        r: usize,
    },
    /// BLIP-2 Q-Former.
    QFormer,
    /// Flamingo Perceiver Resampler.
    Perceiver,
    /// LLaVA-NeXT AnyRes packing.
    AnyRes {
        /// Tiles the vision tower encodes (global view + grid).
        tiles: usize,
    },
    /// AnyRes with every tile 2×2-pooled first.
    AnyResPool {
        /// Tiles the vision tower encodes (global view + grid).
        tiles: usize,
    },
    /// A connector `internal::seed::zoo` builds at its released model's shapes (the zoo, InstructBLIP, IDEFICS).
    Zoo {
        /// Its `model_type`.
        model_type: &'static str,
        /// The tower's patch grid (h, w) where the resolution follows the image (Qwen, Mistral 3).
        grid: [usize; 2],
    },
}

/// One row of the report.
#[derive(Clone, Debug)]
pub struct BudgetRow {
    /// Row label.
    pub name: String,
    /// The connector it describes.
    pub scheme: Scheme,
    /// Visual tokens it puts in the context.
    pub visual: usize,
    /// Context left for text (0 when the image alone overflows it).
    pub text_left: usize,
    /// LLaVA's 576 tokens ÷ this scheme's.
    pub ratio: f64,
    /// Measured connector time on this adapter, if timed.
    pub ms: Option<f64>,
}

/// The table for a context window and an image of (h, w) pixels, with ToMe merging `tome_r`.
pub fn budget_table(context: usize, image_size: [usize; 2], tome_r: usize) -> Result<Vec<BudgetRow>> {
    if context == 0 {
        return Err(Error::input("context", "must be positive"));
    }
    let anyres = AnyResPacker::llava_next_default();
    let layout = anyres.layout(image_size)?;
    let tiles = layout.tiles();
    let r = effective_r(LLAVA_TOKENS, tome_r, false);
    let [h, w] = image_size;
    let qwen = qwen_grid(image_size, 28)?;
    let (pixtral, pixtral_tokens) = pixtral_grid(image_size, 28);
    let zoo = |model_type, grid| Scheme::Zoo { model_type, grid };
    let rows = [
        ("LLaVA-1.5 (576 patches)".to_string(), Scheme::Llava, LLAVA_TOKENS),
        ("LLaVA + 2×2 pool".to_string(), Scheme::LlavaPool, (LLAVA_GRID / 2) * (LLAVA_GRID / 2)),
        (format!("LLaVA + ToMe r={r}"), Scheme::LlavaTome { r }, LLAVA_TOKENS - r),
        ("BLIP-2 Q-Former".to_string(), Scheme::QFormer, QFORMER_TOKENS),
        ("Flamingo Perceiver".to_string(), Scheme::Perceiver, PERCEIVER_TOKENS),
        ("InstructBLIP Q-Former (+ instruction)".to_string(), zoo("instructblip", [16, 16]), QFORMER_TOKENS),
        ("IDEFICS Perceiver".to_string(), zoo("idefics", [16, 16]), PERCEIVER_TOKENS),
        (format!("LLaVA-NeXT AnyRes {}×{} ({tiles} tiles)", image_size[0], image_size[1]), Scheme::AnyRes { tiles }, layout.tokens()),
        (
            format!("AnyRes {}×{} + 2×2 pool", image_size[0], image_size[1]),
            Scheme::AnyResPool { tiles },
            layout.pooled(image_size).tokens(),
        ),
        (format!("Qwen2-VL {h}×{w} ({}×{} merged)", qwen[0] / 2, qwen[1] / 2), zoo("qwen2_vl", qwen), qwen[0] * qwen[1] / 4),
        (format!("Qwen2.5-VL {h}×{w}"), zoo("qwen2_5_vl", qwen), qwen[0] * qwen[1] / 4),
        ("InternVL3 (one 448-px tile)".to_string(), zoo("internvl", [32, 32]), 256),
        ("Idefics3 (one 364-px tile)".to_string(), zoo("idefics3", [26, 26]), 169),
        ("Gemma 3 (896 px)".to_string(), zoo("gemma3", [64, 64]), 256),
        ("PaliGemma (224 px)".to_string(), zoo("paligemma", [16, 16]), 256),
        (format!("Mistral 3 {h}×{w} (+ row breaks)"), zoo("mistral3", pixtral), pixtral_tokens),
        ("Llama 3.2 Vision (cross-attention)".to_string(), zoo("mllama", [40, 40]), 1),
        ("Idefics2 (980 px → 64 latents)".to_string(), zoo("idefics2", [70, 70]), 64),
    ];
    Ok(rows
        .into_iter()
        .map(|(name, scheme, visual)| BudgetRow {
            name,
            scheme,
            visual,
            text_left: context.saturating_sub(visual),
            ratio: LLAVA_TOKENS as f64 / visual as f64,
            ms: None,
        })
        .collect())
}

/// Qwen2-VL's `smart_resize` of an (h, w) image with `factor` = patch · merge pixels (28 for the
/// released models; min_pixels 56², max_pixels 28²·1280, the processor's defaults), as the tower's
/// patch grid for a merge size of 2 (factor / 2 pixels a patch; merged tokens = grid product / 4). Errors: [`Error::Input`] for an empty image or an
/// aspect ratio past 200 (the processor raises there too).
pub fn qwen_grid([h, w]: [usize; 2], factor: usize) -> Result<[usize; 2]> {
    if h == 0 || w == 0 || h.max(w) > h.min(w).saturating_mul(200) || factor < 2 {
        return Err(Error::input("image", format!("{h}×{w}: Qwen2-VL needs both sides and an aspect ratio up to 200")));
    }
    let (f, min, max) = (factor as f64, 56.0 * 56.0, 28.0 * 28.0 * 1280.0);
    let (hf, wf) = (h as f64, w as f64);
    // Python's round(): halves to even.
    let round = |v: f64| (v / f).round_ties_even() * f;
    let (mut hb, mut wb) = (round(hf), round(wf));
    if hb * wb > max {
        let beta = (hf * wf / max).sqrt();
        (hb, wb) = (((hf / beta / f).floor() * f).max(f), ((wf / beta / f).floor() * f).max(f));
    } else if hb * wb < min {
        let beta = (min / (hf * wf)).sqrt();
        (hb, wb) = ((hf * beta / f).ceil() * f, (wf * beta / f).ceil() * f);
    }
    Ok([2 * (hb as usize / factor), 2 * (wb as usize / factor)])
}

/// Mistral 3's Pixtral processing of an (h, w) image (longest edge ≤ 1540 px, merged cells of
/// `cell` = patch · merge pixels (28 for the released models), sides rounded up): the tower's
/// patch grid and the tokens the image takes in the context: rows · (cols + 1), one `[IMG_BREAK]`
/// (or the final `[IMG_END]`) per row.
pub fn pixtral_grid([h, w]: [usize; 2], cell: usize) -> ([usize; 2], usize) {
    let ratio = h.max(w) as f64 / 1540.0;
    let (h, w) = if ratio > 1.0 { ((h as f64 / ratio) as usize, (w as f64 / ratio) as usize) } else { (h, w) };
    let (rows, cols) = (h.max(1).div_ceil(cell.max(1)), w.max(1).div_ceil(cell.max(1)));
    ([2 * rows, 2 * cols], rows * (cols + 1))
}

/// A plain-text table.
pub fn render_table(rows: &[BudgetRow], context: usize) -> String {
    let mut s = format!("context window: {context} tokens\n");
    s += &format!("{:<40} {:>8} {:>10} {:>12} {:>14}\n", "scheme", "visual", "text left", "vs LLaVA", "connector ms");
    for r in rows {
        let ms = r.ms.map(|m| format!("{m:.2}")).unwrap_or_else(|| "-".into());
        s += &format!("{:<40} {:>8} {:>10} {:>11.2}× {:>14}\n", r.name, r.visual, r.text_left, r.ratio, ms);
    }
    s
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A horizontal stacked bar chart: visual tokens vs text tokens left, one bar per scheme.
pub fn render_svg(rows: &[BudgetRow], context: usize, title: &str) -> String {
    let (label_w, bar_w, bar_h, gap, top) = (300.0, 560.0, 26.0, 14.0, 64.0);
    let width = label_w + bar_w + 140.0;
    let height = top + rows.len() as f64 * (bar_h + gap) + 60.0;
    let scale = bar_w / context as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
         font-family=\"sans-serif\" font-size=\"13\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"16\" y=\"28\" font-size=\"17\" font-weight=\"bold\">{}</text>\n\
         <text x=\"16\" y=\"48\" fill=\"#555\">context {context} tokens · <tspan fill=\"#d95f02\">■ visual tokens</tspan> · \
         <tspan fill=\"#7570b3\">■ text tokens left</tspan></text>\n",
        escape(title)
    );
    // Grid lines under the bars.
    let axis_y = top + rows.len() as f64 * (bar_h + gap) + 4.0;
    for k in 0..=4 {
        let x = label_w + bar_w * k as f64 / 4.0;
        let (y0, label_y, tick) = (top - 6.0, axis_y + 16.0, context * k / 4);
        s += &format!("<line x1=\"{x}\" y1=\"{y0}\" x2=\"{x}\" y2=\"{axis_y}\" stroke=\"#bbb\"/>\n");
        s += &format!("<text x=\"{x}\" y=\"{label_y}\" text-anchor=\"middle\" fill=\"#555\">{tick}</text>\n");
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + i as f64 * (bar_h + gap);
        let vis = (r.visual.min(context) as f64 * scale).max(1.0);
        let txt = r.text_left as f64 * scale;
        s += &format!("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", label_w - 10.0, y + bar_h * 0.68, escape(&r.name));
        s += &format!("<rect x=\"{label_w}\" y=\"{y}\" width=\"{vis:.1}\" height=\"{bar_h}\" fill=\"#d95f02\"/>\n");
        s += &format!("<rect x=\"{:.1}\" y=\"{y}\" width=\"{txt:.1}\" height=\"{bar_h}\" fill=\"#7570b3\"/>\n", label_w + vis);
        let note = match r.ms {
            Some(ms) => format!("{} + {} · {ms:.1} ms", r.visual, r.text_left),
            None => format!("{} + {}", r.visual, r.text_left),
        };
        s += &format!("<text x=\"{}\" y=\"{}\" fill=\"#333\">{}</text>\n", label_w + bar_w + 8.0, y + bar_h * 0.68, escape(&note));
    }
    s + "</svg>\n"
}
