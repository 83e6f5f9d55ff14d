//! `vlmc demo`, `vlmc bench` and `vlmc budget`: the benchmark harness behind a command line.

use std::path::PathBuf;
use vlm_connectors::connectors::budget::{budget_table, render_svg, render_table, Scheme};
use vlm_connectors::connectors::{AnyResPacker, Inputs, LlavaProjector};
use vlm_connectors::internal::bench::{self, fresh, record_connector, seed, time_forward, BenchOptions};
use vlm_connectors::kernels::anyres::record_anyres_pack;
use vlm_connectors::kernels::pool::record_avg_pool2x2;
use vlm_connectors::kernels::tome::record_tome;
use vlm_connectors::runtime::tune::AutotuneSettings;
use vlm_connectors::util::Rng;
use vlm_connectors::{DType, Error, Gpu, GpuOptions, Result, Tensor};

/// The connectors at the seed's shapes with random weights: `vlmc bench` on the connector entries,
/// with the adapter's ceilings for the %FMA / %BW columns.
pub fn demo(iters: Option<usize>, dtype: DType) -> Result<()> {
    let gpu = Gpu::new()?;
    let mut o = BenchOptions { dtype, ..BenchOptions::for_gpu(&gpu) };
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
    print!("{}", bench::render(&records, &gpu));
    if let Some(path) = json {
        let text = serde_json::to_string_pretty(&bench::to_json(&records, &gpu)).expect("JSON of plain values");
        std::fs::write(&path, text).map_err(|e| Error::Io { path: path.clone(), source: e })?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

pub fn budget(context: usize, image: &str, tome_r: usize, svg: Option<PathBuf>, no_time: bool, dt: DType) -> Result<()> {
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
        let proj: LlavaProjector = seed::llava(&gpu, dt)?.into_model()?;
        let qf = seed::qformer(&gpu, dt)?;
        let perceiver = seed::perceiver(&gpu, dt)?;
        let newline = fresh(&gpu, &mut rng, &[4096], dt)?;
        let layout = AnyResPacker::llava_next_default().layout(image_size)?;
        let tiles = layout.tiles();
        let ones = Tensor::from_host(&gpu, &[1.0; 576], &[1, 576, 1], dt)?;
        for row in rows.iter_mut() {
            eprintln!("  {} ...", row.name);
            let timed = match row.scheme {
                Scheme::Llava => {
                    time_forward(&gpu, w, r, |rec, rng| proj.forward(rec, &fresh(&gpu, rng, &[1, 576, 1024], dt)?).map(|_| ()))?
                }
                Scheme::LlavaPool => time_forward(&gpu, w, r, |rec, rng| {
                    let p = record_avg_pool2x2(rec, &fresh(&gpu, rng, &[1, 576, 1024], dt)?, 24, 24)?;
                    proj.forward(rec, &p).map(|_| ())
                })?,
                Scheme::LlavaTome { r: merge } => time_forward(&gpu, w, r, |rec, rng| {
                    let x = fresh(&gpu, rng, &[1, 576, 1024], dt)?;
                    let (m, _) = record_tome(rec, &x, &x, &ones, merge, false)?;
                    proj.forward(rec, &m).map(|_| ())
                })?,
                Scheme::QFormer => time_forward(&gpu, w, r, |rec, rng| {
                    record_connector(&qf, rec, &Inputs::new().with_tensor("image_embeds", fresh(&gpu, rng, &[1, 257, 1408], dt)?))
                })?,
                Scheme::Perceiver => time_forward(&gpu, w, r, |rec, rng| {
                    record_connector(
                        &perceiver,
                        rec,
                        &Inputs::new().with_tensor("vision_features", fresh(&gpu, rng, &[1, 1, 1, 257, 1024], dt)?),
                    )
                })?,
                Scheme::AnyRes { .. } => time_forward(&gpu, w, r, |rec, rng| {
                    let p = proj.forward(rec, &fresh(&gpu, rng, &[tiles, 576, 1024], dt)?)?;
                    record_anyres_pack(rec, &p, &newline, &layout).map(|_| ())
                })?,
                Scheme::AnyResPool { .. } => time_forward(&gpu, w, r, |rec, rng| {
                    let pooled = record_avg_pool2x2(rec, &fresh(&gpu, rng, &[tiles, 576, 1024], dt)?, 24, 24)?;
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
