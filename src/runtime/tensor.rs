//! `Tensor`: a pooled GPU buffer plus a shape. Row-major, contiguous, f32 on the device.

use std::sync::Arc;

use super::error::{Error, Result};
use super::gpu::Gpu;
use super::pool::{PooledBuffer, STORAGE_USAGE};

/// Element type on the device. Checkpoint weights in F16/BF16 are widened to f32 at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DType {
    F32,
    U32,
}

impl DType {
    pub fn size(self) -> usize {
        4
    }
}

/// A GPU tensor. Cloning is cheap (shares the buffer).
#[derive(Clone)]
pub struct Tensor {
    pub(crate) buf: Arc<PooledBuffer>,
    shape: Vec<usize>,
    dtype: DType,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?})", self.shape, self.dtype)
    }
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// An uninitialised tensor from the pool (kernels write every element before it is read).
    pub fn empty(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let bytes = (numel(shape) * dtype.size()) as u64;
        let max = gpu.limits().max_storage_buffer_binding_size;
        if bytes > max || bytes > gpu.limits().max_buffer_size {
            return Err(Error::Limit {
                op: format!("tensor {shape:?}"),
                limit: "max_storage_buffer_binding_size".into(),
                requested: bytes,
                max,
            });
        }
        let buf = gpu.serialized(|| gpu.pool.get(&gpu.device, bytes, STORAGE_USAGE));
        Ok(Tensor { buf, shape: shape.to_vec(), dtype })
    }

    /// Uploads `data` (row-major) as a tensor of `shape`.
    pub fn from_slice(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return Err(Error::shape("host data", format!("{} elements for {shape:?}", numel(shape)), data.len()));
        }
        let t = Tensor::empty(gpu, shape, DType::F32)?;
        if !data.is_empty() {
            gpu.scoped("upload", || gpu.queue.write_buffer(t.buffer(), 0, bytemuck::cast_slice(data)))?;
        }
        Ok(t)
    }

    /// Uploads u32 data (indices, masks).
    pub fn from_u32(gpu: &Gpu, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return Err(Error::shape("host data", format!("{} elements for {shape:?}", numel(shape)), data.len()));
        }
        let t = Tensor::empty(gpu, shape, DType::U32)?;
        if !data.is_empty() {
            gpu.scoped("upload", || gpu.queue.write_buffer(t.buffer(), 0, bytemuck::cast_slice(data)))?;
        }
        Ok(t)
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.buffer()
    }
    pub(crate) fn pooled(&self) -> &Arc<PooledBuffer> {
        &self.buf
    }
    /// Bytes of payload (not the pooled capacity).
    pub fn byte_len(&self) -> u64 {
        (self.numel() * self.dtype.size()) as u64
    }

    /// Same buffer, another shape with the same element count.
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::shape("reshape", format!("{} elements", self.numel()), shape));
        }
        Ok(Tensor { buf: self.buf.clone(), shape: shape.to_vec(), dtype: self.dtype })
    }

    /// Checks the shape, naming the tensor in the error.
    pub fn expect_shape(&self, name: &str, shape: &[usize]) -> Result<()> {
        if self.shape != shape {
            return Err(Error::shape(name, shape, &self.shape));
        }
        Ok(())
    }

    /// Copies the tensor back to the host (one submit + wait). Call after the forward was submitted.
    pub fn to_vec(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        if self.dtype != DType::F32 {
            return Err(Error::DType { tensor: format!("tensor {:?}", self.shape), dtype: format!("{:?}", self.dtype), expected: "F32 (use to_vec_u32)".into() });
        }
        let bytes = self.download(gpu)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    /// u32 tensors back to the host.
    pub fn to_vec_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        if self.dtype != DType::U32 {
            return Err(Error::DType { tensor: format!("tensor {:?}", self.shape), dtype: format!("{:?}", self.dtype), expected: "U32 (use to_vec)".into() });
        }
        let bytes = self.download(gpu)?;
        Ok(bytemuck::cast_slice(&bytes).to_vec())
    }

    fn download(&self, gpu: &Gpu) -> Result<Vec<u8>> {
        let size = self.byte_len();
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = gpu.serialized(|| gpu.pool.get(&gpu.device, size, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST));
        gpu.scoped("download", || {
            let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("download") });
            enc.copy_buffer_to_buffer(self.buffer(), 0, staging.buffer(), 0, size);
            gpu.queue.submit(Some(enc.finish()));
        })?;
        let slice = staging.buffer().slice(0..size);
        let (tx, rx) = std::sync::mpsc::channel();
        gpu.serialized(|| {
            slice.map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            })
        });
        gpu.wait()?;
        rx.recv()
            .map_err(|e| Error::Gpu { op: "download".into(), message: e.to_string() })?
            .map_err(|e| Error::Gpu { op: "download".into(), message: e.to_string() })?;
        gpu.serialized(|| {
            let out = slice.get_mapped_range().map_err(|e| Error::Gpu { op: "download".into(), message: e.to_string() })?.to_vec();
            staging.buffer().unmap();
            Ok(out)
        })
    }
}
