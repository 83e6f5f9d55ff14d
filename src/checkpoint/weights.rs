//! `WeightSource`: named weights from safetensors (memory-mapped, one file or a sharded set named by
//! `model.safetensors.index.json`) or from a seeded random generator (benchmarks, demos, tests).
//!
//! `WeightSource::pp("prefix")` scopes names like candle's `VarBuilder`. [`WeightSource::get`]
//! always checks the stored shape and uploads in the source's compute dtype
//! ([`WeightSource::with_dtype`]): F32, F16 and BF16 on disk are converted once, at load.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo};
use safetensors::SafeTensors;

use super::random;
use super::stored::Stored;
use super::torch::{self, TorchFile};
use crate::runtime::{DType, Error, Gpu, Result, Tensor};
use std::borrow::Cow;

/// The bytes of one safetensors file: memory-mapped, or owned (loaded from memory).
enum Backing {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Backing {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Backing::Mapped(m) => m,
            Backing::Owned(v) => v,
        }
    }
}

struct MappedFile {
    path: PathBuf,
    mmap: Backing,
    /// Byte offset of the data section (8 + header length).
    data_start: usize,
}

struct Inner {
    files: Vec<MappedFile>,
    /// Tensor name → (file index, info).
    index: HashMap<String, (usize, TensorInfo)>,
    location: String,
}

/// Where the tensors come from.
#[derive(Clone)]
enum Backend {
    Files(Arc<Inner>),
    /// A PyTorch checkpoint (and where it came from, for error messages).
    Torch(Arc<TorchFile>, String),
    /// Every name exists, at whatever shape it is asked for, with values drawn from the seed and
    /// the name (see `checkpoint::random`).
    Random(u64),
}

/// Named tensors from safetensors files or a seeded generator, with a name prefix and the compute
/// dtype weights are uploaded in.
#[derive(Clone)]
pub struct WeightSource {
    backend: Backend,
    prefix: String,
    dtype: DType,
    /// Full names of the tensors read so far, shared by every view ([`WeightSource::read_names`]).
    read: Arc<Mutex<BTreeSet<String>>>,
}

impl std::fmt::Debug for WeightSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WeightSource({}, prefix `{}`, {:?})", self.location(), self.prefix, self.dtype)
    }
}

/// A tensor read to the host as f32 (whatever its dtype on disk).
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Values, widened to f32.
    pub data: Vec<f32>,
}

fn map_file(path: &Path) -> Result<(MappedFile, HashMap<String, TensorInfo>)> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    // SAFETY: the file is opened read-only; a concurrent writer could change bytes under us, which
    // at worst yields wrong values (never unsafety in safe code reading &[u8] of fixed length).
    let mmap = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
    parse(path, Backing::Mapped(mmap))
}

fn parse(path: &Path, bytes: Backing) -> Result<(MappedFile, HashMap<String, TensorInfo>)> {
    let (n, meta) =
        SafeTensors::read_metadata(&bytes).map_err(|e| Error::Safetensors { path: path.to_path_buf(), message: e.to_string() })?;
    let infos = meta.tensors().into_iter().map(|(k, v)| (k, v.clone())).collect();
    Ok((MappedFile { path: path.to_path_buf(), mmap: bytes, data_start: 8 + n }, infos))
}

impl WeightSource {
    /// Opens a checkpoint folder, in transformers' order (`from_pretrained`): `model.safetensors`,
    /// the shards named by `model.safetensors.index.json`, `pytorch_model.bin`, the shards of
    /// `pytorch_model.bin.index.json`; then OpenFlamingo's `checkpoint.pt`, or the one `.pt` /
    /// `.pth` / `.bin` file in the folder.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<WeightSource> {
        let dir = dir.as_ref();
        let single = dir.join("model.safetensors");
        if single.exists() {
            return Self::open_files(&[single], dir.display().to_string());
        }
        if let Some(paths) = super::shards::read_index(dir, "model.safetensors.index.json")? {
            return Self::open_files(&paths, dir.display().to_string());
        }
        if dir.join("pytorch_model.bin").exists() {
            return Self::open_torch(dir.join("pytorch_model.bin"));
        }
        if let Some(paths) = super::shards::read_index(dir, "pytorch_model.bin.index.json")? {
            let file = torch::open_shards(&paths, &dir.join("pytorch_model.bin.index.json"))?;
            return Ok(Self::torch(file, dir.display().to_string()));
        }
        let torch_files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_torch_file(p)).collect())
            .unwrap_or_default();
        let pick = Some(dir.join("checkpoint.pt")).filter(|p| p.exists());
        match (pick, torch_files.as_slice()) {
            (Some(p), _) => Self::open_torch(&p),
            (None, [p]) => Self::open_torch(p),
            (None, []) => Err(Error::io(
                single,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no model.safetensors, model.safetensors.index.json or PyTorch checkpoint in the folder",
                ),
            )),
            (None, many) => Err(Error::io(
                dir,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{} PyTorch checkpoints and no checkpoint.pt: name one file", many.len()),
                ),
            )),
        }
    }

    /// Reads safetensors bytes already in memory (`name` is used in error messages).
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<WeightSource> {
        let (mf, index) = parse(Path::new(name), Backing::Owned(bytes))?;
        let index = index.into_iter().map(|(k, v)| (k, (0, v))).collect();
        Ok(Self::files(Inner { files: vec![mf], index, location: name.to_string() }))
    }

    /// Seeded random weights: every name exists at the shape it is asked for (`get` needs the
    /// shape; `shape` answers `None`). Values follow torch's initialisers closely enough for timing:
    /// U(±1/√fan_in) for matrices, 1 ± 0.1 for norm weights, U(±0.1) otherwise. The same seed and
    /// name always give the same values.
    pub fn random(seed: u64) -> WeightSource {
        WeightSource { backend: Backend::Random(seed), prefix: String::new(), dtype: DType::F32, read: Arc::default() }
    }

    fn files(inner: Inner) -> WeightSource {
        WeightSource { backend: Backend::Files(Arc::new(inner)), prefix: String::new(), dtype: DType::F32, read: Arc::default() }
    }

    /// The same weights, uploaded in `dtype` (`F32` by default; `F16` halves weight memory and
    /// needs kernels built for it). Errors with [`Error::DType`] for a non-float dtype.
    pub fn with_dtype(&self, dtype: DType) -> Result<WeightSource> {
        if dtype == DType::U32 {
            return Err(Error::DType { tensor: "compute dtype".into(), dtype: "U32".into(), expected: "F32 or F16".into() });
        }
        Ok(WeightSource { dtype, ..self.clone() })
    }

    /// The compute dtype weights are uploaded in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Opens one file: a PyTorch checkpoint by its extension (`.pt`, `.pth`, `.bin`), else safetensors.
    pub fn open_file(path: impl AsRef<Path>) -> Result<WeightSource> {
        let p = path.as_ref().to_path_buf();
        if is_torch_file(&p) {
            return Self::open_torch(&p);
        }
        Self::open_files(std::slice::from_ref(&p), p.display().to_string())
    }

    /// Opens a PyTorch checkpoint (`.pt`, `.pth`, `.bin`; see `checkpoint::torch` for what is read).
    /// Errors: [`Error::Checkpoint`] for a file that is not one, or is truncated or inconsistent.
    pub fn open_torch(path: impl AsRef<Path>) -> Result<WeightSource> {
        let path = path.as_ref();
        let file = torch::open(path)?;
        Ok(Self::torch(file, path.display().to_string()))
    }

    /// Reads PyTorch checkpoint bytes already in memory (`name` is used in error messages).
    pub fn from_torch_bytes(bytes: Vec<u8>, name: &str) -> Result<WeightSource> {
        let file = torch::from_bytes(bytes, name)?;
        Ok(Self::torch(file, name.to_string()))
    }

    fn torch(file: torch::TorchFile, location: String) -> WeightSource {
        WeightSource { backend: Backend::Torch(Arc::new(file), location), prefix: String::new(), dtype: DType::F32, read: Arc::default() }
    }

    fn open_files(paths: &[PathBuf], location: String) -> Result<WeightSource> {
        let mut files = Vec::new();
        let mut index = HashMap::new();
        for (fi, p) in paths.iter().enumerate() {
            let (mf, infos) = map_file(p)?;
            for (name, info) in infos {
                index.insert(name, (fi, info));
            }
            files.push(mf);
        }
        Ok(Self::files(Inner { files, index, location }))
    }

    /// A view with `prefix.` prepended to every name.
    pub fn pp(&self, prefix: impl AsRef<str>) -> WeightSource {
        let p = prefix.as_ref();
        let prefix = match (self.prefix.is_empty(), p.is_empty()) {
            (_, true) => self.prefix.clone(),
            (true, false) => p.to_string(),
            (false, false) => format!("{}.{p}", self.prefix),
        };
        WeightSource { backend: self.backend.clone(), prefix, dtype: self.dtype, read: self.read.clone() }
    }

    /// The full name of `name` under this view's prefix.
    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    /// The name prefix of this view (`""` at the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether `name` exists (always, for a random source).
    pub fn contains(&self, name: &str) -> bool {
        match &self.backend {
            Backend::Files(inner) => inner.index.contains_key(&self.full_name(name)),
            Backend::Torch(file, _) => file.tensors.contains_key(&self.full_name(name)),
            Backend::Random(_) => true,
        }
    }

    /// Every tensor name in the files (unprefixed; none for a random source).
    pub fn names(&self) -> Vec<&str> {
        match &self.backend {
            Backend::Files(inner) => inner.index.keys().map(|s| s.as_str()).collect(),
            Backend::Torch(file, _) => file.tensors.keys().map(|s| s.as_str()).collect(),
            Backend::Random(_) => Vec::new(),
        }
    }

    /// The stored shape of `name` (`None` when absent, and always for a random source).
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        match &self.backend {
            Backend::Files(inner) => inner.index.get(&self.full_name(name)).map(|(_, i)| i.shape.clone()),
            Backend::Torch(file, _) => file.shape(&self.full_name(name)),
            Backend::Random(_) => None,
        }
    }

    fn missing(&self, name: &str) -> Error {
        Error::MissingWeight { name: self.full_name(name), location: self.location().to_string() }
    }

    /// (dtype, shape, bytes) of `name` as stored, whichever the container.
    fn raw(&self, name: &str) -> Result<(Stored, Vec<usize>, Cow<'_, [u8]>)> {
        let full = self.full_name(name);
        match &self.backend {
            Backend::Files(inner) => {
                let (fi, info) = inner.index.get(&full).ok_or_else(|| self.missing(name))?;
                let f = &inner.files[*fi];
                let (a, b) = info.data_offsets;
                let bytes = f.mmap.get(f.data_start + a..f.data_start + b).ok_or_else(|| Error::Safetensors {
                    path: f.path.clone(),
                    message: format!("tensor `{full}` lies outside the file"),
                })?;
                Ok((Stored::from(info.dtype), info.shape.clone(), Cow::Borrowed(bytes)))
            }
            Backend::Torch(file, _) => {
                let (dtype, shape, bytes) = file.read(&full).ok_or_else(|| self.missing(name))??;
                Ok((dtype, shape, Cow::Owned(bytes)))
            }
            Backend::Random(_) => Err(self.missing(name)),
        }
    }

    /// Reads `name` at its stored shape as f32, whatever its float dtype on disk: for input files,
    /// whose shapes the caller checks. Weights go through [`Self::get`] / [`Self::get_host`].
    /// Errors: [`Error::MissingWeight`], [`Error::DType`] for an integer tensor.
    pub fn get_any(&self, name: &str) -> Result<HostTensor> {
        let (dtype, shape, bytes) = self.raw(name)?;
        self.read.lock().unwrap_or_else(|e| e.into_inner()).insert(self.full_name(name));
        let data = dtype.floats(&bytes).ok_or_else(|| Error::DType {
            tensor: self.full_name(name),
            dtype: dtype.name(),
            expected: "F32, F16 or BF16".into(),
        })?;
        Ok(HostTensor { shape, data })
    }

    /// Reads `name` to the host as f32 after checking its stored shape is `shape`.
    /// Errors: [`Error::MissingWeight`], [`Error::Shape`] (full name, expected, stored), [`Error::DType`].
    pub fn get_host(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        if let Backend::Random(seed) = self.backend {
            return Ok(HostTensor { shape: shape.to_vec(), data: random::values(seed, &self.full_name(name), shape) });
        }
        let stored = self.shape(name).ok_or_else(|| self.missing(name))?;
        if stored != shape {
            return Err(Error::shape(self.full_name(name), shape, stored));
        }
        self.get_any(name)
    }

    /// Reads `name`, checks its stored shape is `shape`, and uploads it in the compute dtype.
    pub fn get(&self, gpu: &Gpu, name: &str, shape: &[usize]) -> Result<Tensor> {
        let h = self.get_host(name, shape)?;
        Tensor::from_host(gpu, &h.data, &h.shape, self.dtype)
    }

    /// Reads an integer tensor (I64, I32, U32, I16, I8, U8, BOOL) as i64, with its shape.
    pub fn get_int(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let (dtype, shape, bytes) = self.raw(name)?;
        let data = dtype.ints(&bytes).ok_or_else(|| Error::DType {
            tensor: self.full_name(name),
            dtype: dtype.name(),
            expected: "an integer type".into(),
        })?;
        Ok((shape, data))
    }

    /// Full names of the tensors read through this source or any view of it (sorted): what a
    /// loader took from a checkpoint (`vlmc info`).
    pub fn read_names(&self) -> Vec<String> {
        self.read.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// Where the weights came from (for error messages).
    pub fn location(&self) -> &str {
        match &self.backend {
            Backend::Files(inner) => &inner.location,
            Backend::Torch(_, location) => location,
            Backend::Random(_) => "random weights (their shapes come from config.json; this one has none)",
        }
    }
}

/// A `.pt` / `.pth` / `.bin` file that is not safetensors (whose 8-byte header length is followed
/// by a JSON `{`).
fn is_torch_file(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).is_some_and(|e| matches!(e, "pt" | "pth" | "bin"));
    if !ext || !p.is_file() {
        return false;
    }
    let mut head = [0u8; 9];
    let safetensors = File::open(p).and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head)).is_ok() && head[8] == b'{';
    !safetensors
}

/// Writes f32 tensors to a safetensors file.
pub fn save_f32(path: impl AsRef<Path>, tensors: &[(&str, &[usize], &[f32])]) -> Result<()> {
    save_tensors(path, tensors, &[])
}

/// Writes f32 and i64 tensors (e.g. `image_sizes`) to a safetensors file. Errors: [`Error::Io`]
/// when the file cannot be written (a missing folder, no permission), [`Error::Safetensors`]
/// for a shape that does not match its data.
pub fn save_tensors(path: impl AsRef<Path>, floats: &[(&str, &[usize], &[f32])], ints: &[(&str, &[usize], &[i64])]) -> Result<()> {
    let path = path.as_ref();
    let bad = |e: safetensors::SafeTensorError| Error::Safetensors { path: path.to_path_buf(), message: e.to_string() };
    let mut views: Vec<(String, safetensors::tensor::TensorView)> = Vec::new();
    for (n, s, d) in floats {
        views.push((n.to_string(), safetensors::tensor::TensorView::new(Dtype::F32, s.to_vec(), bytemuck::cast_slice(d)).map_err(bad)?));
    }
    for (n, s, d) in ints {
        views.push((n.to_string(), safetensors::tensor::TensorView::new(Dtype::I64, s.to_vec(), bytemuck::cast_slice(d)).map_err(bad)?));
    }
    safetensors::tensor::serialize_to_file(views, None, path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => Error::io(path, io),
        e => bad(e),
    })
}
