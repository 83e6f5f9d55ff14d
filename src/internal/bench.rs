//! Benchmarks: the connectors at the seed's shapes, the kernels under them, and the adapter's own
//! ceilings measured in the same run. Used by `vlmc bench`, `vlmc demo`, `vlmc budget` and
//! `cargo bench`.
//!
//! Every entry: fresh random inputs per repeat, warm-up (GPUs), repeats, median. Time comes from
//! GPU timestamps around the forward's one compute pass when the adapter has TIMESTAMP_QUERY, else
//! from the wall clock around submit + wait.

use crate::connectors::{Connector, Inputs};
use crate::kernels::attention::{record_attention, AttnOpts, Heads};
use crate::kernels::ceiling::{record_copy, record_fma_peak};
use crate::kernels::gemm::record_linear;
use crate::kernels::layernorm::record_layernorm;
use crate::kernels::Activation;
use crate::runtime::{Cost, DType, Error, Gpu, Recorder, Result, Tensor};
use crate::util::Rng;

pub use super::seed;

/// One benchmark result.
#[derive(Clone, Debug)]
pub struct Record {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    /// A connector's GPU memory: (weights, peak during a forward incl. weights), bytes.
    pub memory: Option<(u64, u64)>,
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
    /// Run only these entries, comma separated (e.g. `gemm` or `llava,qformer`).
    pub only: Option<String>,
    /// Shape override for the selected entry (GEMM: M, K, N).
    pub shape: Option<Vec<usize>>,
    /// Repeats per entry (median reported).
    pub repeats: usize,
    /// Warm-up forwards per entry.
    pub warmup: usize,
    /// Compute dtype of the kernels and connectors (the ceilings stay f32).
    pub dtype: DType,
}

impl BenchOptions {
    /// Defaults for the adapter: CPU drivers get 1 repeat and no warm-up (one forward takes seconds).
    pub fn for_gpu(gpu: &Gpu) -> BenchOptions {
        let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
        BenchOptions { only: None, shape: None, repeats: if cpu { 1 } else { 10 }, warmup: if cpu { 0 } else { 2 }, dtype: DType::F32 }
    }
}

/// Median time of `repeats` forwards built by `f` (which gets fresh random inputs each call), the
/// timer used, and the forward's cost as its launches declared it.
pub fn time_forward(gpu: &Gpu, warmup: usize, repeats: usize, mut f: impl FnMut(&mut Recorder, &mut Rng) -> Result<()>) -> Result<Timed> {
    let mut rng = Rng::new(0x5eed);
    for _ in 0..warmup {
        let mut rec = Recorder::new(gpu);
        f(&mut rec, &mut rng)?;
        rec.submit()?;
        gpu.wait()?;
    }
    let mut times = Vec::with_capacity(repeats);
    let mut timer = "wall";
    let mut cost = Cost::default();
    for _ in 0..repeats.max(1) {
        let mut rec = Recorder::new(gpu);
        f(&mut rec, &mut rng)?;
        cost = rec.cost();
        let t = rec.submit_timed()?;
        if t.gpu_ms.is_some() {
            timer = "gpu-timestamp";
        }
        times.push(t.ms());
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(Timed { ms: times[times.len() / 2], timer, cost })
}

/// What [`time_forward`] measured.
#[derive(Clone, Copy, Debug)]
pub struct Timed {
    /// Median milliseconds per forward.
    pub ms: f64,
    /// "gpu-timestamp" or "wall".
    pub timer: &'static str,
    /// FLOPs and bytes of one forward.
    pub cost: Cost,
}

/// Records one forward of a registry connector on `inputs` (outputs dropped).
pub fn record_connector(c: &Connector, rec: &mut Recorder, inputs: &Inputs) -> Result<()> {
    c.record(rec, inputs).map(|_| ())
}

/// A tensor of fresh random values in [-1, 1), in `dtype`.
pub fn fresh(gpu: &Gpu, rng: &mut Rng, shape: &[usize], dtype: DType) -> Result<Tensor> {
    Tensor::from_host(gpu, &rng.vec(shape.iter().product(), 1.0), shape, dtype)
}

/// Names of the entries, in the order they run.
pub const ENTRIES: &[&str] = &[
    "fma_peak",
    "copy_bw",
    "gemm",
    "attention",
    "layernorm",
    "gather_rows",
    "anyres_resize",
    "llava",
    "qformer",
    "perceiver",
    "gated_xattn",
    "llava_pixels",
];

/// The connector entries (what `vlmc demo` runs).
pub const CONNECTORS: &[&str] = &["llava", "qformer", "perceiver", "gated_xattn"];

/// Runs the benchmark entries; `progress` gets a line before each.
pub fn run(gpu: &Gpu, opts: &BenchOptions, mut progress: impl FnMut(&str)) -> Result<Vec<Record>> {
    let only: Option<Vec<&str>> = opts.only.as_deref().map(|o| o.split(',').map(str::trim).collect());
    if let Some(bad) = only.iter().flatten().find(|o| !ENTRIES.contains(o)) {
        return Err(Error::Input { name: "--only".into(), message: format!("`{bad}` is not one of {}", ENTRIES.join(", ")) });
    }
    if opts.shape.is_some() && only.as_ref().is_none_or(|o| o.len() != 1) {
        return Err(Error::Input { name: "--shape".into(), message: "goes with --only naming exactly one entry".into() });
    }
    let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.contains(&name));
    let shape_for = |name: &str, default: Vec<Vec<usize>>| -> Vec<Vec<usize>> {
        match (&opts.shape, only.as_deref()) {
            (Some(s), Some([o])) if *o == name => vec![s.clone()],
            _ => default,
        }
    };
    let (w, r, dt) = (opts.warmup, opts.repeats, opts.dtype);
    let mut out = Vec::new();
    let mut rec_of = |name: &str, shape: Vec<usize>, t: Timed, memory: Option<(u64, u64)>| {
        let dtype = if name == "fma_peak" || name == "copy_bw" { DType::F32 } else { dt };
        out.push(Record {
            name: name.to_string(),
            shape,
            dtype,
            memory,
            median_ms: t.ms,
            flops: t.cost.flops,
            bytes: t.cost.bytes,
            timer: t.timer,
            repeats: r.max(1),
        });
    };

    if wanted("fma_peak") {
        progress("fma_peak: the adapter's FMA ceiling");
        let (threads, iters) = if cpu { (1 << 14, 1024) } else { (1 << 20, 4096) };
        let t = time_forward(gpu, w, r, |rec, _| record_fma_peak(rec, threads, iters).map(|_| ()))?;
        rec_of("fma_peak", vec![threads, iters], t, None);
    }
    if wanted("copy_bw") {
        progress("copy_bw: the adapter's copy bandwidth");
        let n = if cpu { 1 << 22 } else { 1 << 26 };
        let src = Tensor::from_slice(gpu, &Rng::new(1).vec(n, 1.0), &[n])?;
        let t = time_forward(gpu, w, r, |rec, _| record_copy(rec, &src).map(|_| ()))?;
        rec_of("copy_bw", vec![n], t, None);
    }
    if wanted("gemm") {
        let mut shapes = vec![vec![576, 1024, 4096]];
        if !cpu {
            shapes.push(vec![4096, 4096, 4096]);
        }
        for s in shape_for("gemm", shapes) {
            let [m, k, n] = s[..] else {
                return Err(Error::Input { name: "--shape".into(), message: format!("gemm takes M,K,N; got {s:?}") });
            };
            progress(&format!("gemm {m}×{k}×{n}"));
            let wt = fresh(gpu, &mut Rng::new(2), &[n, k], dt)?;
            let t = time_forward(gpu, w, r, |rec, rng| {
                let x = fresh(gpu, rng, &[m, k], dt)?;
                record_linear(rec, &x, &wt, None, Activation::Identity, None).map(|_| ())
            })?;
            rec_of("gemm", s.clone(), t, None);
        }
    }
    if wanted("attention") {
        // Q-Former cross-attention: 32 queries into 257 ViT-g tokens, 12 heads × 64.
        for s in shape_for("attention", vec![vec![1, 32, 257, 12, 64], vec![1, 64, 321, 8, 64]]) {
            let [b, lq, lk, h, d] = s[..] else {
                return Err(Error::Input { name: "--shape".into(), message: format!("attention takes B,Lq,Lk,heads,head_dim; got {s:?}") });
            };
            progress(&format!("attention b{b} q{lq} k{lk} {h}×{d}"));
            let t = time_forward(gpu, w, r, |rec, rng| {
                let (q, k, v) =
                    (fresh(gpu, rng, &[b, lq, h * d], dt)?, fresh(gpu, rng, &[b, lk, h * d], dt)?, fresh(gpu, rng, &[b, lk, h * d], dt)?);
                record_attention(rec, Heads::all(&q), Heads::all(&k), Heads::all(&v), h, d, 0.125, AttnOpts::default(), None).map(|_| ())
            })?;
            rec_of("attention", s.clone(), t, None);
        }
    }
    if wanted("layernorm") {
        for s in shape_for("layernorm", vec![vec![576, 4096]]) {
            let [rows, cols] = s[..] else {
                return Err(Error::Input { name: "--shape".into(), message: format!("layernorm takes rows,cols; got {s:?}") });
            };
            progress(&format!("layernorm {rows}×{cols}"));
            let (g, bta) = (fresh(gpu, &mut Rng::new(3), &[cols], dt)?, fresh(gpu, &mut Rng::new(4), &[cols], dt)?);
            let t = time_forward(gpu, w, r, |rec, rng| {
                let x = fresh(gpu, rng, &[rows, cols], dt)?;
                record_layernorm(rec, &x, None, &g, &bta, 1e-5).map(|_| ())
            })?;
            rec_of("layernorm", s.clone(), t, None);
        }
    }
    if wanted("gather_rows") {
        // InstructBLIP's word embeddings: 32 instruction tokens from BERT's 30523 × 768 table.
        progress("gather_rows 32 ids from 30523 × 768");
        let table = fresh(gpu, &mut Rng::new(5), &[30523, 768], dt)?;
        let t = time_forward(gpu, w, r, |rec, rng| {
            let ids: Vec<i64> = (0..32).map(|_| rng.below(30523) as i64).collect();
            crate::kernels::elementwise::record_gather_rows(rec, &table, &ids, "ids").map(|_| ())
        })?;
        rec_of("gather_rows", vec![32, 30523, 768], t, None);
    }
    if wanted("anyres_resize") {
        // LLaVA-OneVision-0.5B on a 1920² image: 26 SigLIP tiles of 27² tokens × 896, a 135² map → 80².
        progress("anyres_resize 26 × 729 × 896, 135² → 80²");
        let pinpoints: Vec<[usize; 2]> = (1..=6).flat_map(|i| (1..=6).map(move |j| [i * 384, j * 384])).collect();
        let layout = crate::kernels::anyres::AnyResLayout::new([1920, 1920], &pinpoints, 384, 14)?;
        let newline = fresh(gpu, &mut Rng::new(6), &[896], dt)?;
        let t = time_forward(gpu, w, r, |rec, rng| {
            let tiles = fresh(gpu, rng, &[layout.tiles(), 729, 896], dt)?;
            crate::kernels::anyres_resize::record_anyres_resize_pack(rec, &tiles, &newline, &layout, [80, 80]).map(|_| ())
        })?;
        rec_of("anyres_resize", vec![layout.tiles(), 729, 896, 80, 80], t, None);
    }
    // Connectors with one float input: (entry, description, seed, input name, input shape, reported shape).
    type Seed = fn(&Gpu, DType) -> Result<Connector>;
    type Entry<'a> = (&'a str, &'a str, Seed, &'a str, &'a [usize], [usize; 4]);
    let single: [Entry; 4] = [
        ("llava", "llava projector 576 × 1024 → 4096 → 4096", seed::llava, "image_features", &[1, 576, 1024], [576, 1024, 4096, 4096]),
        ("qformer", "qformer 257 × 1408 → 32 × 768 → 2560", seed::qformer, "image_embeds", &[1, 257, 1408], [257, 1408, 32, 768]),
        (
            "perceiver",
            "perceiver 4 × 257 × 1024 → 4 × 64 × 1024",
            seed::perceiver,
            "vision_features",
            &[1, 4, 1, 257, 1024],
            [4, 257, 1024, 64],
        ),
        (
            "llava_pixels",
            "llava_pixels: CLIP ViT-L/14-336 tower (23 layers) + projector, 1 × 3 × 336² → 576 × 4096",
            |g, d| seed::llava_pixels(g, d, 23),
            "pixel_values",
            &[1, 3, 336, 336],
            [336, 1024, 23, 4096],
        ),
    ];
    for (name, what, load, input, shape, reported) in single {
        if wanted(name) {
            progress(what);
            let base = start_memory(gpu);
            let c = load(gpu, dt)?;
            let weights = gpu.memory_in_use().0.saturating_sub(base);
            let forward = |rec: &mut Recorder, rng: &mut Rng| {
                record_connector(&c, rec, &Inputs::new().with_tensor(input, fresh(gpu, rng, shape, dt)?))
            };
            tune_then_reset_peak(gpu, forward)?;
            let t = time_forward(gpu, w, r, forward)?;
            rec_of(name, reported.to_vec(), t, Some((weights, gpu.memory_in_use().1.saturating_sub(base))));
        }
    }
    if wanted("gated_xattn") {
        progress("gated_xattn 128 × 4096 text, 4 × 64 × 1024 media");
        let base = start_memory(gpu);
        let c = seed::gated_xattn(gpu, dt)?;
        let weights = gpu.memory_in_use().0.saturating_sub(base);
        let forward = |rec: &mut Recorder, rng: &mut Rng| {
            let inputs = Inputs::new()
                .with_tensor("hidden_states", fresh(gpu, rng, &[1, 128, 4096], dt)?)
                .with_tensor("media", fresh(gpu, rng, &[1, 4, 64, 1024], dt)?)
                .with_ints("media_locations", &[1, 128], seed::media_locations());
            record_connector(&c, rec, &inputs)
        };
        tune_then_reset_peak(gpu, forward)?;
        let t = time_forward(gpu, w, r, forward)?;
        rec_of("gated_xattn", vec![128, 4096, 256, 1024], t, Some((weights, gpu.memory_in_use().1.saturating_sub(base))));
    }
    Ok(out)
}

/// Records one forward without timing it, so the autotuner measures (and allocates) now, not in
/// the timed forwards; then starts the memory peak afresh.
fn tune_then_reset_peak(gpu: &Gpu, forward: impl Fn(&mut Recorder, &mut Rng) -> Result<()>) -> Result<()> {
    let mut rec = Recorder::new(gpu);
    forward(&mut rec, &mut Rng::new(1))?;
    rec.discard();
    gpu.trim_pool();
    gpu.reset_memory_peak();
    Ok(())
}

/// Frees idle buffers and starts a new memory peak; returns the bytes alive now (what the
/// measured connector's numbers are taken above).
fn start_memory(gpu: &Gpu) -> u64 {
    gpu.trim_pool();
    gpu.reset_memory_peak();
    gpu.memory_in_use().0
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
                    "dtype": r.dtype.wgsl(),
                    "weights_bytes": r.memory.map(|m| m.0),
                    "peak_bytes": r.memory.map(|m| m.1),
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
    let mut s = format!(
        "adapter: {}\n{:<12} {:<22} {:>5} {:>11} {:>10} {:>9} {:>8} {:>8} {:>16}  timer\n",
        gpu.describe(),
        "name",
        "shape",
        "dtype",
        "median ms",
        "GFLOP/s",
        "GB/s",
        "%FMA",
        "%BW",
        "MiB weights/peak"
    );
    for r in records {
        let pf = peak_flops.filter(|_| r.flops > 0).map(|p| format!("{:.1}", 100.0 * r.gflops() / p)).unwrap_or("-".into());
        let pb = peak_bw.map(|p| format!("{:.1}", 100.0 * r.gbps() / p)).unwrap_or("-".into());
        let shape = r.shape.iter().map(|v| v.to_string()).collect::<Vec<_>>().join("×");
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let mem = r.memory.map(|(w, p)| format!("{:.1}/{:.1}", mib(w), mib(p))).unwrap_or("-".into());
        s += &format!(
            "{:<12} {:<22} {:>5} {:>11.3} {:>10.1} {:>9.1} {:>8} {:>8} {:>16}  {}\n",
            r.name,
            shape,
            r.dtype.wgsl(),
            r.median_ms,
            r.gflops(),
            r.gbps(),
            pf,
            pb,
            mem,
            r.timer
        );
    }
    s
}
