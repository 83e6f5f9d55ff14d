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
    /// Encode photos (PNG, JPEG) with the model in MODEL_DIR (`llava`, `llava_next`, `llava_onevision`, `blip-2` with
    /// its vision tower and preprocessor_config.json): image processor, tower and connector; writes
    /// `output`, the embeddings the language model reads.
    Encode {
        model_dir: PathBuf,
        /// The photos.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// safetensors file to write (float32).
        #[arg(long)]
        output: PathBuf,
        /// Also write `pixel_values`, `vision_features` and the connector's intermediates.
        #[arg(long)]
        all: bool,
        /// Set a config field (dotted path = JSON value); repeatable.
        #[arg(long = "set", value_name = "FIELD=JSON")]
        set: Vec<String>,
        /// Compute dtype: f32, or f16 (needs SHADER_F16).
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
    /// A photo through LLaVA-1.5's image path (processor, CLIP-L/336 tower, projector), then the
    /// connectors at the seed's shapes; all with random weights, timed.
    Demo {
        /// Forwards to time after one warm-up (default: 5 on a GPU, 1 on a CPU adapter).
        #[arg(long)]
        iters: Option<usize>,
        /// Compute dtype of the connectors: f32 or f16.
        #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
        dtype: String,
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
        /// Compute dtype of the kernels and connectors: f32 or f16 (the ceilings stay f32).
        #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
        dtype: String,
        /// Measure every kernel choice afresh (even with VLMC_AUTOTUNE=off) and fill the tuning cache.
        #[arg(long)]
        tune: bool,
    },
    /// Time one forward kernel by kernel: each dispatch's kernel, variant, grid, FLOPs, bytes and
    /// GPU time against the adapter's ceilings.
    Profile {
        /// A checkpoint folder to run (with --inputs); without it, --demo.
        model_dir: Option<PathBuf>,
        /// safetensors file with the inputs for MODEL_DIR.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// A demo connector at the seed's shapes: llava, llava_pixels (CLIP-L/336 tower + projector), qformer, perceiver or gated_xattn.
        #[arg(long)]
        demo: Option<String>,
        /// Compute dtype: f32 or f16.
        #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
        dtype: String,
        /// Write one JSON record per dispatch (kernel, variant, grid, flops, bytes, ms).
        #[arg(long)]
        json: Option<PathBuf>,
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
        /// Compute dtype of the timed connectors: f32 or f16.
        #[arg(long, default_value = "f32", value_parser = ["f32", "f16"])]
        dtype: String,
    },
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing into a closed pipe (`vlmc info | head`) would panic; the
    // default action ends the process quietly, as for other command-line tools.
    #[cfg(unix)]
    // SAFETY: first thing in main, before any other thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    quiet_window_system();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Run { model_dir, inputs, output, layer, set, dtype } => {
            overrides(layer, &set).and_then(|mut o| {
                // Pixels in: the vision tower too (llava, llava_next, llava_onevision, blip-2), unless --set says otherwise.
                let pixels = WeightSource::open_file(&inputs).map(|f| f.contains("pixel_values")).unwrap_or(false);
                if pixels && !o.iter().any(|(k, _)| k == "load_vision_tower") {
                    o.push(("load_vision_tower".into(), serde_json::Value::Bool(true)));
                }
                run(model_dir, inputs, output, &LoadOptions { overrides: o, dtype: parse_dtype(&dtype) })
            })
        }
        Cmd::Encode { model_dir, images, output, all, set, dtype } => overrides(None, &set)
            .and_then(|o| encode::encode(&model_dir, &images, &output, &LoadOptions { overrides: o, dtype: parse_dtype(&dtype) }, all)),
        Cmd::Info { model_dir: None, .. } => info(),
        Cmd::Info { model_dir: Some(dir), set } => overrides(None, &set).and_then(|o| describe(&dir, &o)),
        Cmd::Demo { iters, dtype } => demo::demo(iters, parse_dtype(&dtype)),
        Cmd::Bench { only, shape, json, repeats, dtype, tune } => demo::bench_cmd(only, shape, json, repeats, parse_dtype(&dtype), tune),
        Cmd::Profile { model_dir, inputs, demo, dtype, json } => demo::profile(model_dir, inputs, demo, parse_dtype(&dtype), json),
        Cmd::Budget { context, image, tome_r, svg, no_time, dtype } => {
            budget::budget(context, &image, tome_r, svg, no_time, parse_dtype(&dtype))
        }
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
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = std::env::temp_dir().join(format!("vlmc-runtime-{uid}"));
    // Ours only: a real folder (not a symlink someone planted) owned by this user, made 0700.
    let ours = match std::fs::symlink_metadata(&dir) {
        Ok(m) => m.is_dir() && !m.file_type().is_symlink() && m.uid() == uid,
        Err(_) => std::fs::create_dir(&dir).is_ok(),
    };
    if ours && std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).is_ok() {
        std::env::set_var("XDG_RUNTIME_DIR", &dir);
    }
}

#[cfg(not(unix))]
fn quiet_window_system() {}

/// `--dtype` (clap has already checked it is f32 or f16).
fn parse_dtype(s: &str) -> vlm_connectors::DType {
    if s == "f16" {
        vlm_connectors::DType::F16
    } else {
        vlm_connectors::DType::F32
    }
}

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
    println!("tokens per image: {}", vlm_connectors::connectors::tokens::tokens_per_image(c.config())?);
    if vlm_connectors::connectors::models::TOWER_MODEL_TYPES.contains(&c.model_type()) {
        if !c.input_names().contains(&"pixel_values") {
            println!("from pixels: `vlmc run` on a file with pixel_values (or --set load_vision_tower=true) also runs the vision tower");
        }
        match vlm_connectors::preprocess::ImageProcessor::from_file(dir.join("preprocessor_config.json")) {
            Ok(p) => println!("images: `vlmc encode` runs {} → the vision tower → this connector", p.kind),
            Err(e) => println!("images: `vlmc encode` cannot run here: {e}"),
        }
    }
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
    let coop = chosen.cooperative_matrix_properties();
    let tile = vlm_connectors::runtime::gpu::coop_tile_for(&coop, &i, chosen.features()).filter(|_| opts.cooperative_matrix);
    let configs: Vec<String> =
        coop.iter().map(|p| format!("{}×{}×{} {:?}→{:?}", p.m_size, p.n_size, p.k_size, p.ab_type, p.cr_type)).collect();
    println!(
        "  cooperative matrices: {} → {}",
        if configs.is_empty() { "none".to_string() } else { configs.join(", ") },
        tile.map_or("SIMT GEMM kernels only".to_string(), |t| format!(
            "gemm_coop{t} is a candidate for f16 GEMMs (the tuner times it; VLMC_KERNELS=gemm=coop{t} forces it)"
        ))
    );
    println!("  subgroup size: {}..={}", i.subgroup_min_size, i.subgroup_max_size);
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

#[path = "vlmc/budget.rs"]
mod budget;
#[path = "vlmc/demo.rs"]
mod demo;
#[path = "vlmc/encode.rs"]
mod encode;
#[path = "vlmc/photo.rs"]
mod photo;
