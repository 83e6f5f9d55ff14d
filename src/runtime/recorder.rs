//! `Recorder`: collects the kernels of one forward and submits them as one command buffer.
//!
//! Launchers (`kernels::*::record_*`) push dispatches; nothing touches the queue until
//! [`Recorder::submit`], which writes every kernel's params into one uniform buffer, encodes all
//! dispatches into one compute pass, and submits once. Buffers used by the recorded kernels stay
//! alive (out of the pool) until then.

use std::sync::Arc;

use super::error::{Error, Result};
use super::gpu::Gpu;
use super::pool::PooledBuffer;

pub(crate) struct Dispatch {
    pub(crate) label: &'static str,
    pipeline: Arc<wgpu::ComputePipeline>,
    params_offset: u64,
    params_size: u64,
    /// (binding, buffer)
    buffers: Vec<(u32, Arc<PooledBuffer>)>,
    pub(crate) workgroups: [u32; 3],
    pub(crate) cost: Cost,
}

/// One dispatch of a profiled forward ([`Recorder::submit_profiled`]).
#[derive(Clone, Debug)]
pub struct DispatchProfile {
    /// The kernel (its registry name, e.g. `gemm_128`).
    pub kernel: &'static str,
    /// Workgroups launched, [x, y, z].
    pub grid: [u32; 3],
    /// FLOPs and bytes as the launcher counted them.
    pub cost: Cost,
    /// Milliseconds: GPU timestamps around the dispatch's own pass when the device has
    /// TIMESTAMP_QUERY, else the wall clock around its own encode (params upload included), submit
    /// and wait: an upper bound.
    pub ms: f64,
    /// "gpu-timestamp" or "wall".
    pub timer: &'static str,
}

/// Time of one submitted forward.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// From GPU timestamps around the pass, when the device has TIMESTAMP_QUERY.
    pub gpu_ms: Option<f64>,
    /// From submit to completion on the host.
    pub wall_ms: f64,
}

impl Timing {
    /// The best measurement available: GPU time, else wall time.
    pub fn ms(&self) -> f64 {
        self.gpu_ms.unwrap_or(self.wall_ms)
    }
}

/// Work of a kernel or a whole forward: floating-point operations (a multiply-add counts 2) and
/// bytes read and written in global memory, as the launchers count them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cost {
    /// Floating-point operations.
    pub flops: u64,
    /// Bytes read and written in global memory.
    pub bytes: u64,
}

/// One forward's worth of recorded kernels.
///
/// Launchers record into it; nothing runs until [`Recorder::submit`]. Until then every tensor its
/// kernels write is *pending*: reading it (`Tensor::to_vec`) is [`Error::Pending`], and so is
/// using it in another recorder. Submitting makes them readable. Dropping a recorder with recorded
/// work logs a warning and leaves those tensors pending ([`Recorder::discard`] drops it quietly).
pub struct Recorder<'g> {
    /// Process-unique, never `READY` or `UNWRITTEN`: marks the buffers its kernels write.
    pub(crate) id: u64,
    gpu: &'g Gpu,
    pub(crate) dispatches: Vec<Dispatch>,
    params: Vec<u8>,
    cost: Cost,
    /// Buffers the recorded kernels write: pending (unreadable) until `submit` succeeds.
    pub(crate) written: Vec<Arc<PooledBuffer>>,
}

impl std::fmt::Debug for Recorder<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recorder({} kernels on {:?}: {:?})", self.dispatches.len(), self.gpu, self.labels())
    }
}

impl Drop for Recorder<'_> {
    fn drop(&mut self) {
        if !self.written.is_empty() {
            log::warn!(
                "a Recorder was dropped without submit(); the {} tensors its recorded kernels write stay unreadable \
                 (Recorder::discard drops one quietly)",
                self.written.len()
            );
        }
    }
}

impl<'g> Recorder<'g> {
    /// An empty recorder for `gpu`.
    pub fn new(gpu: &'g Gpu) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Recorder { id, gpu, dispatches: Vec::new(), params: Vec::new(), cost: Cost::default(), written: Vec::new() }
    }

    /// The `Gpu` it records for.
    pub fn gpu(&self) -> &'g Gpu {
        self.gpu
    }

    /// Number of kernels recorded so far.
    pub fn len(&self) -> usize {
        self.dispatches.len()
    }
    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.dispatches.is_empty()
    }
    /// Labels of the recorded kernels, in order.
    pub fn labels(&self) -> Vec<&'static str> {
        self.dispatches.iter().map(|d| d.label).collect()
    }

    /// FLOPs and bytes of every kernel recorded so far, as each launcher declared them.
    pub fn cost(&self) -> Cost {
        self.cost
    }

    /// Records one dispatch: binding 0 is `params` (uniform), the others are `buffers`
    /// (binding, buffer). Launchers go through `Recorder::launch` (`kernels::launch`), which
    /// resolves the pipeline and checks the tensors first.
    pub(crate) fn push<P: bytemuck::Pod>(
        &mut self,
        label: &'static str,
        pipeline: Arc<wgpu::ComputePipeline>,
        params: &P,
        buffers: Vec<(u32, Arc<PooledBuffer>)>,
        workgroups: [u32; 3],
        cost: Cost,
    ) -> Result<()> {
        let max = self.gpu.limits().max_compute_workgroups_per_dimension;
        if let Some(&w) = workgroups.iter().find(|&&w| w > max) {
            return Err(Error::Limit {
                op: label.into(),
                limit: "max_compute_workgroups_per_dimension".into(),
                requested: w as u64,
                max: max as u64,
            });
        }
        if workgroups.contains(&0) {
            return Ok(()); // nothing to do (an empty tensor)
        }
        let align = self.gpu.limits().min_uniform_buffer_offset_alignment.max(16) as usize;
        let offset = self.params.len().div_ceil(align) * align;
        let bytes = bytemuck::bytes_of(params);
        self.params.resize(offset, 0);
        self.params.extend_from_slice(bytes);
        self.cost.flops += cost.flops;
        self.cost.bytes += cost.bytes;
        self.dispatches.push(Dispatch {
            label,
            pipeline,
            params_offset: offset as u64,
            params_size: bytes.len().div_ceil(16) as u64 * 16,
            buffers,
            workgroups,
            cost,
        });
        Ok(())
    }

    /// Drops the recorded work without running it and without the drop warning (what a caller
    /// does when a forward failed half-way). The tensors it would have written stay pending.
    pub fn discard(mut self) {
        self.written.clear();
        self.dispatches.clear();
    }

    /// Encodes every recorded kernel into one compute pass and submits once, and makes the tensors
    /// they write readable. Does not wait: `Tensor::to_vec` waits for the GPU. Errors: a wgpu error
    /// caught by the error scopes ([`Error::Gpu`]), a lost device ([`Error::DeviceLost`]).
    pub fn submit(self) -> Result<()> {
        self.encode_and_submit(None)
    }

    /// Submits like [`Self::submit`], waits, and returns the forward's time in ms: from GPU
    /// timestamps written at the start and end of the pass when the device has TIMESTAMP_QUERY
    /// (`Timing::gpu_ms`), and the wall-clock time from submit to completion either way. Blocks
    /// (native only; on the web use [`Self::submit_timed_async`]).
    pub fn submit_timed(self) -> Result<Timing> {
        super::gpu::block_on(self.submit_timed_async(), "Recorder::submit_timed", "Recorder::submit_timed_async")
    }

    /// [`Self::submit_timed`] as a future (the web page's timing: the browser resolves it when the
    /// GPU is done).
    pub async fn submit_timed_async(self) -> Result<Timing> {
        let gpu = self.gpu;
        if self.dispatches.is_empty() {
            self.encode_and_submit(None)?; // nothing runs: no timestamps to read
            return Ok(Timing { gpu_ms: None, wall_ms: 0.0 });
        }
        let queries = gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY).then(|| {
            gpu.serialized(|| {
                gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("forward timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                })
            })
        });
        let t0 = web_time::Instant::now();
        gpu.scoped_async("submit", || self.encode_and_submit(queries.as_ref())).await?;
        gpu.wait_async().await?;
        let wall_ms = t0.elapsed().as_secs_f64() * 1e3;
        let gpu_ms = match &queries {
            None => None,
            Some(qs) => {
                let ticks = read_timestamps_async(gpu, qs, 2).await?;
                let ns = ticks[1].saturating_sub(ticks[0]) as f64 * gpu.queue.get_timestamp_period() as f64;
                (ns > 0.0).then_some(ns * 1e-6)
            }
        };
        Ok(Timing { gpu_ms, wall_ms })
    }

    fn encode_and_submit(mut self, timestamps: Option<&wgpu::QuerySet>) -> Result<()> {
        if !self.dispatches.is_empty() {
            self.encode_and_submit_dispatches(0..self.dispatches.len(), timestamps, false)?;
        }
        self.finish_submitted();
        Ok(())
    }

    /// After submitting: what the kernels write is readable now; the dispatches are gone.
    pub(crate) fn finish_submitted(&mut self) {
        // Submitted (or nothing to run): what the kernels write is readable now.
        for w in self.written.drain(..) {
            w.written_by(self.id);
        }
        self.dispatches.clear();
    }

    /// Encodes dispatches `range` into one command buffer and submits it: one compute pass for
    /// them all (timestamps 0 and 1 around it), or with `per_dispatch` a pass each (timestamps
    /// 2i and 2i + 1 around dispatch i of the range; for profiling).
    pub(crate) fn encode_and_submit_dispatches(
        &mut self,
        range: std::ops::Range<usize>,
        timestamps: Option<&wgpu::QuerySet>,
        per_dispatch: bool,
    ) -> Result<()> {
        let gpu = self.gpu;
        // Pad so the last params struct can be bound with its 16-byte-rounded size.
        let end = self.dispatches.iter().map(|d| d.params_offset + d.params_size).max().unwrap_or(16);
        self.params.resize(end as usize, 0);
        gpu.scoped("submit", || {
            let uniforms = gpu.pool.get(&gpu.device, end, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST);
            gpu.queue.write_buffer(uniforms.buffer(), 0, &self.params);
            let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
            {
                let dispatches = &self.dispatches[range];
                let groups: Vec<wgpu::BindGroup> = dispatches
                    .iter()
                    .map(|d| {
                        let mut entries = vec![wgpu::BindGroupEntry {
                            binding: 0,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: uniforms.buffer(),
                                offset: d.params_offset,
                                size: wgpu::BufferSize::new(d.params_size),
                            }),
                        }];
                        for (binding, b) in &d.buffers {
                            entries.push(wgpu::BindGroupEntry { binding: *binding, resource: b.buffer().as_entire_binding() });
                        }
                        gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                            label: Some(d.label),
                            layout: &d.pipeline.get_bind_group_layout(0),
                            entries: &entries,
                        })
                    })
                    .collect();
                let passes: Vec<std::ops::Range<usize>> = match per_dispatch {
                    true => (0..dispatches.len()).map(|i| i..i + 1).collect(),
                    false => std::iter::once(0..dispatches.len()).collect(),
                };
                for (p, r) in passes.into_iter().enumerate() {
                    let timestamp_writes = timestamps.map(|qs| wgpu::ComputePassTimestampWrites {
                        query_set: qs,
                        beginning_of_pass_write_index: Some(2 * p as u32),
                        end_of_pass_write_index: Some(2 * p as u32 + 1),
                    });
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes });
                    for (d, g) in dispatches[r.clone()].iter().zip(&groups[r]) {
                        pass.set_pipeline(&d.pipeline);
                        pass.set_bind_group(0, g, &[]);
                        pass.dispatch_workgroups(d.workgroups[0], d.workgroups[1], d.workgroups[2]);
                    }
                }
            }
            gpu.queue.submit(Some(enc.finish()));
        })?;
        log::debug!("submitted {} kernels", self.dispatches.len());
        Ok(())
    }
}

/// Resolves and reads `count` timestamps (raw ticks) of a query set whose passes were submitted
/// (blocking; native only).
pub(crate) fn read_timestamps(gpu: &Gpu, qs: &wgpu::QuerySet, count: u32) -> Result<Vec<u64>> {
    super::gpu::block_on(read_timestamps_async(gpu, qs, count), "reading timestamps", "Recorder::submit_timed_async")
}

/// [`read_timestamps`] as a future.
pub(crate) async fn read_timestamps_async(gpu: &Gpu, qs: &wgpu::QuerySet, count: u32) -> Result<Vec<u64>> {
    let bytes = 8 * count as u64;
    let read = gpu.scoped("timestamps", || {
        let usage = wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC;
        let resolve =
            gpu.device.create_buffer(&wgpu::BufferDescriptor { label: Some("ts resolve"), size: bytes, usage, mapped_at_creation: false });
        let usage = wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST;
        let read =
            gpu.device.create_buffer(&wgpu::BufferDescriptor { label: Some("ts read"), size: bytes, usage, mapped_at_creation: false });
        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("timestamps") });
        enc.resolve_query_set(qs, 0..count, &resolve, 0);
        enc.copy_buffer_to_buffer(&resolve, 0, &read, 0, bytes);
        gpu.queue.submit(Some(enc.finish()));
        read
    })?;
    let bytes = gpu.map_read(&read, bytes, "timestamps").await?; // `read` is freed on drop either way
    Ok(bytes.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
}
