//! A buffer pool: storage buffers are handed out by size class and come back when their last
//! `Tensor` (and the `Recorder` that used them) is dropped, so repeated forwards of the same shapes
//! allocate nothing after the first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Usage of every pooled storage buffer.
pub(crate) const STORAGE_USAGE: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);

#[derive(Default)]
struct FreeLists {
    /// (usage bits, size class) → free buffers.
    free: HashMap<(u32, u64), Vec<wgpu::Buffer>>,
    free_bytes: u64,
    allocated_bytes: u64,
    /// Most bytes on loan (allocated − free) since the last `reset_peak`.
    peak_in_use: u64,
}

/// The pool shared by all tensors of one `Gpu`.
#[derive(Clone, Default)]
pub(crate) struct BufferPool {
    inner: Arc<Mutex<FreeLists>>,
}

/// A buffer on loan from the pool; dropping it returns the buffer.
pub(crate) struct PooledBuffer {
    buffer: Option<wgpu::Buffer>,
    class: u64,
    usage: wgpu::BufferUsages,
    pool: BufferPool,
    /// Who must run before the contents are valid: [`READY`], [`UNWRITTEN`], or the id of the
    /// `Recorder` whose recorded (not yet submitted) kernels write it.
    writer: AtomicU64,
    /// Freed on drop instead of returned (a staging buffer whose map failed or may still be pending).
    discarded: std::sync::atomic::AtomicBool,
}

/// The contents are valid (uploaded, or written by submitted work).
pub(crate) const READY: u64 = 0;
/// Nothing has written the buffer since it was handed out (`Tensor::empty`).
pub(crate) const UNWRITTEN: u64 = u64::MAX;

impl PooledBuffer {
    /// Sets who must run before the contents are valid.
    pub(crate) fn set_writer(&self, writer: u64) {
        self.writer.store(writer, Ordering::Release);
    }
    /// Who must run before the contents are valid.
    pub(crate) fn writer(&self) -> u64 {
        self.writer.load(Ordering::Acquire)
    }
    /// Marks the contents valid if `recorder` is still the one that writes them.
    pub(crate) fn written_by(&self, recorder: u64) {
        let _ = self.writer.compare_exchange(recorder, READY, Ordering::AcqRel, Ordering::Acquire);
    }
    pub(crate) fn buffer(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("buffer present until drop")
    }
    /// Frees the buffer on drop instead of returning it: its state is unknown (a map that failed
    /// or is still pending), and the next borrower must not get it.
    pub(crate) fn discard(&self) {
        self.discarded.store(true, Ordering::Release);
    }
}

/// Idle bytes the pool keeps at most; a buffer returned past this is freed instead, so a stream
/// of ever-new shapes cannot grow memory without bound.
pub(crate) const MAX_IDLE_BYTES: u64 = 512 << 20;

impl Drop for PooledBuffer {
    fn drop(&mut self) {
        if let (Some(b), Ok(mut lists)) = (self.buffer.take(), self.pool.inner.lock()) {
            if self.discarded.load(Ordering::Acquire) || lists.free_bytes + self.class > MAX_IDLE_BYTES {
                lists.allocated_bytes -= self.class;
                return; // `b` is dropped: wgpu frees it once the GPU is done with it
            }
            lists.free_bytes += self.class;
            lists.free.entry((self.usage.bits(), self.class)).or_default().push(b);
        }
    }
}

/// Rounds a request up to its size class: multiples of 256 B below 64 KiB, then steps of 1/8 of the
/// power of two below (at most 12.5% waste), so similar shapes share buffers.
pub(crate) fn size_class(bytes: u64) -> u64 {
    let bytes = bytes.max(16);
    if bytes <= 65536 {
        return bytes.div_ceil(256) * 256;
    }
    let step = bytes.next_power_of_two() / 16;
    bytes.div_ceil(step) * step
}

impl BufferPool {
    pub(crate) fn get(&self, device: &wgpu::Device, bytes: u64, usage: wgpu::BufferUsages) -> Arc<PooledBuffer> {
        let class = size_class(bytes);
        let reused = {
            let mut lists = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let b = lists.free.get_mut(&(usage.bits(), class)).and_then(|v| v.pop());
            if b.is_some() {
                lists.free_bytes -= class;
            } else {
                lists.allocated_bytes += class;
            }
            lists.peak_in_use = lists.peak_in_use.max(lists.allocated_bytes - lists.free_bytes);
            b
        };
        let buffer = reused.unwrap_or_else(|| {
            device.create_buffer(&wgpu::BufferDescriptor { label: Some("pooled"), size: class, usage, mapped_at_creation: false })
        });
        Arc::new(PooledBuffer {
            buffer: Some(buffer),
            class,
            usage,
            pool: self.clone(),
            writer: AtomicU64::new(READY),
            discarded: Default::default(),
        })
    }

    /// (bytes ever allocated and still owned by the pool or tensors, bytes sitting free).
    pub(crate) fn stats(&self) -> (u64, u64) {
        let l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (l.allocated_bytes, l.free_bytes)
    }

    /// (bytes on loan now, the most on loan since the last reset).
    pub(crate) fn in_use(&self) -> (u64, u64) {
        let l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (l.allocated_bytes - l.free_bytes, l.peak_in_use)
    }

    /// Starts a new peak from what is on loan now.
    pub(crate) fn reset_peak(&self) {
        let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        l.peak_in_use = l.allocated_bytes - l.free_bytes;
    }

    /// Frees every idle buffer.
    pub(crate) fn trim(&self) {
        let mut l = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let freed = l.free_bytes;
        l.free.clear();
        l.allocated_bytes -= freed;
        l.free_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::{size_class, MAX_IDLE_BYTES};

    #[test]
    fn idle_bytes_are_bounded() {
        // Buffers are returned by many distinct sizes; the pool's idle bytes stay under the cap.
        let g = crate::Gpu::new().expect("a GPU adapter");
        let chunk = 48 << 20; // 48 MiB, a new size class each round
        for i in 0..16u64 {
            let t = crate::Tensor::empty(&g, &[(chunk as usize + i as usize * 4096) / 4], crate::DType::F32).unwrap();
            drop(t);
        }
        let (_, idle) = g.pool_stats();
        assert!(idle <= MAX_IDLE_BYTES, "idle {idle}");
        assert!(idle > 0);
    }
    #[test]
    fn size_classes_cover_request_and_bound_waste() {
        for b in [1u64, 15, 16, 255, 257, 65535, 65537, 1 << 20, (1 << 20) + 1, 123_456_789] {
            let c = size_class(b);
            assert!(c >= b, "{b} -> {c}");
            assert!(c.is_multiple_of(4));
            if b > 65536 {
                assert!((c - b) as f64 <= b as f64 * 0.125 + 1.0, "{b} -> {c}");
            }
        }
    }
}
