//! `Tensor`: a pooled GPU buffer plus a shape and a dtype. Row-major, contiguous.

use std::sync::Arc;

use super::error::{Error, Result};
use super::gpu::Gpu;
use super::pool::{PooledBuffer, READY, STORAGE_USAGE, UNWRITTEN};

/// Element type of a tensor on the device.
///
/// `F32` and `F16` are compute dtypes (a kernel's `elem` alias, see `kernels::registry`); `U32`
/// holds indices, masks and packed media locations. Checkpoint weights are converted to the
/// compute dtype once, at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit IEEE float.
    F32,
    /// 16-bit IEEE float (needs the adapter's `SHADER_F16` to compute on).
    F16,
    /// 32-bit unsigned integer.
    U32,
}

impl DType {
    /// The most negative finite value (`torch.finfo(dtype).min`): what an additive mask holds where
    /// a key is hidden. f16's is -65504, so f16 masks stay finite (no -inf arithmetic, which fast-math
    /// shader compilers may not honour).
    pub fn lowest(self) -> f32 {
        match self {
            DType::F16 => -65504.0,
            _ => f32::MIN,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 => 2,
        }
    }

    /// The WGSL scalar type.
    pub fn wgsl(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::U32 => "u32",
        }
    }

    /// Host f32 values as this dtype's little-endian bytes (`U32` refuses: it is not a float).
    pub(crate) fn encode(self, data: &[f32]) -> Option<Vec<u8>> {
        match self {
            DType::F32 => Some(bytemuck::cast_slice(data).to_vec()),
            DType::F16 => Some(data.iter().flat_map(|v| half::f16::from_f32(*v).to_le_bytes()).collect()),
            DType::U32 => None,
        }
    }
}

/// A GPU tensor: a pooled buffer, a row-major shape, a dtype, and the id of the `Gpu` that made it.
/// Cloning and `reshape` are cheap (they share the buffer).
///
/// A tensor is used only with its own `Gpu` ([`Error::OtherGpu`] otherwise). Its contents are valid
/// once uploaded, or once the `Recorder` whose kernels write it was submitted: reading it earlier
/// is [`Error::Pending`], and reading a [`Tensor::empty`] nothing wrote is [`Error::Unwritten`].
#[derive(Clone)]
pub struct Tensor {
    pub(crate) buf: Arc<PooledBuffer>,
    shape: Vec<usize>,
    dtype: DType,
    /// The id of the `Gpu` that made it.
    gpu: u64,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor({:?}, {:?}, Gpu #{})", self.shape, self.dtype, self.gpu)
    }
}

/// Number of elements of a shape.
pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    /// An uninitialised tensor from the pool, for a kernel to write (reading it first is
    /// [`Error::Unwritten`]). Errors: [`Error::Limit`] past the device's binding size or `usize`.
    pub fn empty(gpu: &Gpu, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let too_big =
            || Error::Limit { op: format!("tensor {shape:?}"), limit: "element count".into(), requested: u64::MAX, max: usize::MAX as u64 };
        let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or_else(too_big)?;
        let bytes = n.checked_mul(dtype.size()).ok_or_else(too_big)? as u64;
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
        if n > 0 {
            buf.set_writer(UNWRITTEN); // reading it before a kernel or an upload writes it is an error
        }
        Ok(Tensor { buf, shape: shape.to_vec(), dtype, gpu: gpu.id() })
    }

    /// Uploads `data` (row-major) as an f32 tensor of `shape`. Errors: [`Error::Shape`] when the
    /// lengths disagree, [`Error::Limit`] past the device's binding size, [`Error::Gpu`] from wgpu.
    pub fn from_slice(gpu: &Gpu, data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_host(gpu, data, shape, DType::F32)
    }

    /// Uploads f32 host `data` as a tensor of `shape` in the float `dtype` (converted on the host).
    pub fn from_host(gpu: &Gpu, data: &[f32], shape: &[usize], dtype: DType) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return Err(Error::shape("host data", format!("{} elements for {shape:?}", numel(shape)), data.len()));
        }
        let bytes = dtype.encode(data).ok_or_else(|| Error::DType {
            tensor: "host data".into(),
            dtype: format!("{dtype:?}"),
            expected: "a float dtype (F32 or F16)".into(),
        })?;
        Tensor::from_bytes(gpu, bytes, shape, dtype)
    }

    /// Uploads u32 data (indices, masks).
    pub fn from_u32(gpu: &Gpu, data: &[u32], shape: &[usize]) -> Result<Tensor> {
        if data.len() != numel(shape) {
            return Err(Error::shape("host data", format!("{} elements for {shape:?}", numel(shape)), data.len()));
        }
        Tensor::from_bytes(gpu, bytemuck::cast_slice(data).to_vec(), shape, DType::U32)
    }

    /// Uploads raw little-endian bytes (`numel · dtype.size()` of them), padded to wgpu's 4-byte copy unit.
    fn from_bytes(gpu: &Gpu, mut bytes: Vec<u8>, shape: &[usize], dtype: DType) -> Result<Tensor> {
        let t = Tensor::empty(gpu, shape, dtype)?;
        if !bytes.is_empty() {
            bytes.resize(bytes.len().next_multiple_of(4), 0);
            gpu.scoped("upload", || gpu.queue.write_buffer(t.buffer(), 0, &bytes))?;
        }
        t.buf.set_writer(READY);
        Ok(t)
    }

    /// Row-major shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    /// The wgpu buffer (its size is the pool's size class, at least [`Self::byte_len`]).
    pub fn buffer(&self) -> &wgpu::Buffer {
        self.buf.buffer()
    }

    /// The id of the `Gpu` that made this tensor.
    pub fn gpu_id(&self) -> u64 {
        self.gpu
    }

    /// Fails with [`Error::OtherGpu`] unless `gpu` made this tensor; `name` names it in the error.
    pub fn check_gpu(&self, gpu: &Gpu, name: &str) -> Result<()> {
        if self.gpu != gpu.id() {
            return Err(Error::OtherGpu { tensor: name.to_string(), owner: self.gpu, used: gpu.id() });
        }
        Ok(())
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
        Ok(Tensor { buf: self.buf.clone(), shape: shape.to_vec(), dtype: self.dtype, gpu: self.gpu })
    }

    /// Checks that this is a float tensor of `gpu`, naming it `name` in the error
    /// ([`Error::OtherGpu`], [`Error::DType`]): what every connector's `forward` does first.
    pub fn expect_float(&self, gpu: &Gpu, name: &str) -> Result<()> {
        self.check_gpu(gpu, name)?;
        if self.dtype == DType::U32 {
            return Err(Error::DType { tensor: name.to_string(), dtype: "U32".into(), expected: "F32 (or F16)".into() });
        }
        Ok(())
    }

    /// Checks the shape, naming the tensor in the error.
    pub fn expect_shape(&self, name: &str, shape: &[usize]) -> Result<()> {
        if self.shape != shape {
            return Err(Error::shape(name, shape, &self.shape));
        }
        Ok(())
    }

    /// Copies a float tensor back to the host as f32 (F16 is widened; one submit + wait). Errors:
    /// [`Error::OtherGpu`] for another `Gpu`, [`Error::Pending`] before its `Recorder` was submitted,
    /// [`Error::Unwritten`], [`Error::DType`] for U32 (use [`Self::to_vec_u32`]), [`Error::Gpu`].
    /// On the web (it would block the browser's thread) an [`Error::Unsupported`]: use
    /// [`Self::to_vec_async`].
    pub fn to_vec(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.floats(&self.download(gpu)?)
    }

    /// [`Self::to_vec`] as a future: what the web build awaits. Errors as `to_vec`, and on the web
    /// any GPU error the browser reported since the last readback (WebGPU reports them late).
    pub async fn to_vec_async(&self, gpu: &Gpu) -> Result<Vec<f32>> {
        self.floats(&self.download_async(gpu).await?)
    }

    fn floats(&self, bytes: &[u8]) -> Result<Vec<f32>> {
        match self.dtype {
            DType::F32 => Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            DType::F16 => Ok(bytes.chunks_exact(2).take(self.numel()).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect()),
            DType::U32 => Err(Error::DType {
                tensor: format!("tensor {:?}", self.shape),
                dtype: "U32".into(),
                expected: "F32 or F16 (use to_vec_u32)".into(),
            }),
        }
    }

    /// u32 tensors back to the host (blocking; on the web use [`Self::to_vec_u32_async`]).
    pub fn to_vec_u32(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        self.expect_u32()?;
        Ok(u32s(&self.download(gpu)?))
    }

    /// [`Self::to_vec_u32`] as a future.
    pub async fn to_vec_u32_async(&self, gpu: &Gpu) -> Result<Vec<u32>> {
        self.expect_u32()?;
        Ok(u32s(&self.download_async(gpu).await?))
    }

    fn expect_u32(&self) -> Result<()> {
        if self.dtype != DType::U32 {
            return Err(Error::DType {
                tensor: format!("tensor {:?}", self.shape),
                dtype: format!("{:?}", self.dtype),
                expected: "U32 (use to_vec)".into(),
            });
        }
        Ok(())
    }

    fn download(&self, gpu: &Gpu) -> Result<Vec<u8>> {
        super::gpu::block_on(self.download_async(gpu), &format!("Tensor::to_vec of {:?}", self.shape), "Tensor::to_vec_async")
    }

    /// Copies the buffer to a mappable one and maps it: on native `poll` waits and the future is
    /// ready at once; on the web the browser resolves the map.
    async fn download_async(&self, gpu: &Gpu) -> Result<Vec<u8>> {
        let name = format!("{:?} {:?}", self.shape, self.dtype);
        self.check_gpu(gpu, &name)?;
        match self.buf.writer() {
            READY => {}
            UNWRITTEN => return Err(Error::Unwritten { tensor: name }),
            _ => return Err(Error::Pending { tensor: name }),
        }
        let size = self.byte_len().next_multiple_of(4);
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = gpu.serialized(|| gpu.pool.get(&gpu.device, size, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST));
        let copy = || {
            let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("download") });
            enc.copy_buffer_to_buffer(self.buffer(), 0, staging.buffer(), 0, size);
            gpu.queue.submit(Some(enc.finish()));
            Ok(())
        };
        let read = match gpu.scoped_async("download", copy).await {
            Ok(()) => gpu.map_read(staging.buffer(), size, "download").await,
            Err(e) => Err(e),
        };
        if read.is_err() {
            staging.discard(); // mapped, mapping or never copied into: not for the next readback
        }
        read
    }
}

fn u32s(bytes: &[u8]) -> Vec<u32> {
    bytes.chunks_exact(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}
