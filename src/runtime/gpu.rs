//! The GPU context: instance, adapter, device and queue, the pipeline cache and the buffer pool.
//!
//! Adapter choice follows wgpu's environment variables:
//! - `WGPU_BACKEND` (e.g. `vulkan`, `gl`, `metal`, `dx12`, comma separated) narrows the backends,
//! - `WGPU_ADAPTER_NAME` picks the first adapter whose name contains the (case-insensitive) string,
//! - `WGPU_POWER_PREF` (`high` | `low` | `none`) orders discrete vs integrated GPUs.
//!
//! Without them a discrete GPU is preferred, then integrated, virtual, and CPU adapters, and native
//! backends (Vulkan, Metal, DX12) before GL.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use super::error::{Error, Result};
pub use super::options::GpuOptions;
use super::pool::{BufferPool, PooledBuffer, STORAGE_USAGE};
use super::tensor::DType;
use super::tune::{AutotuneSettings, Tuner, KERNELS_ENV};
use crate::kernels::registry::{compose, Kernel};

/// One cache slot per (kernel, dtype): the map lock is held only to find the slot, the slot's lock
/// while compiling, so two threads never compile the same pipeline and different ones compile in
/// parallel.
type PipelineSlot = Arc<Mutex<Option<Arc<wgpu::ComputePipeline>>>>;

/// Optional features we use when the adapter has them.
pub const WANTED_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16
    .union(wgpu::Features::TIMESTAMP_QUERY)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);

/// A GPU: device, queue, adapter facts, compiled pipelines and reusable buffers.
///
/// `Gpu` is `Send + Sync`; share it with `Arc` between threads.
pub struct Gpu {
    /// Process-unique id: every tensor remembers the `Gpu` that made it.
    id: u64,
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    features: wgpu::Features,
    /// Side of the cooperative-matrix GEMM tile this adapter runs (8 or 16), if any.
    coop_tile: Option<u32>,
    pipelines: Mutex<HashMap<(&'static str, DType), PipelineSlot>>,
    compiled: AtomicUsize,
    pub(crate) tuner: Tuner,
    /// Bound where a kernel's optional input is absent (one per `Gpu`, made on first use).
    dummy: OnceLock<Arc<PooledBuffer>>,
    pub(crate) pool: BufferPool,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// On the GL backend every call into the device goes through this lock: wgpu's GL context lock
    /// gives up (panics) after a second, which a long shader compile on another thread exceeds.
    serial: Option<parking_lot::ReentrantMutex<()>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gpu #{} ({})", self.id, self.describe())
    }
}

/// Lists every adapter wgpu sees for the given backends (native only: on the web, where it would
/// block the browser's thread, [`Gpu::new_async`] asks the browser for its one adapter).
#[cfg(not(target_arch = "wasm32"))]
pub fn enumerate_adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    let instance = make_instance(backends);
    pollster::block_on(instance.enumerate_adapters(backends))
}

/// The error a blocking call gives on the web, where it would block the browser's thread.
pub(crate) fn blocking_on_the_web(what: &str, instead: &str) -> Error {
    Error::Unsupported { what: format!("{what} on the web (it would block the browser's thread)"), needs: format!("{instead}, awaited") }
}

/// A blocking call's body: `fut` run to completion on native (pollster); on the web, where that
/// would block the browser's thread, [`blocking_on_the_web`] naming `what` and the async call.
pub(crate) fn block_on<T>(fut: impl std::future::Future<Output = Result<T>>, what: &str, instead: &str) -> Result<T> {
    if cfg!(target_arch = "wasm32") {
        return Err(blocking_on_the_web(what, instead));
    }
    pollster::block_on(fut)
}

fn make_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

/// Rank used to pick the default adapter: lower is better.
fn adapter_rank(info: &wgpu::AdapterInfo, pref: wgpu::PowerPreference) -> (u8, u8) {
    use wgpu::DeviceType as T;
    let kind = match (info.device_type, pref) {
        (T::IntegratedGpu, wgpu::PowerPreference::LowPower) => 0,
        (T::DiscreteGpu, wgpu::PowerPreference::LowPower) => 1,
        (T::DiscreteGpu, _) => 0,
        (T::IntegratedGpu, _) => 1,
        (T::VirtualGpu, _) => 2,
        (T::Cpu, _) => 3,
        (T::Other, _) => 4,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        wgpu::Backend::Gl => 1,
        _ => 2,
    };
    (kind, backend)
}

/// Picks an adapter following `opts`; the error lists what was seen.
pub fn choose_adapter(adapters: Vec<wgpu::Adapter>, opts: &GpuOptions) -> Result<wgpu::Adapter> {
    let names: Vec<String> = adapters
        .iter()
        .map(|a| {
            let i = a.get_info();
            format!("{} ({:?})", i.name, i.backend)
        })
        .collect();
    let backends = format!("{:?}", opts.backends);
    if adapters.is_empty() {
        return Err(Error::NoAdapter { backends, detail: String::new() });
    }
    if let Some(want) = &opts.adapter_name {
        let want = want.to_lowercase();
        return adapters.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&want)).ok_or_else(|| Error::NoAdapter {
            backends,
            detail: format!(". WGPU_ADAPTER_NAME=`{want}` matches none of: {}", names.join(", ")),
        });
    }
    let mut adapters = adapters;
    adapters.sort_by_key(|a| adapter_rank(&a.get_info(), opts.power_preference));
    Ok(adapters.into_iter().next().expect("non-empty"))
}

impl Gpu {
    /// The default GPU, chosen from wgpu's environment variables (see the module docs). Where the
    /// adapter offers a cooperative-matrix configuration the GEMM kernels fit ([`coop_tile_for`]),
    /// the device is requested with wgpu's *experimental* features token, whose contract is that
    /// those features may still have bugs; `VLMC_COOP=off` (or `GpuOptions::cooperative_matrix`)
    /// leaves them off. Errors:
    /// [`Error::NoAdapter`] (with how to install one), [`Error::RequestDevice`], and
    /// [`Error::Config`] for a `VLMC_KERNELS` that names an unknown family or variant.
    pub fn new() -> Result<Gpu> {
        Gpu::new_with(GpuOptions::default())
    }

    /// A GPU chosen with explicit options. Blocks until the device is ready (native only; on the
    /// web it is an [`Error::Unsupported`] naming [`Gpu::new_async`]).
    pub fn new_with(opts: GpuOptions) -> Result<Gpu> {
        block_on(Self::new_async(opts), "Gpu::new", "Gpu::new_async")
    }

    /// [`Gpu::new_with`] as a future: what the web build uses (the browser's WebGPU adapter;
    /// the tuner never measures there, as measuring waits for the GPU). Errors as `new_with`.
    pub async fn new_async(opts: GpuOptions) -> Result<Gpu> {
        // 1. Adapters of the native backends (Vulkan, Metal, DX12); GL only when none exists
        //    (probing GL/EGL is slow and noisy on headless machines).
        let native = opts.backends - wgpu::Backends::GL;
        let mut instance = make_instance(native);
        let mut adapters = instance.enumerate_adapters(native).await;
        if adapters.is_empty() && opts.backends.contains(wgpu::Backends::GL) {
            instance = make_instance(wgpu::Backends::GL);
            adapters = instance.enumerate_adapters(wgpu::Backends::GL).await;
        }
        // 2. Pick one: by name if asked, else discrete > integrated > virtual > CPU, native > GL.
        let adapter = choose_adapter(adapters, &opts)?;
        let info = adapter.get_info();
        // 3. Ask for the adapter's real limits (defaults cap a binding at 128 MiB) and our optional features.
        let mut limits = adapter.limits();
        if let Some(cap) = opts.cap_storage_binding {
            limits.max_storage_buffer_binding_size = limits.max_storage_buffer_binding_size.min(cap as _);
        }
        if let Some(cap) = opts.cap_workgroups_per_dimension {
            limits.max_compute_workgroups_per_dimension = limits.max_compute_workgroups_per_dimension.min(cap);
        }
        let mut features = adapter.features() & WANTED_FEATURES;
        // Cooperative matrices only where a configuration fits the GEMM kernels (see coop_tile_for).
        let coop_tile = coop_tile_for(&adapter.cooperative_matrix_properties(), &info, features).filter(|_| opts.cooperative_matrix);
        if coop_tile.is_none() {
            features.remove(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX);
        }
        let experimental = match coop_tile {
            // SAFETY: wgpu asks callers of experimental features to accept that they may have bugs;
            // only the cooperative-matrix GEMM uses them, and only on adapters that report a
            // configuration it fits. `GpuOptions { cooperative_matrix: false }` turns them off.
            Some(_) => unsafe { wgpu::ExperimentalFeatures::enabled() },
            None => wgpu::ExperimentalFeatures::disabled(),
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("vlm-connectors"),
                required_features: features,
                required_limits: limits.clone(),
                experimental_features: experimental,
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| Error::RequestDevice { adapter: info.name.clone(), message: e.to_string() })?;
        log::info!("adapter: {} ({:?}, {:?}), features {:?}", info.name, info.backend, info.device_type, features);
        let mut gpu = Gpu::wrap(device, queue, info, &opts.kernels, opts.autotune)?;
        gpu.coop_tile = coop_tile;
        Ok(gpu)
    }

    /// The side (8 or 16) of the cooperative-matrix GEMM tile this device runs, or `None`: the
    /// adapter reports a T×T×T f16 → f32 subgroup-scope configuration, its subgroups are exactly
    /// as wide as the kernel's workgroup (8 lanes for T = 8, 32 for T = 16), and
    /// `GpuOptions::cooperative_matrix` is on. f16 GEMMs then use it unless told otherwise.
    pub fn coop_tile(&self) -> Option<u32> {
        self.coop_tile
    }

    /// Wraps a device and queue the caller already has (e.g. from a renderer).
    /// Only the features enabled on that device are used; cooperative matrices never are (the
    /// adapter's configurations are not known here: [`Gpu::coop_tile`] is `None`). Fails only when `VLMC_KERNELS` names a
    /// kernel family or variant that does not exist.
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Result<Gpu> {
        Gpu::wrap(device, queue, info, &std::env::var(KERNELS_ENV).unwrap_or_default(), AutotuneSettings::default())
    }

    fn wrap(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo, kernels: &str, autotune: AutotuneSettings) -> Result<Gpu> {
        for old in ["VLMC_GEMM", "VLMC_ATTENTION"] {
            if std::env::var_os(old).is_some() {
                log::warn!(
                    "{old} is no longer read; force kernel versions with {KERNELS_ENV}=gemm=64|128|reg|split|coop8|coop16,attention=v2|q8"
                );
            }
        }
        // Tuned choices hold for this adapter, driver and these kernels (a hash of their source).
        let kernels_hash = crate::kernels::SHADER_FILES
            .iter()
            .flat_map(|(_, src)| src.bytes())
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
        let adapter_key =
            format!("{} | {:?} | {} {} | kernels {kernels_hash:016x}", info.name, info.backend, info.driver, info.driver_info);
        let tuner = Tuner::with_autotune(adapter_key, kernels, &crate::kernels::tune_families(), autotune)?;
        let limits = device.limits();
        let features = device.features();
        let gl = info.backend == wgpu::Backend::Gl;
        // Errors not caught by a scope must not panic the process: record them instead.
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            log::error!("uncaptured wgpu error: {e}");
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut l) = lost_sink.lock() {
                *l = Some(format!("{reason:?}: {msg}"));
            }
        });
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Ok(Gpu {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            device,
            queue,
            info,
            limits,
            features,
            coop_tile: None,
            pipelines: Mutex::new(HashMap::new()),
            compiled: AtomicUsize::new(0),
            tuner,
            dummy: OnceLock::new(),
            pool: BufferPool::default(),
            lost,
            uncaptured,
            serial: gl.then(|| parking_lot::ReentrantMutex::new(())),
        })
    }

    /// This `Gpu`'s process-unique id (tensors record it; see [`Error::OtherGpu`]).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }
    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }
    /// The adapter's name, backend, type and driver.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }
    /// The device's limits (the adapter's own, less any caps in `GpuOptions`).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }
    /// The optional features enabled on the device.
    pub fn features(&self) -> wgpu::Features {
        self.features
    }
    /// One line: name, backend, device type.
    pub fn describe(&self) -> String {
        // Browsers leave the name empty unless the user allows more (WebGPU's adapter info).
        let name = if self.info.name.is_empty() { "unnamed adapter" } else { &self.info.name };
        format!("{name} ({:?}, {:?})", self.info.backend, self.info.device_type)
    }

    /// Runs `f` holding the device lock where the backend needs one (GL), else just runs it.
    pub(crate) fn serialized<T>(&self, f: impl FnOnce() -> T) -> T {
        let _serial = self.serial.as_ref().map(|m| m.lock());
        f()
    }

    /// Fails if the device was lost or an error escaped the error scopes.
    pub(crate) fn check_health(&self, op: &str) -> Result<()> {
        if let Some(why) = self.lost.lock().ok().and_then(|l| l.clone()) {
            return Err(Error::DeviceLost(why));
        }
        let mut errs = self.uncaptured.lock().map(|mut v| std::mem::take(&mut *v)).unwrap_or_default();
        if let Some(first) = errs.drain(..).next() {
            return Err(Error::Gpu { op: op.to_string(), message: first });
        }
        Ok(())
    }

    /// Runs `f` inside validation + out-of-memory error scopes and turns a captured error into `Err`.
    /// On the web, where a scope's result is a promise the browser's thread cannot wait for, `f`
    /// runs without scopes of its own: the awaited ones of [`Self::scoped_async`] around the
    /// forward or readback catch its error; outside one, WebGPU hands it to the device's
    /// uncaptured-error handler and the next health check returns it.
    #[cfg(target_arch = "wasm32")]
    pub(crate) fn scoped<T>(&self, op: &str, f: impl FnOnce() -> T) -> Result<T> {
        let out = f();
        self.check_health(op)?;
        Ok(out)
    }

    /// Runs `f` inside validation + out-of-memory error scopes and turns a captured error into `Err`.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn scoped<T>(&self, op: &str, f: impl FnOnce() -> T) -> Result<T> {
        let _serial = self.serial.as_ref().map(|m| m.lock());
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(val.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::Gpu { op: op.to_string(), message: e.to_string() });
        }
        self.check_health(op)?;
        Ok(out)
    }

    /// Runs `f` (which records and submits) inside error scopes whose results are awaited: on the
    /// web the one way to tie a GPU error to the call that made it (the scopes inside `f` are
    /// not pushed there); on native, `f` runs in [`Self::scoped`]'s scopes.
    pub(crate) async fn scoped_async<T>(&self, op: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        #[cfg(not(target_arch = "wasm32"))]
        return self.scoped(op, f)?;
        #[cfg(target_arch = "wasm32")]
        {
            let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
            let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
            let out = f();
            let (v, o) = (val.pop().await, oom.pop().await);
            if let Some(e) = v.or(o) {
                return Err(Error::Gpu { op: op.to_string(), message: e.to_string() });
            }
            self.check_health(op)?;
            out
        }
    }

    /// Maps `buffer` (MAP_READ, its copies submitted) and copies out its first `size` bytes.
    /// On an error the buffer may still be mapped or mapping: the caller must not reuse it.
    pub(crate) async fn map_read(&self, buffer: &wgpu::Buffer, size: u64, op: &str) -> Result<Vec<u8>> {
        let slice = buffer.slice(0..size);
        let (tx, rx) = futures_channel::oneshot::channel();
        self.serialized(|| {
            slice.map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            })
        });
        self.wait_async().await?;
        let failed = |e: String| Error::Gpu { op: op.to_string(), message: e };
        rx.await.map_err(|e| failed(e.to_string()))?.map_err(|e| failed(e.to_string()))?;
        self.serialized(|| {
            let out = slice.get_mapped_range().map_err(|e| failed(e.to_string()))?.to_vec();
            buffer.unmap();
            Ok(out)
        })
    }

    /// The compute pipeline for `kernel` in `dtype`, compiled once per `Gpu` and cached. Fails with
    /// [`Error::Unsupported`] when the adapter lacks a feature the kernel needs in that dtype.
    pub(crate) fn pipeline(&self, kernel: &'static Kernel, dtype: DType) -> Result<Arc<wgpu::ComputePipeline>> {
        if !kernel.dtypes.contains(&dtype) {
            return Err(Error::Unsupported {
                what: format!("kernel `{}` in {dtype:?}", kernel.name),
                needs: format!("one of its built dtypes {:?}", kernel.dtypes),
            });
        }
        let missing = kernel.required_features(dtype) - self.features;
        if !missing.is_empty() {
            return Err(Error::Unsupported {
                what: format!("kernel `{}` in {dtype:?}", kernel.name),
                needs: format!("adapter features {missing:?}, which `{}` lacks", self.info.name),
            });
        }
        let slot = self.pipelines.lock().unwrap_or_else(|e| e.into_inner()).entry((kernel.name, dtype)).or_default().clone();
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let src = compose(kernel, dtype).ok_or_else(|| Error::Unsupported {
            what: format!("kernel `{}`", kernel.name),
            needs: format!("shader file {}", kernel.file),
        })?;
        let pipeline = self.scoped(kernel.name, || {
            let module = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(kernel.name),
                source: wgpu::ShaderSource::Wgsl(src.into()),
            });
            self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.name),
                layout: None,
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions { constants: kernel.constants, ..Default::default() },
                cache: None,
            })
        })?;
        let p = Arc::new(pipeline);
        *slot = Some(p.clone());
        self.compiled.fetch_add(1, Ordering::Relaxed);
        log::debug!("compiled pipeline {} ({dtype:?})", kernel.name);
        Ok(p)
    }

    /// The buffer bound in place of an absent optional input.
    pub(crate) fn dummy(&self) -> Arc<PooledBuffer> {
        self.dummy.get_or_init(|| self.serialized(|| self.pool.get(&self.device, 16, STORAGE_USAGE))).clone()
    }

    /// The kernel choices of this `Gpu` (forced by `VLMC_KERNELS`, recorded, or heuristic).
    pub fn tuner(&self) -> &Tuner {
        &self.tuner
    }

    /// (bytes held by the buffer pool in all, bytes of those sitting idle).
    pub fn pool_stats(&self) -> (u64, u64) {
        self.pool.stats()
    }

    /// Frees the pool's idle buffers.
    pub fn trim_pool(&self) {
        self.pool.trim()
    }

    /// (bytes of tensors alive now, the most alive at once since [`Self::reset_memory_peak`]), in
    /// the pool's size classes (at most 12.5% above the tensors' own sizes): weights are what
    /// stays alive after a load, the peak of a forward adds its intermediates.
    pub fn memory_in_use(&self) -> (u64, u64) {
        self.pool.in_use()
    }

    /// Starts a new peak for [`Self::memory_in_use`] from what is alive now.
    pub fn reset_memory_peak(&self) {
        self.pool.reset_peak()
    }

    /// Number of pipelines compiled so far (each (kernel, dtype) at most once).
    pub fn cached_pipelines(&self) -> usize {
        self.compiled.load(Ordering::Relaxed)
    }

    /// Blocks until all submitted work is done. On the web an [`Error::Unsupported`] naming
    /// [`Gpu::wait_async`].
    pub fn wait(&self) -> Result<()> {
        block_on(self.wait_async(), "Gpu::wait", "Gpu::wait_async")
    }

    /// Until all work submitted so far is done, as a future (on native it blocks in `poll` and
    /// is ready at once; on the web the browser resolves it). Errors: a lost device, a GPU error
    /// reported since the last check.
    pub async fn wait_async(&self) -> Result<()> {
        let (tx, rx) = futures_channel::oneshot::channel();
        self.serialized(|| {
            self.queue.on_submitted_work_done(move || {
                let _ = tx.send(());
            })
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.poll_wait()?;
        rx.await.map_err(|_| Error::DeviceLost("the queue dropped its work-done callback".into()))?;
        self.check_health("wait")
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn poll_wait(&self) -> Result<()> {
        let _serial = self.serial.as_ref().map(|m| m.lock());
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu { op: "poll".into(), message: e.to_string() })?;
        self.check_health("wait")
    }
}

/// The cooperative-matrix tile side the GEMM kernels can use with these configurations: 16 where a
/// 16×16×16 f16 → f32 configuration meets subgroups of exactly 32 lanes (`subgroup_min_size ==
/// subgroup_max_size`), else 8 where an 8×8×8 one meets subgroups of exactly 8 (the kernels'
/// workgroup must be one whole subgroup). `None` without the feature (and SHADER_F16). In practice:
/// NVIDIA on Vulkan (16) and Mesa ≥ 26 lavapipe (8); AMD (32–64 lanes), Metal (wgpu reports 4–64)
/// and Vulkan drivers without a fixed subgroup width keep the SIMT kernels.
pub fn coop_tile_for(props: &[wgpu::CooperativeMatrixProperties], info: &wgpu::AdapterInfo, features: wgpu::Features) -> Option<u32> {
    coop_tile_of(props, [info.subgroup_min_size, info.subgroup_max_size], features)
}

/// [`coop_tile_for`] on the subgroup width range `[min, max]` itself.
pub fn coop_tile_of(props: &[wgpu::CooperativeMatrixProperties], [min, max]: [u32; 2], features: wgpu::Features) -> Option<u32> {
    if !features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX | wgpu::Features::SHADER_F16) {
        return None;
    }
    let has = |t: u32| {
        props.iter().any(|p| {
            (p.m_size, p.n_size, p.k_size) == (t, t, t)
                && p.ab_type == wgpu::CooperativeScalarType::F16
                && p.cr_type == wgpu::CooperativeScalarType::F32
        })
    };
    let lanes = |w: u32| min == w && max == w;
    [(16, 32), (8, 8)].into_iter().find(|&(t, w)| has(t) && lanes(w)).map(|(t, _)| t)
}
