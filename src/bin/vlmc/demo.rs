//! `vlmc demo`, `vlmc bench` and `vlmc profile`: the benchmark harness behind a command line.

use std::path::PathBuf;
use vlm_connectors::connectors::Inputs;
use vlm_connectors::internal::bench::{self, fresh, seed, BenchOptions};
use vlm_connectors::runtime::tune::AutotuneSettings;
use vlm_connectors::util::Rng;
use vlm_connectors::{DType, Error, Gpu, GpuOptions, Result};

/// The connectors at the seed's shapes with random weights: `vlmc bench` on the connector entries,
/// with the adapter's ceilings for the %FMA / %BW columns.
pub fn demo(iters: Option<usize>, dtype: DType) -> Result<()> {
    let gpu = Gpu::new()?;
    let mut o = BenchOptions { dtype, ..BenchOptions::for_gpu(&gpu) };
    o.repeats = iters.unwrap_or(o.repeats.min(5)).max(1);
    o.only = Some(format!("fma_peak,copy_bw,{}", bench::CONNECTORS.join(",")));
    let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
    println!("adapter: {}{}", gpu.describe(), if cpu { "  (a CPU driver: expect seconds, not milliseconds)" } else { "" });
    super::photo::photo_demo(&gpu, dtype, cpu)?;
    println!("connectors at the seed's shapes, median of {} forward(s); each forward is one submit\n", o.repeats);
    let records = bench::run(&gpu, &o, |line| eprintln!("  running {line} ..."))?;
    print!("{}", bench::render(&records, &gpu));
    Ok(())
}

/// `vlmc bench`: kernels and connectors, with the adapter's ceilings, as a table and JSON.
pub fn bench_cmd(
    only: Option<String>,
    shape: Option<String>,
    json: Option<PathBuf>,
    repeats: Option<usize>,
    dtype: DType,
    tune: bool,
) -> Result<()> {
    let gpu = match tune {
        false => Gpu::new()?,
        true => {
            let autotune = AutotuneSettings { enabled: true, ..AutotuneSettings::default() };
            let gpu = Gpu::new_with(GpuOptions { autotune, ..GpuOptions::default() })?;
            gpu.tuner().clear();
            eprintln!("tuning afresh on {}", gpu.tuner().adapter());
            gpu
        }
    };
    let mut o = BenchOptions { dtype, ..BenchOptions::for_gpu(&gpu) };
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
    // The file first: a reader that closes stdout early (`| head`) ends the process at the print.
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&bench::to_json(&records, &gpu)).expect("JSON of plain values");
        std::fs::write(&path, text).map_err(|e| Error::Io { path: path.clone(), source: e })?;
        eprintln!("wrote {}", path.display());
    }
    print!("{}", bench::render(&records, &gpu));
    Ok(())
}

/// `vlmc profile`: one forward, kernel by kernel, next to the adapter's ceilings.
pub fn profile(model_dir: Option<PathBuf>, inputs: Option<PathBuf>, demo: Option<String>, dt: DType, json: Option<PathBuf>) -> Result<()> {
    use vlm_connectors::checkpoint::WeightSource;
    use vlm_connectors::connectors::{Connector, LoadOptions};
    let gpu = Gpu::new()?;
    let mut rng = Rng::new(7);
    let (what, connector, inputs) = match (model_dir, inputs, demo.as_deref()) {
        (Some(dir), Some(file), None) => {
            let c = Connector::from_dir_opts(&gpu, &dir, &LoadOptions { dtype: dt, ..Default::default() })?;
            let inputs = Inputs::read_as(&gpu, &WeightSource::open_file(&file)?, c.input_names(), dt)?;
            (dir.display().to_string(), c, inputs)
        }
        (None, None, Some(name)) => {
            let (c, input, shape): (_, &str, &[usize]) = match name {
                "llava" => (seed::llava(&gpu, dt)?, "image_features", &[1, 576, 1024]),
                "llava_pixels" => (seed::llava_pixels(&gpu, dt, 23)?, "pixel_values", &[1, 3, 336, 336]),
                "qformer" => (seed::qformer(&gpu, dt)?, "image_embeds", &[1, 257, 1408]),
                "perceiver" => (seed::perceiver(&gpu, dt)?, "vision_features", &[1, 4, 1, 257, 1024]),
                "gated_xattn" => (seed::gated_xattn(&gpu, dt)?, "hidden_states", &[1, 128, 4096]),
                other => {
                    return Err(Error::Input {
                        name: "--demo".into(),
                        message: format!("`{other}`: one of llava, llava_pixels, qformer, perceiver, gated_xattn"),
                    })
                }
            };
            let mut inputs = Inputs::new().with_tensor(input, fresh(&gpu, &mut rng, shape, dt)?);
            if name == "gated_xattn" {
                inputs = inputs.with_tensor("media", fresh(&gpu, &mut rng, &[1, 4, 64, 1024], dt)?).with_ints(
                    "media_locations",
                    &[1, 128],
                    seed::media_locations(),
                );
            }
            (format!("demo {name}"), c, inputs)
        }
        _ => return Err(Error::Input { name: "profile".into(), message: "give MODEL_DIR with --inputs, or --demo NAME".into() }),
    };
    // The ceilings first, then one untimed forward (pipelines, autotuning), then the profiled one.
    let o = BenchOptions { only: Some("fma_peak,copy_bw".into()), ..BenchOptions::for_gpu(&gpu) };
    let ceilings = bench::run(&gpu, &o, |_| {})?;
    let (peak_flops, peak_bw) = (ceilings[0].gflops(), ceilings[1].gbps());
    let mut warm = vlm_connectors::Recorder::new(&gpu);
    connector.record(&mut warm, &inputs)?;
    warm.submit()?;
    gpu.wait()?;
    let mut rec = vlm_connectors::Recorder::new(&gpu);
    connector.record(&mut rec, &inputs)?;
    let dispatches = rec.submit_profiled()?;
    println!("{what} on {} ({:?}); ceilings {peak_flops:.1} GFLOP/s, {peak_bw:.1} GB/s", gpu.describe(), connector.dtype());
    println!(
        "{:>3} {:<20} {:>7} {:<16} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6} {:>6}",
        "#", "kernel", "variant", "grid", "MFLOP", "MB", "ms", "GFLOP/s", "GB/s", "%FMA", "%BW"
    );
    let mut records = Vec::new();
    for (i, d) in dispatches.iter().enumerate() {
        let (_, variant) = vlm_connectors::kernels::variant_of(d.kernel);
        let (gf, gb) = (d.cost.flops as f64 / d.ms.max(1e-9) / 1e6, d.cost.bytes as f64 / d.ms.max(1e-9) / 1e6);
        let grid = format!("{}×{}×{}", d.grid[0], d.grid[1], d.grid[2]);
        println!(
            "{i:>3} {:<20} {variant:>7} {grid:<16} {:>9.2} {:>9.2} {:>9.3} {gf:>9.1} {gb:>8.1} {:>6.1} {:>6.1}",
            d.kernel,
            d.cost.flops as f64 / 1e6,
            d.cost.bytes as f64 / 1e6,
            d.ms,
            100.0 * gf / peak_flops.max(1e-9),
            100.0 * gb / peak_bw.max(1e-9)
        );
        records.push(serde_json::json!({ "kernel": d.kernel, "variant": variant, "grid": d.grid, "flops": d.cost.flops, "bytes": d.cost.bytes, "ms": d.ms, "timer": d.timer }));
    }
    let total: f64 = dispatches.iter().map(|d| d.ms).sum();
    println!("{} dispatches, {total:.3} ms in all (timer: {})", dispatches.len(), dispatches.first().map_or("-", |d| d.timer));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&serde_json::Value::Array(records)).expect("JSON of plain values");
        std::fs::write(&path, text).map_err(|e| Error::Io { path: path.clone(), source: e })?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
