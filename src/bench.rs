//! Benchmarks: the connectors at the seed's shapes, the kernels under them, and the adapter's own
//! ceilings measured in the same run. Used by `vlmc bench`, `vlmc demo`, `vlmc budget` and
//! `cargo bench`.
//!
//! Every entry: fresh random inputs per repeat, warm-up (GPUs), repeats, median. Time comes from
//! GPU timestamps around the forward's one compute pass when the adapter has TIMESTAMP_QUERY, else
//! from the wall clock around submit + wait.

use crate::connectors::{GatedCrossAttention, GatedXattnConfig, LlavaProjector, PerceiverConfig, PerceiverResampler, QFormer, QFormerConfig};
use crate::kernels::attention::{record_attention, AttnOpts, Heads};
use crate::kernels::ceiling::{record_copy, record_fma_peak};
use crate::kernels::gemm::record_linear;
use crate::kernels::layernorm::record_layernorm;
use crate::kernels::Activation;
use crate::runtime::{Error, Gpu, Recorder, Result, Tensor};
use crate::util::Rng;

/// Random connectors at the shapes the project is measured at.
pub mod seed {
    use super::*;

    /// LLaVA-1.5 projector: 1024 → 4096 → 4096 (CLIP-L/336 into Vicuna-7B).
    pub fn llava(gpu: &Gpu, rng: &mut Rng) -> Result<LlavaProjector> {
        LlavaProjector::random(gpu, 1024, 4096, rng)
    }

    /// BLIP-2 Q-Former on ViT-g: 32 queries × 768, 12 layers, 12 heads, FFN 3072, into OPT-2.7b (2560).
    pub fn qformer(gpu: &Gpu, rng: &mut Rng) -> Result<QFormer> {
        let cfg = QFormerConfig {
            hidden_size: 768,
            num_attention_heads: 12,
            num_hidden_layers: 12,
            intermediate_size: 3072,
            cross_attention_frequency: 2,
            encoder_hidden_size: 1408,
            hidden_act: Activation::Gelu,
            layer_norm_eps: 1e-12,
            num_query_tokens: 32,
        };
        QFormer::random(gpu, cfg, 2560, rng)
    }

    /// OpenFlamingo Perceiver on CLIP-L features: depth 6, 8 heads × 64, 64 latents.
    pub fn perceiver(gpu: &Gpu, rng: &mut Rng) -> Result<PerceiverResampler> {
        let c = PerceiverConfig { dim: 1024, depth: 6, dim_head: 64, heads: 8, num_latents: 64, ff_mult: 4, max_num_media: None, max_num_frames: None };
        PerceiverResampler::random(gpu, c, rng)
    }

    /// One gated cross-attention block: 4096-wide text reading 1024-wide media, 8 heads × 64.
    pub fn gated_xattn(gpu: &Gpu, rng: &mut Rng) -> Result<GatedCrossAttention> {
        let c = GatedXattnConfig { dim: 4096, dim_visual: 1024, dim_head: 64, heads: 8, ff_mult: 4, only_attend_immediate_media: true, layer_index: None };
        GatedCrossAttention::random(gpu, c, rng)
    }
}

/// One benchmark result.
#[derive(Clone, Debug)]
pub struct Record {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: &'static str,
    pub median_ms: f64,
    pub flops: u64,
    pub bytes: u64,
    /// "gpu-timestamp" or "wall".
    pub timer: &'static str,
    pub repeats: usize,
}

impl Record {
    pub fn gflops(&self) -> f64 {
        self.flops as f64 / (self.median_ms * 1e-3) / 1e9
    }
    pub fn gbps(&self) -> f64 {
        self.bytes as f64 / (self.median_ms * 1e-3) / 1e9
    }
}

/// What to run and how often.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    /// Run only entries with this name (e.g. `gemm`).
    pub only: Option<String>,
    /// Shape override for the selected entry (GEMM: M, K, N).
    pub shape: Option<Vec<usize>>,
    /// Repeats per entry (median reported).
    pub repeats: usize,
    /// Warm-up forwards per entry.
    pub warmup: usize,
}

impl BenchOptions {
    /// Defaults for the adapter: CPU drivers get 1 repeat and no warm-up (one forward takes seconds).
    pub fn for_gpu(gpu: &Gpu) -> BenchOptions {
        let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
        BenchOptions { only: None, shape: None, repeats: if cpu { 1 } else { 10 }, warmup: if cpu { 0 } else { 2 } }
    }
}

/// Median time of `repeats` forwards built by `f` (which gets fresh random inputs each call).
pub fn time_forward(gpu: &Gpu, warmup: usize, repeats: usize, mut f: impl FnMut(&mut Recorder, &mut Rng) -> Result<()>) -> Result<(f64, &'static str)> {
    let mut rng = Rng::new(0x5eed);
    for _ in 0..warmup {
        let mut rec = Recorder::new(gpu);
        f(&mut rec, &mut rng)?;
        rec.submit()?;
        gpu.wait()?;
    }
    let mut times = Vec::with_capacity(repeats);
    let mut timer = "wall";
    for _ in 0..repeats.max(1) {
        let mut rec = Recorder::new(gpu);
        f(&mut rec, &mut rng)?;
        let t = rec.submit_timed()?;
        if t.gpu_ms.is_some() {
            timer = "gpu-timestamp";
        }
        times.push(t.ms());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((times[times.len() / 2], timer))
}

/// A tensor of fresh random values in [-1, 1).
pub fn fresh(gpu: &Gpu, rng: &mut Rng, shape: &[usize]) -> Result<Tensor> {
    Tensor::from_slice(gpu, &rng.vec(shape.iter().product(), 1.0), shape)
}

/// Names of the entries, in the order they run.
pub const ENTRIES: &[&str] = &["fma_peak", "copy_bw", "gemm", "attention", "layernorm", "llava", "qformer", "perceiver", "gated_xattn"];

/// Runs the benchmark entries; `progress` gets a line before each.
pub fn run(gpu: &Gpu, opts: &BenchOptions, mut progress: impl FnMut(&str)) -> Result<Vec<Record>> {
    if let Some(o) = &opts.only {
        if !ENTRIES.contains(&o.as_str()) {
            return Err(Error::Input { name: "--only".into(), message: format!("`{o}` is not one of {}", ENTRIES.join(", ")) });
        }
    }
    let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let wanted = |name: &str| opts.only.as_deref().is_none_or(|o| o == name);
    let shape_for = |name: &str, default: Vec<Vec<usize>>| -> Vec<Vec<usize>> {
        match (&opts.shape, opts.only.as_deref()) {
            (Some(s), Some(o)) if o == name => vec![s.clone()],
            _ => default,
        }
    };
    let (w, r) = (opts.warmup, opts.repeats);
    let mut out = Vec::new();
    let mut rec_of = |name: &str, shape: Vec<usize>, (ms, timer): (f64, &'static str), flops: u64, bytes: u64| {
        out.push(Record { name: name.to_string(), shape, dtype: "f32", median_ms: ms, flops, bytes, timer, repeats: r.max(1) });
    };

    if wanted("fma_peak") {
        progress("fma_peak: the adapter's FMA ceiling");
        let (threads, iters) = if cpu { (1 << 14, 1024) } else { (1 << 20, 4096) };
        let t = time_forward(gpu, w, r, |rec, _| record_fma_peak(rec, threads, iters).map(|_| ()))?;
        rec_of("fma_peak", vec![threads, iters], t, 64 * threads as u64 * iters as u64, 16 * threads as u64);
    }
    if wanted("copy_bw") {
        progress("copy_bw: the adapter's copy bandwidth");
        let n = if cpu { 1 << 22 } else { 1 << 26 };
        let src = Tensor::from_slice(gpu, &Rng::new(1).vec(n, 1.0), &[n])?;
        let t = time_forward(gpu, w, r, |rec, _| record_copy(rec, &src).map(|_| ()))?;
        rec_of("copy_bw", vec![n], t, 0, 8 * n as u64);
    }
    if wanted("gemm") {
        let mut shapes = vec![vec![576, 1024, 4096]];
        if !cpu {
            shapes.push(vec![4096, 4096, 4096]);
        }
        for s in shape_for("gemm", shapes) {
            let [m, k, n] = s[..] else { return Err(Error::Input { name: "--shape".into(), message: format!("gemm takes M,K,N; got {s:?}") }) };
            progress(&format!("gemm {m}×{k}×{n}"));
            let wt = fresh(gpu, &mut Rng::new(2), &[n, k])?;
            let t = time_forward(gpu, w, r, |rec, rng| {
                let x = fresh(gpu, rng, &[m, k])?;
                record_linear(rec, &x, &wt, None, Activation::Identity, None).map(|_| ())
            })?;
            rec_of("gemm", s.clone(), t, 2 * (m * k * n) as u64, 4 * (m * k + n * k + m * n) as u64);
        }
    }
    if wanted("attention") {
        // Q-Former cross-attention: 32 queries into 257 ViT-g tokens, 12 heads × 64.
        for s in shape_for("attention", vec![vec![1, 32, 257, 12, 64], vec![1, 64, 321, 8, 64]]) {
            let [b, lq, lk, h, d] = s[..] else { return Err(Error::Input { name: "--shape".into(), message: format!("attention takes B,Lq,Lk,heads,head_dim; got {s:?}") }) };
            progress(&format!("attention b{b} q{lq} k{lk} {h}×{d}"));
            let t = time_forward(gpu, w, r, |rec, rng| {
                let (q, k, v) = (fresh(gpu, rng, &[b, lq, h * d])?, fresh(gpu, rng, &[b, lk, h * d])?, fresh(gpu, rng, &[b, lk, h * d])?);
                record_attention(rec, Heads::all(&q), Heads::all(&k), Heads::all(&v), h, d, 0.125, AttnOpts::default()).map(|_| ())
            })?;
            rec_of("attention", s.clone(), t, 4 * (b * lq * lk * h * d) as u64, 4 * (b * (lq * 2 + lk * 2) * h * d) as u64);
        }
    }
    if wanted("layernorm") {
        for s in shape_for("layernorm", vec![vec![576, 4096]]) {
            let [rows, cols] = s[..] else { return Err(Error::Input { name: "--shape".into(), message: format!("layernorm takes rows,cols; got {s:?}") }) };
            progress(&format!("layernorm {rows}×{cols}"));
            let (g, bta) = (fresh(gpu, &mut Rng::new(3), &[cols])?, fresh(gpu, &mut Rng::new(4), &[cols])?);
            let t = time_forward(gpu, w, r, |rec, rng| {
                let x = fresh(gpu, rng, &[rows, cols])?;
                record_layernorm(rec, &x, None, &g, &bta, 1e-5).map(|_| ())
            })?;
            rec_of("layernorm", s.clone(), t, 8 * (rows * cols) as u64, 8 * (rows * cols) as u64);
        }
    }
    let mut rng = Rng::new(7);
    if wanted("llava") {
        progress("llava projector 576 × 1024 → 4096 → 4096");
        let p = seed::llava(gpu, &mut rng)?;
        let t = time_forward(gpu, w, r, |rec, rng| p.forward(rec, &fresh(gpu, rng, &[1, 576, 1024])?).map(|_| ()))?;
        rec_of("llava", vec![576, 1024, 4096, 4096], t, p.flops(576), 4 * (4096 * 1024 + 4096 * 4096 + 576 * (1024 + 2 * 4096)) as u64);
    }
    if wanted("qformer") {
        progress("qformer 257 × 1408 → 32 × 768 → 2560");
        let q = seed::qformer(gpu, &mut rng)?;
        let t = time_forward(gpu, w, r, |rec, rng| q.forward(rec, &fresh(gpu, rng, &[1, 257, 1408])?).map(|_| ()))?;
        // weights dominate the bytes: 12 layers of self (4·768²), 6 cross (2·768² + 2·768·1408), FFN (2·768·3072)
        let weights = 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 6 * (2 * 768 * 768 + 2 * 768 * 1408) + 768 * 2560;
        rec_of("qformer", vec![257, 1408, 32, 768], t, q.flops(1, 257), 4 * (weights + 257 * 1408) as u64);
    }
    if wanted("perceiver") {
        progress("perceiver 4 × 257 × 1024 → 4 × 64 × 1024");
        let p = seed::perceiver(gpu, &mut rng)?;
        let t = time_forward(gpu, w, r, |rec, rng| p.forward(rec, &fresh(gpu, rng, &[1, 4, 1, 257, 1024])?).map(|_| ()))?;
        let weights = 6 * (4 * 1024 * 512 + 8 * 1024 * 1024);
        rec_of("perceiver", vec![4, 257, 1024, 64], t, p.flops(4, 257), 4 * (weights + 4 * 257 * 1024) as u64);
    }
    if wanted("gated_xattn") {
        progress("gated_xattn 128 × 4096 text, 4 × 64 × 1024 media");
        let g = seed::gated_xattn(gpu, &mut rng)?;
        let mut locs = vec![0u8; 128];
        for i in [0, 32, 64, 96] {
            locs[i] = 1;
        }
        let packed = g.upload_locations(gpu, &locs, 1, 128, 4)?;
        let t = time_forward(gpu, w, r, |rec, rng| {
            let (x, media) = (fresh(gpu, rng, &[1, 128, 4096])?, fresh(gpu, rng, &[1, 4, 64, 1024])?);
            g.forward(rec, &x, &media, &packed).map(|_| ())
        })?;
        let weights = 4096 * 512 + 1024 * 1024 + 512 * 4096 + 2 * 4 * 4096 * 4096;
        rec_of("gated_xattn", vec![128, 4096, 256, 1024], t, g.flops(128, 256, 64), 4 * (weights + 2 * 128 * 4096 + 256 * 1024) as u64);
    }
    Ok(out)
}

/// Records as JSON (one object per record) with the adapter's name and backend.
pub fn to_json(records: &[Record], gpu: &Gpu) -> serde_json::Value {
    let peak_flops = records.iter().find(|r| r.name == "fma_peak").map(|r| r.gflops());
    let peak_bw = records.iter().find(|r| r.name == "copy_bw").map(|r| r.gbps());
    let info = gpu.adapter_info();
    serde_json::Value::Array(
        records
            .iter()
            .map(|r| {
                serde_json::json!({
                    "name": r.name,
                    "shape": r.shape,
                    "dtype": r.dtype,
                    "median_ms": r.median_ms,
                    "gflops": r.gflops(),
                    "gbps": r.gbps(),
                    "flops": r.flops,
                    "bytes": r.bytes,
                    "pct_of_fma_peak": peak_flops.filter(|p| *p > 0.0 && r.flops > 0).map(|p| 100.0 * r.gflops() / p),
                    "pct_of_copy_bw": peak_bw.filter(|p| *p > 0.0).map(|p| 100.0 * r.gbps() / p),
                    "timer": r.timer,
                    "repeats": r.repeats,
                    "adapter": info.name,
                    "backend": format!("{:?}", info.backend),
                })
            })
            .collect(),
    )
}

/// A plain-text table with each record's share of the measured ceilings.
pub fn render(records: &[Record], gpu: &Gpu) -> String {
    let peak_flops = records.iter().find(|r| r.name == "fma_peak").map(|r| r.gflops());
    let peak_bw = records.iter().find(|r| r.name == "copy_bw").map(|r| r.gbps());
    let mut s = format!("adapter: {}\n{:<12} {:<22} {:>11} {:>10} {:>9} {:>8} {:>8}  timer\n", gpu.describe(), "name", "shape", "median ms", "GFLOP/s", "GB/s", "%FMA", "%BW");
    for r in records {
        let pf = peak_flops.filter(|_| r.flops > 0).map(|p| format!("{:.1}", 100.0 * r.gflops() / p)).unwrap_or("-".into());
        let pb = peak_bw.map(|p| format!("{:.1}", 100.0 * r.gbps() / p)).unwrap_or("-".into());
        let shape = r.shape.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("×");
        s += &format!("{:<12} {:<22} {:>11.3} {:>10.1} {:>9.1} {:>8} {:>8}  {}\n", r.name, shape, r.median_ms, r.gflops(), r.gbps(), pf, pb, r.timer);
    }
    s
}
