//! Measuring at first use: the variants of a family timed on random data of the shape a launch
//! asks for, the fastest kept for that (adapter, family, dtype, shape bucket) in memory and in the
//! disk cache (`runtime::tune_cache`). Launches too small to time reliably keep the heuristic.

use super::Variant;
use crate::runtime::{DType, Gpu, Recorder};

/// Launches below this many FLOPs are not measured (timer noise and first-use cost outweigh them);
/// low enough for the Q-Former's 32×768×768 GEMMs and its cross-attention.
pub const MIN_WORK: u64 = 1 << 24;

/// Whether timings here mean something: GPU timestamps, or a CPU driver (where a launch past
/// [`MIN_WORK`] takes milliseconds, far above the wall clock's overhead). A GPU without
/// timestamps keeps the built-in plan.
pub fn can_time(gpu: &Gpu) -> bool {
    gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) || gpu.adapter_info().device_type == wgpu::DeviceType::Cpu
}

/// Times every variant that runs on this adapter in `dtype` at `shape` and records the fastest
/// (GPU timestamps where the adapter has them, else the wall clock around submit and wait). One
/// trial per variant on a CPU driver, the best of three on a GPU (after one warm-up). `None` when
/// no variant ran (the caller keeps its heuristic); a variant that fails is skipped.
pub fn measure<V: Variant>(gpu: &Gpu, dtype: DType, shape: &[usize]) -> Option<V> {
    let cpu = gpu.adapter_info().device_type == wgpu::DeviceType::Cpu;
    let trials = if cpu { 1 } else { 4 };
    let mut times: Vec<(V, f64)> = Vec::new();
    for &v in V::ALL {
        if !v.runs_on(gpu, dtype) {
            continue;
        }
        let mut best = f64::INFINITY;
        for i in 0..trials {
            let mut rec = Recorder::new(gpu);
            let ms = v.record_trial(&mut rec, dtype, shape).and_then(|_| rec.submit_timed()).map(|t| t.ms());
            match ms {
                Ok(ms) if i > 0 || cpu => best = best.min(ms),
                Ok(_) => {} // the warm-up on a GPU: pipelines and caches
                Err(e) => {
                    log::warn!("autotune: {} {} failed at {shape:?}: {e}", V::FAMILY, v.name());
                    best = f64::INFINITY;
                    break;
                }
            }
        }
        if best.is_finite() {
            times.push((v, best));
        }
    }
    let (winner, _) = times.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let named: Vec<(&str, f64)> = times.iter().map(|(v, t)| (v.name(), *t)).collect();
    log::info!("autotune: {} {dtype:?} {shape:?} → {} ({named:?} ms)", V::FAMILY, winner.name());
    let key = gpu.tuner().key(V::FAMILY, dtype, shape);
    gpu.tuner().record_measured(key, winner.name(), &named);
    Some(winner)
}
