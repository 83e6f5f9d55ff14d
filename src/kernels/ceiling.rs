//! The adapter's measured ceilings (ceiling.wgsl): peak FMA rate and copy bandwidth.

use bytemuck::{Pod, Zeroable};

use super::registry::{COPY_BW, FMA_PEAK};
use super::{checked_u32, grid_1d};
use crate::runtime::{Cost, DType, Error, Recorder, Result, Tensor};

/// Mirrors `CeilParams` in ceiling.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct CeilParams {
    pub n: u32,
    pub iters: u32,
    pub _p: [u32; 2],
}

/// `threads` threads × `iters` steps of 8 vec4 FMA chains. Returns [threads, 4]; FLOPs = 64·threads·iters.
pub fn record_fma_peak(rec: &mut Recorder, threads: usize, iters: usize) -> Result<Tensor> {
    let gpu = rec.gpu();
    let out = Tensor::empty(gpu, &[threads, 4], DType::F32)?;
    let params = CeilParams { n: checked_u32("fma_peak threads", threads)?, iters: checked_u32("fma_peak iters", iters)?, _p: [0; 2] };
    let cost = Cost { flops: 64 * threads as u64 * iters as u64, bytes: out.byte_len() };
    rec.launch(&FMA_PEAK, DType::F32, &params, &[Some(&out)], grid_1d(gpu, params.n.div_ceil(256)), cost)?;
    Ok(out)
}

/// Copies `src` (f32, length a multiple of 4) into a new tensor; bytes moved = 2 · size.
pub fn record_copy(rec: &mut Recorder, src: &Tensor) -> Result<Tensor> {
    let gpu = rec.gpu();
    if !src.numel().is_multiple_of(4) {
        return Err(Error::shape("copy_bw src", "a multiple of 4 elements", src.shape()));
    }
    let out = Tensor::empty(gpu, src.shape(), src.dtype())?;
    let n = checked_u32("copy_bw", src.numel() / 4)?;
    let params = CeilParams { n, iters: 0, _p: [0; 2] };
    let cost = Cost { flops: 0, bytes: 2 * src.byte_len() };
    rec.launch(&COPY_BW, src.dtype(), &params, &[Some(src), Some(&out)], grid_1d(gpu, n.div_ceil(256)), cost)?;
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
