//! `cargo bench`: the same entries as `vlmc bench` (kernels, connectors at the seed's shapes and the
//! adapter's ceilings), printed as a table. `cargo bench -- gemm` runs one entry.

use vlm_connectors::internal::bench::{self, BenchOptions};
use vlm_connectors::Gpu;

fn main() -> vlm_connectors::Result<()> {
    let gpu = Gpu::new()?;
    let mut opts = BenchOptions::for_gpu(&gpu);
    // cargo passes `--bench`; any other free argument names an entry.
    opts.only = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let records = bench::run(&gpu, &opts, |line| eprintln!("  running {line} ..."))?;
    print!("{}", bench::render(&records, &gpu));
    Ok(())
}
