//! Token compression before the projector: 2×2 average pooling of the patch grid (`pool2x2`) or
//! ToMe token merging (`tome`), whichever the folder's config.json names.
//!
//!     cargo run --release --example token_compression -- [STAGE_DIR]   (default tests/data/tome_cls)
//!
//! References: torch `AvgPool2d(2, 2)`; ToMe `bipartite_soft_matching` + `merge_wavg` (tome/merge.py).

mod common;

use vlm_connectors::connectors::{Connector, Pool2x2, TokenMerger};
use vlm_connectors::{Gpu, Recorder};

fn main() -> vlm_connectors::Result<()> {
    let dir = common::dir("tome_cls");
    let gpu = Gpu::new()?;
    let inputs = common::inputs(&dir)?;
    let tokens = common::tensor(&gpu, &inputs, "tokens")?; // [b, t, C]
    let stage = Connector::from_dir(&gpu, &dir)?;
    let mut rec = Recorder::new(&gpu);
    if let Some(pool) = stage.model::<Pool2x2>() {
        println!("adapter: {}; 2×2 pooling of a {:?} grid → {} tokens", gpu.describe(), pool.grid, pool.output_tokens());
        let out = pool.forward(&mut rec, &tokens)?;
        rec.submit()?;
        return common::report(&gpu, &dir, "output", &out);
    }
    let tome: TokenMerger = stage.into_model()?;
    let t = tokens.shape()[1];
    println!("adapter: {}; ToMe r={} on {t} tokens → {}", gpu.describe(), tome.r, tome.output_tokens(t));
    let (metric, size) = (common::tensor(&gpu, &inputs, "metric")?, common::tensor(&gpu, &inputs, "size")?);
    let (merged, sizes) = tome.forward(&mut rec, &tokens, &metric, &size)?;
    rec.submit()?;
    common::report(&gpu, &dir, "size", &sizes)?;
    common::report(&gpu, &dir, "output", &merged)
}
