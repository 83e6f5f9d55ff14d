//! Times the GEMM kernel at one shape: `cargo run --release --example gemm_bench -- M K N [iters]`.

use std::time::Instant;
use vlm_connectors::kernels::{gemm::record_linear, Activation};
use vlm_connectors::util::Rng;
use vlm_connectors::{Gpu, Recorder, Tensor};

fn main() -> vlm_connectors::Result<()> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (m, k, n) = (args.first().copied().unwrap_or(576), args.get(1).copied().unwrap_or(1024), args.get(2).copied().unwrap_or(4096));
    let iters = args.get(3).copied().unwrap_or(3);
    let gpu = Gpu::new()?;
    let mut rng = Rng::new(1);
    let x = Tensor::from_slice(&gpu, &rng.vec(m * k, 1.0), &[m, k])?;
    let w = Tensor::from_slice(&gpu, &rng.vec(n * k, 0.05), &[n, k])?;
    let mut best = f64::MAX;
    for i in 0..=iters {
        let t0 = Instant::now();
        let mut rec = Recorder::new(&gpu);
        record_linear(&mut rec, &x, &w, None, Activation::Identity, None)?;
        rec.submit()?;
        gpu.wait()?;
        let s = t0.elapsed().as_secs_f64();
        if i > 0 {
            best = best.min(s);
        }
    }
    println!("{} gemm {m}x{k}x{n}: {:.2} ms, {:.2} GFLOP/s", gpu.describe(), best * 1e3, 2.0 * (m * k * n) as f64 / best / 1e9);
    Ok(())
}
