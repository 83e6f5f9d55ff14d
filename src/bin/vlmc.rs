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
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run { model_dir, inputs, output } => run(model_dir, inputs, output),
        Cmd::Info => info(),
        Cmd::Demo { iters } => demo::demo(iters),
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
    use vlm_connectors::connectors::LlavaProjector;
    use vlm_connectors::util::Rng;
    use vlm_connectors::{Gpu, Recorder, Result, Tensor};

    /// Median wall time (ms) of `iters` forwards, each submitted and waited for.
    pub fn time_ms(gpu: &Gpu, iters: usize, mut f: impl FnMut(&mut Recorder) -> Result<Tensor>) -> Result<f64> {
        // Warm-up: compiles pipelines and fills the buffer pool.
        let mut rec = Recorder::new(gpu);
        f(&mut rec)?;
        rec.submit()?;
        gpu.wait()?;
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

    pub fn demo(iters: Option<usize>) -> Result<()> {
        let gpu = Gpu::new()?;
        let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
        let iters = iters.unwrap_or(if cpu { 1 } else { 5 }).max(1);
        println!("adapter: {}{}", gpu.describe(), if cpu { "  (a CPU driver: expect seconds, not milliseconds)" } else { "" });
        let mut rng = Rng::new(7);
        // LLaVA-1.5 projector at CLIP-L/336 shape: 576 patches × 1024 → 4096 → 4096.
        let proj = LlavaProjector::random(&gpu, 1024, 4096, &mut rng)?;
        let x = Tensor::from_slice(&gpu, &rng.vec(576 * 1024, 1.0), &[1, 576, 1024])?;
        let ms = time_ms(&gpu, iters, |rec| proj.forward(rec, &x))?;
        let gflops = proj.flops(576) as f64 / (ms * 1e-3) / 1e9;
        println!("llava projector: 576 tokens × 1024 in → 576 tokens × 4096 out | {ms:.2} ms/forward | {gflops:.1} GFLOP/s");
        Ok(())
    }
}
