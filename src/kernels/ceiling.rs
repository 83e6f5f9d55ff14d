//! The adapter's measured ceilings (ceiling.wgsl): peak FMA rate and copy bandwidth.

use bytemuck::{Pod, Zeroable};

use super::{grid_1d, pipeline};
use crate::runtime::{DType, Recorder, Result, Tensor};

/// Mirrors `CeilParams` in ceiling.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct CeilParams {
    pub n: u32,
    pub iters: u32,
    pub _p: [u32; 2],
}

/// `threads` threads × `iters` steps of 8 vec4 FMA chains. Returns [threads, 4]; FLOPs = 64·threads·iters.
pub fn record_fma_peak(rec: &mut Recorder, threads: usize, iters: usize) -> Result<Tensor> {
    let gpu = rec.gpu();
    let out = Tensor::empty(gpu, &[threads, 4], DType::F32)?;
    let params = CeilParams { n: threads as u32, iters: iters as u32, _p: [0; 2] };
    let pipe = pipeline(gpu, "fma_peak", "ceiling.wgsl", "fma_peak")?;
    rec.dispatch_bound("fma_peak", pipe, &params, &[(2, &out)], grid_1d(gpu, (threads as u32).div_ceil(256)))?;
    Ok(out)
}

/// Copies `src` (f32, length a multiple of 4) into a new tensor; bytes moved = 2 · size.
pub fn record_copy(rec: &mut Recorder, src: &Tensor) -> Result<Tensor> {
    let gpu = rec.gpu();
    let out = Tensor::empty(gpu, src.shape(), DType::F32)?;
    let n = (src.numel() / 4) as u32;
    let params = CeilParams { n, iters: 0, _p: [0; 2] };
    let pipe = pipeline(gpu, "copy_bw", "ceiling.wgsl", "copy_bw")?;
    rec.dispatch("copy_bw", pipe, &params, &[src, &out], grid_1d(gpu, n.div_ceil(256)))?;
    Ok(out)
}

/// CPU reference of one `fma_peak` thread's output.
pub fn fma_peak_cpu(i: usize, iters: usize) -> [f32; 4] {
    let s = (i % 7) as f32 * 1e-3;
    let m = [0.999f32, 0.998, 0.997, 0.996];
    let c = [1e-3f32, 2e-3, 3e-3, 4e-3];
    let mut out = [0f32; 4];
    for lane in 0..4 {
        let mut sum = 0f32;
        for chain in 0..8 {
            let mut a = s + chain as f32 * 0.1;
            for _ in 0..iters {
                a = a.mul_add(m[lane], c[lane]);
            }
            sum += a;
        }
        out[lane] = sum;
    }
    out
}
