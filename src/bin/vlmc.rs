//! `vlmc`: run connectors from checkpoint folders, inspect adapters, and demo the seed shapes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};
use vlm_connectors::checkpoint::{save_f32, WeightSource};
use vlm_connectors::connectors::{Connector, LoadOptions};
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
        /// Which gated cross-attention layer to run: `gated_cross_attn_layers.N`, or in a released
        /// OpenFlamingo checkpoint.pt the N-th gated layer in decoder order.
        #[arg(long)]
        layer: Option<usize>,
        /// Set a config field, e.g. `--set gated_xattn.heads=16` (dotted path = JSON value); repeatable.
        #[arg(long = "set", value_name = "FIELD=JSON")]
        set: Vec<String>,
        /// Compute dtype: f32, or f16 (weights and activations in f16, f32 accumulation; needs SHADER_F16).
        #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
        dtype: String,
    },
    /// List every adapter wgpu sees and the one that would be chosen; with MODEL_DIR, what that
    /// folder loads as (connector, config read or inferred, defaults assumed).
    Info {
        /// A checkpoint folder to describe.
        model_dir: Option<PathBuf>,
        /// Config fields to set, as for `vlmc run`.
        #[arg(long = "set", value_name = "FIELD=JSON")]
        set: Vec<String>,
    },
    /// Run the connectors at the seed's shapes with random weights and time them.
    Demo {
        /// Forwards to time after one warm-up (default: 5 on a GPU, 1 on a CPU adapter).
        #[arg(long)]
        iters: Option<usize>,
    },
    /// Time kernels and connectors at the seed's shapes next to the adapter's measured ceilings.
    Bench {
        /// Run these entries (comma separated): fma_peak, copy_bw, gemm, attention, layernorm, llava, qformer, perceiver, gated_xattn.
        #[arg(long)]
        only: Option<String>,
        /// Shape for the --only entry, comma separated (gemm: M,K,N).
        #[arg(long)]
        shape: Option<String>,
        /// Write the records as JSON.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Repeats per entry (default: 10 on a GPU, 1 on a CPU adapter).
        #[arg(long)]
        repeats: Option<usize>,
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
    quiet_window_system();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run { model_dir, inputs, output, layer, set, dtype } => overrides(layer, &set).and_then(|o| {
            let dtype = if dtype == "f16" { vlm_connectors::DType::F16 } else { vlm_connectors::DType::F32 };
            run(model_dir, inputs, output, &LoadOptions { overrides: o, dtype })
        }),
        Cmd::Info { model_dir: None, .. } => info(),
        Cmd::Info { model_dir: Some(dir), set } => overrides(None, &set).and_then(|o| describe(&dir, &o)),
        Cmd::Demo { iters } => demo::demo(iters),
        Cmd::Bench { only, shape, json, repeats } => demo::bench_cmd(only, shape, json, repeats),
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

/// Mesa's Vulkan window-system code prints `error: XDG_RUNTIME_DIR is invalid or not set` on a
/// headless machine, though a compute-only instance never uses it. Give it a private runtime
/// folder (0700, as the XDG spec wants) when the variable is unset or names no folder. Called
/// first in `main`, before any thread exists, so changing the environment is sound.
#[cfg(unix)]
fn quiet_window_system() {
    let ok = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).is_dir());
    if ok {
        return;
    }
    let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
    let dir = std::env::temp_dir().join(format!("vlmc-runtime-{user}"));
    let made = std::fs::create_dir_all(&dir).is_ok() && {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok()
    };
    if made {
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

#[cfg(not(unix))]
fn quiet_window_system() {}

/// `--layer` and `--set` as config overrides.
fn overrides(layer: Option<usize>, set: &[String]) -> Result<Vec<(String, serde_json::Value)>> {
    let mut o = Vec::new();
    if let Some(l) = layer {
        o.push(("layer_index".to_string(), serde_json::json!(l)));
    }
    for s in set {
        let bad = |why: &str| vlm_connectors::Error::Input { name: "--set".into(), message: format!("`{s}`: {why}") };
        let (path, value) = s.split_once('=').ok_or_else(|| bad("expected FIELD=JSON, e.g. gated_xattn.heads=16"))?;
        let value =
            serde_json::from_str(value).or_else(|_| serde_json::from_str(&format!("\"{value}\""))).map_err(|_| bad("not a JSON value"))?;
        o.push((path.to_string(), value));
    }
    Ok(o)
}

/// `vlmc info MODEL_DIR`: what the folder loads as: the connector, the config fields it read or
/// assumed, the tensors it took, and its shapes and tokens per image.
fn describe(dir: &std::path::Path, overrides: &[(String, serde_json::Value)]) -> Result<()> {
    let gpu = Gpu::new()?;
    let c = Connector::from_dir_with(&gpu, dir, overrides)?;
    println!("{}: model_type `{}` → {} ({})", dir.display(), c.model_type(), c.entry().class, c.entry().reference);
    println!("inputs: {}", c.input_names().join(", "));
    match c.inferred() {
        None => {
            println!("config: {}", dir.join("config.json").display());
            let absent = c.config().absent();
            if !absent.is_empty() {
                println!("  absent, so the reference's default applies: {}", absent.join(", "));
            }
        }
        Some(inf) => {
            println!("config: none in the folder; inferred from the checkpoint's tensors");
            for d in &inf.derived {
                println!("  read:    {d}");
            }
            for a in &inf.assumed {
                println!("  assumed: {a} (OpenFlamingo's factory default; override with --set)");
            }
            println!("{}", serde_json::to_string_pretty(c.config().value()).unwrap_or_default());
        }
    }
    let (read, total) = c.weights_read();
    if total > 0 {
        println!("weights: {} of the checkpoint's {total} tensors, under {}", read.len(), prefixes(read));
    }
    for line in c.describe() {
        println!("  {line}");
    }
    Ok(())
}

/// "a.b (3), c (1)": the module prefixes of tensor names (the parameter name dropped, at most
/// three components kept), with counts, in first-seen order.
fn prefixes(names: &[String]) -> String {
    let mut groups: Vec<(String, usize)> = Vec::new();
    for n in names {
        let parts: Vec<&str> = n.split('.').collect();
        let keep = parts.len().saturating_sub(1).clamp(1, 3);
        let key = parts[..keep.min(parts.len())].join(".");
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, c)) => *c += 1,
            None => groups.push((key, 1)),
        }
    }
    groups.iter().map(|(k, c)| format!("{k} ({c})")).collect::<Vec<_>>().join(", ")
}

fn run(model_dir: PathBuf, inputs: PathBuf, output: PathBuf, opts: &LoadOptions) -> Result<()> {
    let gpu = Gpu::new()?;
    let connector = Connector::from_dir_opts(&gpu, &model_dir, opts)?;
    let inputs = WeightSource::open_file(&inputs)?;
    let t0 = Instant::now();
    let outs = connector.run(&gpu, &inputs)?;
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let views: Vec<(&str, &[usize], &[f32])> = outs.iter().map(|o| (o.name.as_str(), o.shape.as_slice(), o.data.as_slice())).collect();
    save_f32(&output, &views)?;
    for o in &outs {
        println!("{} {:?}", o.name, o.shape);
    }
    println!("adapter: {}  ({ms:.2} ms incl. upload and readback, {:?})", gpu.describe(), connector.dtype());
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
    println!("connectors (model_type → type, reference):");
    for e in vlm_connectors::connectors::MODELS {
        println!("  {:<40} {:<15} {}", e.model_types.join(", "), e.class, e.reference);
    }
    Ok(())
}

mod demo {
    use std::path::PathBuf;
    use vlm_connectors::connectors::budget::{budget_table, render_svg, render_table, Scheme};
    use vlm_connectors::connectors::{AnyResPacker, Inputs, LlavaProjector};
    use vlm_connectors::internal::bench::{self, fresh, record_connector, seed, time_forward, BenchOptions};
    use vlm_connectors::kernels::anyres::record_anyres_pack;
    use vlm_connectors::kernels::pool::record_avg_pool2x2;
    use vlm_connectors::kernels::tome::record_tome;
    use vlm_connectors::util::Rng;
    use vlm_connectors::{Error, Gpu, Result, Tensor};

    /// The connectors at the seed's shapes with random weights: `vlmc bench` on the connector entries,
    /// with the adapter's ceilings for the %FMA / %BW columns.
    pub fn demo(iters: Option<usize>) -> Result<()> {
        let gpu = Gpu::new()?;
        let mut o = BenchOptions::for_gpu(&gpu);
        o.repeats = iters.unwrap_or(o.repeats.min(5)).max(1);
        o.only = Some(format!("fma_peak,copy_bw,{}", bench::CONNECTORS.join(",")));
        let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
        println!("adapter: {}{}", gpu.describe(), if cpu { "  (a CPU driver: expect seconds, not milliseconds)" } else { "" });
        println!("median of {} forward(s); each forward is one submit\n", o.repeats);
        let records = bench::run(&gpu, &o, |line| eprintln!("  running {line} ..."))?;
        print!("{}", bench::render(&records, &gpu));
        Ok(())
    }

    /// `vlmc bench`: kernels and connectors, with the adapter's ceilings, as a table and JSON.
    pub fn bench_cmd(only: Option<String>, shape: Option<String>, json: Option<PathBuf>, repeats: Option<usize>) -> Result<()> {
        let gpu = Gpu::new()?;
        let mut o = BenchOptions::for_gpu(&gpu);
        o.only = only;
        if let Some(r) = repeats {
            o.repeats = r.max(1);
        }
        if let Some(s) = shape {
            let v: std::result::Result<Vec<usize>, _> = s.split(',').map(|x| x.trim().parse::<usize>()).collect();
            match v {
                Ok(v) if !v.is_empty() && v.iter().all(|&x| x > 0) && o.only.is_some() => o.shape = Some(v),
                _ => {
                    return Err(Error::Input {
                        name: "--shape".into(),
                        message: format!("`{s}`: expected positive integers separated by commas, with --only"),
                    })
                }
            }
        }
        eprintln!("bench on {} ({} repeat(s), {} warm-up)", gpu.describe(), o.repeats, o.warmup);
        let records = bench::run(&gpu, &o, |line| eprintln!("  running {line} ..."))?;
        print!("{}", bench::render(&records, &gpu));
        if let Some(path) = json {
            let text = serde_json::to_string_pretty(&bench::to_json(&records, &gpu)).expect("JSON of plain values");
            std::fs::write(&path, text).map_err(|e| Error::Io { path: path.clone(), source: e })?;
            eprintln!("wrote {}", path.display());
        }
        Ok(())
    }

    pub fn budget(context: usize, image: &str, tome_r: usize, svg: Option<PathBuf>, no_time: bool) -> Result<()> {
        let image_size = match image.split(['x', 'X', ',']).map(|v| v.trim().parse::<usize>()).collect::<Vec<_>>().as_slice() {
            [Ok(h), Ok(w)] => [*h, *w],
            _ => return Err(Error::Input { name: "--image".into(), message: format!("`{image}`: expected HxW, e.g. 672x672") }),
        };
        let mut rows = budget_table(context, image_size, tome_r)?;
        if !no_time {
            let gpu = Gpu::new()?;
            let o = BenchOptions::for_gpu(&gpu);
            let (w, r) = (o.warmup, o.repeats.min(3));
            eprintln!("timing the connectors on {} (random weights at LLaVA-1.5 / BLIP-2 / OpenFlamingo shapes)...", gpu.describe());
            let mut rng = Rng::new(11);
            let proj: LlavaProjector = seed::llava(&gpu)?.into_model()?;
            let qf = seed::qformer(&gpu)?;
            let perceiver = seed::perceiver(&gpu)?;
            let newline = fresh(&gpu, &mut rng, &[4096])?;
            let layout = AnyResPacker::llava_next_default().layout(image_size)?;
            let tiles = layout.tiles();
            let ones = Tensor::from_slice(&gpu, &[1.0; 576], &[1, 576, 1])?;
            for row in rows.iter_mut() {
                eprintln!("  {} ...", row.name);
                let timed = match row.scheme {
                    Scheme::Llava => {
                        time_forward(&gpu, w, r, |rec, rng| proj.forward(rec, &fresh(&gpu, rng, &[1, 576, 1024])?).map(|_| ()))?
                    }
                    Scheme::LlavaPool => time_forward(&gpu, w, r, |rec, rng| {
                        let p = record_avg_pool2x2(rec, &fresh(&gpu, rng, &[1, 576, 1024])?, 24, 24)?;
                        proj.forward(rec, &p).map(|_| ())
                    })?,
                    Scheme::LlavaTome { r: merge } => time_forward(&gpu, w, r, |rec, rng| {
                        let x = fresh(&gpu, rng, &[1, 576, 1024])?;
                        let (m, _) = record_tome(rec, &x, &x, &ones, merge, false)?;
                        proj.forward(rec, &m).map(|_| ())
                    })?,
                    Scheme::QFormer => time_forward(&gpu, w, r, |rec, rng| {
                        record_connector(&qf, rec, &Inputs::new().with_tensor("image_embeds", fresh(&gpu, rng, &[1, 257, 1408])?))
                    })?,
                    Scheme::Perceiver => time_forward(&gpu, w, r, |rec, rng| {
                        record_connector(
                            &perceiver,
                            rec,
                            &Inputs::new().with_tensor("vision_features", fresh(&gpu, rng, &[1, 1, 1, 257, 1024])?),
                        )
                    })?,
                    Scheme::AnyRes { .. } => time_forward(&gpu, w, r, |rec, rng| {
                        let p = proj.forward(rec, &fresh(&gpu, rng, &[tiles, 576, 1024])?)?;
                        record_anyres_pack(rec, &p, &newline, &layout).map(|_| ())
                    })?,
                    Scheme::AnyResPool { .. } => time_forward(&gpu, w, r, |rec, rng| {
                        let pooled = record_avg_pool2x2(rec, &fresh(&gpu, rng, &[tiles, 576, 1024])?, 24, 24)?;
                        let p = proj.forward(rec, &pooled)?;
                        record_anyres_pack(rec, &p, &newline, &layout.pooled(image_size)).map(|_| ())
                    })?,
                };
                row.ms = Some(timed.ms);
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
}
