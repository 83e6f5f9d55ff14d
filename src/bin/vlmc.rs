//! `vlmc`: run connectors from checkpoint folders, inspect adapters, and demo the seed shapes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use vlm_connectors::checkpoint::{save_f32, WeightSource};
use vlm_connectors::connectors::Connector;
use vlm_connectors::runtime::gpu::{choose_adapter, enumerate_adapters, GpuOptions};
use vlm_connectors::{Gpu, Result};

#[derive(Parser)]
#[command(name = "vlmc", version, about = "Vision-language connectors on wgpu (Vulkan / Metal / DX12 / GL)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the connector in MODEL_DIR (config.json + safetensors) on named inputs; write `output`.
    Run {
        model_dir: PathBuf,
        /// safetensors file with the input tensors (e.g. `image_features`).
        #[arg(long)]
        inputs: PathBuf,
        /// safetensors file to write (`output` as float32, plus any intermediates).
        #[arg(long)]
        output: PathBuf,
    },
    /// List every adapter wgpu sees and the one that would be chosen.
    Info,
    /// Run the connectors at the seed's shapes with random weights and time them.
    Demo {
        /// Forwards to time after one warm-up (default: 5 on a GPU, 1 on a CPU adapter).
        #[arg(long)]
        iters: Option<usize>,
    },
    /// How much of the context each connector scheme leaves for text, with measured connector times.
    Budget {
        /// Context window of the language model, in tokens.
        #[arg(long, default_value_t = 4096)]
        context: usize,
        /// Image size as HxW pixels (for AnyRes).
        #[arg(long, default_value = "672x672")]
        image: String,
        /// Tokens ToMe merges away (one round; capped at half the tokens).
        #[arg(long, default_value_t = 288)]
        tome_r: usize,
        /// Also draw the table as an SVG bar chart.
        #[arg(long)]
        svg: Option<PathBuf>,
        /// Skip timing the connectors (token counts only).
        #[arg(long)]
        no_time: bool,
    },
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run { model_dir, inputs, output } => run(model_dir, inputs, output),
        Cmd::Info => info(),
        Cmd::Demo { iters } => demo::demo(iters),
        Cmd::Budget { context, image, tome_r, svg, no_time } => demo::budget(context, &image, tome_r, svg, no_time),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(model_dir: PathBuf, inputs: PathBuf, output: PathBuf) -> Result<()> {
    let gpu = Gpu::new()?;
    let connector = Connector::from_dir(&gpu, &model_dir)?;
    let inputs = WeightSource::open_file(&inputs)?;
    let t0 = Instant::now();
    let outs = connector.run(&gpu, &inputs)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let views: Vec<(&str, &[usize], &[f32])> = outs.iter().map(|o| (o.name.as_str(), o.shape.as_slice(), o.data.as_slice())).collect();
    save_f32(&output, &views)?;
    for o in &outs {
        println!("{} {:?}", o.name, o.shape);
    }
    println!("adapter: {}  ({ms:.2} ms incl. upload and readback)", gpu.describe());
    Ok(())
}

fn info() -> Result<()> {
    let opts = GpuOptions::default();
    let adapters = enumerate_adapters(opts.backends);
    println!("adapters ({} for backends {:?}):", adapters.len(), opts.backends);
    for a in &adapters {
        let i = a.get_info();
        println!("  - {} | {:?} | {:?} | driver: {} {}", i.name, i.backend, i.device_type, i.driver, i.driver_info);
    }
    let chosen = choose_adapter(adapters, &opts)?;
    let i = chosen.get_info();
    let l = chosen.limits();
    println!("chosen: {} ({:?}, {:?})", i.name, i.backend, i.device_type);
    println!("  features: {:?}", chosen.features() & vlm_connectors::runtime::gpu::WANTED_FEATURES);
    println!("  max_storage_buffer_binding_size: {} MiB", l.max_storage_buffer_binding_size / (1 << 20));
    println!("  max_buffer_size: {} MiB", l.max_buffer_size / (1 << 20));
    println!("  max_compute_workgroup_storage_size: {} B", l.max_compute_workgroup_storage_size);
    println!("  max_compute_invocations_per_workgroup: {}", l.max_compute_invocations_per_workgroup);
    println!("  max_compute_workgroups_per_dimension: {}", l.max_compute_workgroups_per_dimension);
    println!("  max_storage_buffers_per_shader_stage: {}", l.max_storage_buffers_per_shader_stage);
    Ok(())
}

mod demo {
    use std::time::Instant;
    use std::path::PathBuf;
    use vlm_connectors::connectors::budget::{budget_table, render_svg, render_table, Scheme};
    use vlm_connectors::connectors::{GatedCrossAttention, GatedXattnConfig, LlavaProjector, PerceiverConfig, PerceiverResampler, QFormer, QFormerConfig};
    use vlm_connectors::kernels::anyres::record_anyres_pack;
    use vlm_connectors::kernels::pool::record_avg_pool2x2;
    use vlm_connectors::kernels::tome::record_tome;
    use vlm_connectors::kernels::Activation;
    use vlm_connectors::util::Rng;
    use vlm_connectors::{Error, Gpu, Recorder, Result, Tensor};

    /// Median wall time (ms) of `iters` forwards, each recorded, submitted once and waited for.
    /// A warm-up forward first compiles pipelines and fills the buffer pool (skipped on CPU
    /// adapters, where one forward takes seconds and compiling is a rounding error).
    pub fn time_ms(gpu: &Gpu, iters: usize, mut f: impl FnMut(&mut Recorder) -> Result<Tensor>) -> Result<f64> {
        if gpu.adapter_info().device_type != wgpu::DeviceType::Cpu {
            let mut rec = Recorder::new(gpu);
            f(&mut rec)?;
            rec.submit()?;
            gpu.wait()?;
        }
        let mut times = Vec::with_capacity(iters);
        for _ in 0..iters {
            let t0 = Instant::now();
            let mut rec = Recorder::new(gpu);
            f(&mut rec)?;
            rec.submit()?;
            gpu.wait()?;
            times.push(t0.elapsed().as_secs_f64() * 1e3);
        }
        times.sort_by(|a, b| a.total_cmp(b));
        Ok(times[times.len() / 2])
    }

    fn report(name: &str, shapes: &str, ms: f64, flops: u64) {
        println!("{name:<22} {shapes:<52} {ms:>10.2} ms {:>9.1} GFLOP/s", flops as f64 / (ms * 1e-3) / 1e9);
    }

    /// BLIP-2's Q-Former on ViT-g: 32 queries × 768, 12 layers, 12 heads, FFN 3072, OPT-2.7b width.
    fn seed_qformer(gpu: &Gpu, rng: &mut Rng) -> Result<QFormer> {
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

    /// OpenFlamingo's Perceiver on CLIP-L features: depth 6, 8 heads × 64, 64 latents.
    fn seed_perceiver(gpu: &Gpu, rng: &mut Rng) -> Result<PerceiverResampler> {
        let pc = PerceiverConfig { dim: 1024, depth: 6, dim_head: 64, heads: 8, num_latents: 64, ff_mult: 4, max_num_media: None, max_num_frames: None };
        PerceiverResampler::random(gpu, pc, rng)
    }

    pub fn budget(context: usize, image: &str, tome_r: usize, svg: Option<PathBuf>, no_time: bool) -> Result<()> {
        let image_size = match image.split(['x', 'X', ',']).map(|v| v.trim().parse::<usize>()).collect::<Vec<_>>().as_slice() {
            [Ok(h), Ok(w)] => [*h, *w],
            _ => return Err(Error::Input { name: "--image".into(), message: format!("`{image}`: expected HxW, e.g. 672x672") }),
        };
        let mut rows = budget_table(context, image_size, tome_r)?;
        if !no_time {
            let gpu = Gpu::new()?;
            println!("timing the connectors on {} (random weights, LLaVA-1.5 / BLIP-2 / OpenFlamingo shapes)...", gpu.describe());
            let mut rng = Rng::new(11);
            let proj = LlavaProjector::random(&gpu, 1024, 4096, &mut rng)?;
            let qf = seed_qformer(&gpu, &mut rng)?;
            let perceiver = seed_perceiver(&gpu, &mut rng)?;
            let newline = Tensor::from_slice(&gpu, &rng.vec(4096, 1.0), &[4096])?;
            let anyres = vlm_connectors::connectors::AnyResPacker::llava_next_default();
            let layout = anyres.layout(image_size)?;
            let max_tiles = layout.tiles();
            let feats = Tensor::from_slice(&gpu, &rng.vec(max_tiles * 576 * 1024, 1.0), &[max_tiles, 576, 1024])?;
            let one = feats.reshape(&[max_tiles, 576, 1024])?;
            let vit_g = Tensor::from_slice(&gpu, &rng.vec(257 * 1408, 1.0), &[1, 257, 1408])?;
            let clip = Tensor::from_slice(&gpu, &rng.vec(257 * 1024, 1.0), &[1, 1, 1, 257, 1024])?;
            let ones = Tensor::from_slice(&gpu, &vec![1.0; 576], &[1, 576, 1])?;
            let first = Tensor::from_slice(&gpu, &rng.vec(576 * 1024, 1.0), &[1, 576, 1024])?;
            for row in rows.iter_mut() {
                let ms = match row.scheme {
                    Scheme::Llava => time_ms(&gpu, 1, |rec| proj.forward(rec, &first))?,
                    Scheme::LlavaPool => time_ms(&gpu, 1, |rec| {
                        let p = record_avg_pool2x2(rec, &first, 24, 24)?;
                        proj.forward(rec, &p)
                    })?,
                    Scheme::LlavaTome { r } => time_ms(&gpu, 1, |rec| {
                        let (m, _) = record_tome(rec, &first, &first, &ones, r, false)?;
                        proj.forward(rec, &m)
                    })?,
                    Scheme::QFormer => time_ms(&gpu, 1, |rec| Ok(qf.forward(rec, &vit_g)?.1))?,
                    Scheme::Perceiver => time_ms(&gpu, 1, |rec| perceiver.forward(rec, &clip))?,
                    Scheme::AnyRes { .. } => time_ms(&gpu, 1, |rec| {
                        let p = proj.forward(rec, &one)?;
                        record_anyres_pack(rec, &p, &newline, &layout)
                    })?,
                    Scheme::AnyResPool { .. } => time_ms(&gpu, 1, |rec| {
                        let pooled = record_avg_pool2x2(rec, &one, 24, 24)?;
                        let p = proj.forward(rec, &pooled)?;
                        record_anyres_pack(rec, &p, &newline, &layout.pooled(image_size))
                    })?,
                };
                row.ms = Some(ms);
            }
        }
        print!("{}", render_table(&rows, context));
        if let Some(path) = svg {
            let title = format!("Token budget: {}×{} image in a {context}-token context", image_size[0], image_size[1]);
            std::fs::write(&path, render_svg(&rows, context, &title)).map_err(|e| Error::Io { path: path.clone(), source: e })?;
            println!("chart: {}", path.display());
        }
        Ok(())
    }

    /// The connectors at the seed's shapes with random weights.
    pub fn demo(iters: Option<usize>) -> Result<()> {
        let gpu = Gpu::new()?;
        let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
        let iters = iters.unwrap_or(if cpu { 1 } else { 5 }).max(1);
        println!("adapter: {}{}", gpu.describe(), if cpu { "  (a CPU driver: expect seconds, not milliseconds)" } else { "" });
        println!("median of {iters} forward(s) after a warm-up; each forward is one submit\n");
        let mut rng = Rng::new(7);

        // LLaVA-1.5 projector at CLIP-L/336: 576 patches × 1024 → 4096 → 4096.
        let proj = LlavaProjector::random(&gpu, 1024, 4096, &mut rng)?;
        let x = Tensor::from_slice(&gpu, &rng.vec(576 * 1024, 1.0), &[1, 576, 1024])?;
        let ms = time_ms(&gpu, iters, |rec| proj.forward(rec, &x))?;
        report("LLaVA projector", "576 tokens × 1024 → 576 tokens × 4096", ms, proj.flops(576));

        // BLIP-2 Q-Former on ViT-g features: 257 × 1408 → 32 queries × 768 → OPT-2.7b width 2560.
        let qf = seed_qformer(&gpu, &mut rng)?;
        let img = Tensor::from_slice(&gpu, &rng.vec(257 * 1408, 1.0), &[1, 257, 1408])?;
        let ms = time_ms(&gpu, iters, |rec| Ok(qf.forward(rec, &img)?.1))?;
        report("BLIP-2 Q-Former", "257 × 1408 → 32 queries × 768 → 32 × 2560", ms, qf.flops(1, 257));

        // Flamingo Perceiver: 4 images of 257 × 1024 CLIP-L features → 64 latents each.
        let perceiver = seed_perceiver(&gpu, &mut rng)?;
        let feats = Tensor::from_slice(&gpu, &rng.vec(4 * 257 * 1024, 1.0), &[1, 4, 1, 257, 1024])?;
        let ms = time_ms(&gpu, iters, |rec| perceiver.forward(rec, &feats))?;
        report("Perceiver Resampler", "4 images × 257 × 1024 → 4 × 64 latents × 1024", ms, perceiver.flops(4, 257));

        // One gated cross-attention block: 128 text tokens × 4096 reading those 4 × 64 latents.
        let gc = GatedXattnConfig { dim: 4096, dim_visual: 1024, dim_head: 64, heads: 8, ff_mult: 4, only_attend_immediate_media: true, layer_index: None };
        let gx = GatedCrossAttention::random(&gpu, gc, &mut rng)?;
        let text = Tensor::from_slice(&gpu, &rng.vec(128 * 4096, 1.0), &[1, 128, 4096])?;
        let media = Tensor::from_slice(&gpu, &rng.vec(4 * 64 * 1024, 1.0), &[1, 4, 64, 1024])?;
        let mut locs = vec![0u8; 128];
        for i in [0, 32, 64, 96] {
            locs[i] = 1; // an <image> token opens each quarter of the text
        }
        let packed = gx.upload_locations(&gpu, &locs, 1, 128, 4)?;
        let ms = time_ms(&gpu, iters, |rec| gx.forward(rec, &text, &media, &packed))?;
        report("Gated cross-attention", "128 text × 4096 ⨯ 4 images × 64 × 1024 (immediate)", ms, gx.flops(128, 256, 64));
        Ok(())
    }
}
