//! `vlmc budget`: tokens per image for every connector at its model's standard resolution (the
//! image size given for the dynamic-resolution ones), text left in the context, and each
//! connector's measured time with random weights at the model's shapes; a table and an SVG chart.

use std::path::PathBuf;
use vlm_connectors::connectors::budget::{budget_table, render_svg, render_table, Scheme};
use vlm_connectors::connectors::{AnyResPacker, Inputs, LlavaProjector};
use vlm_connectors::internal::bench::{fresh, record_connector, seed, time_forward, BenchOptions};
use vlm_connectors::kernels::anyres::record_anyres_pack;
use vlm_connectors::kernels::pool::record_avg_pool2x2;
use vlm_connectors::kernels::tome::record_tome;
use vlm_connectors::util::Rng;
use vlm_connectors::{DType, Error, Gpu, Result, Tensor};

/// Runs `vlmc budget`: `image` is "HxW"; `no_time` skips the measurements.
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
        eprintln!("timing the connectors on {} (random weights at each model's shapes)...", gpu.describe());
        let mut rng = Rng::new(11);
        let proj: LlavaProjector = seed::llava(&gpu, dt)?.into_model()?;
        let qf = seed::qformer(&gpu, dt)?;
        let perceiver = seed::perceiver(&gpu, dt)?;
        let newline = fresh(&gpu, &mut rng, &[4096], dt)?;
        let layout = AnyResPacker::llava_next_default().layout(image_size)?;
        let tiles = layout.tiles();
        let ones = Tensor::from_host(&gpu, &[1.0; 576], &[1, 576, 1], dt)?;
        let zoo_ms = |model_type: &str, grid: [usize; 2]| -> Result<f64> {
            let z =
                seed::zoo(&gpu, model_type, grid, dt)?.ok_or_else(|| Error::input("budget", format!("no zoo seed for {model_type}")))?;
            let timed = time_forward(&gpu, w, r, |rec, rng| {
                let mut inputs = Inputs::new();
                for (name, shape) in &z.tensors {
                    inputs = inputs.with_tensor(name, fresh(&gpu, rng, shape, dt)?);
                }
                for (name, shape, v) in &z.ints {
                    inputs = inputs.with_ints(name, shape, v.clone());
                }
                record_connector(&z.connector, rec, &inputs)
            })?;
            Ok(timed.ms)
        };
        for row in rows.iter_mut() {
            eprintln!("  {} ...", row.name);
            if let Scheme::Zoo { model_type, grid } = row.scheme {
                // A model too big for this adapter (Llama 3.2 Vision's f32 tiles past a 128 MiB
                // binding limit) leaves its row untimed instead of ending the report.
                match zoo_ms(model_type, grid) {
                    Ok(ms) => row.ms = Some(ms),
                    Err(e) => eprintln!("    not timed: {e}"),
                }
                continue;
            }
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
                Scheme::Zoo { .. } => unreachable!("timed above"),
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
