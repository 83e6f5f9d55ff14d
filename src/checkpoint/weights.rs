//! Safetensors weights, memory-mapped: one file or a sharded set (`model.safetensors.index.json`).
//! Only the tensors a connector asks for are read; F32, F16 and BF16 are widened to f32.
//! `WeightSource::pp("prefix")` scopes names like candle's `VarBuilder`.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use safetensors::tensor::{Dtype, TensorInfo};
use safetensors::SafeTensors;

use crate::runtime::{Error, Gpu, Result, Tensor};

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

/// Named tensors from one or more safetensors files, with a name prefix.
#[derive(Clone)]
pub struct WeightSource {
    inner: Arc<Inner>,
    prefix: String,
}

/// A tensor read to the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
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
    let (n, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| Error::Safetensors { path: path.to_path_buf(), message: e.to_string() })?;
    let infos = meta.tensors().into_iter().map(|(k, v)| (k, v.clone())).collect();
    Ok((MappedFile { path: path.to_path_buf(), mmap: bytes, data_start: 8 + n }, infos))
}

impl WeightSource {
    /// Opens a checkpoint folder: `model.safetensors`, or the shards named by
    /// `model.safetensors.index.json`.
    pub fn open_dir(dir: impl AsRef<Path>) -> Result<WeightSource> {
        let dir = dir.as_ref();
        let index_path = dir.join("model.safetensors.index.json");
        if index_path.exists() {
            let text = std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
            let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Json { path: index_path.clone(), message: e.to_string() })?;
            let map = json.get("weight_map").and_then(|m| m.as_object()).ok_or_else(|| Error::Json { path: index_path.clone(), message: "no `weight_map` object".into() })?;
            let mut shards: Vec<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
            shards.sort();
            shards.dedup();
            if shards.iter().any(|s| s.contains('/') || s.contains('\\') || s.contains("..")) {
                return Err(Error::Json { path: index_path, message: "shard names must be plain file names".into() });
            }
            let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
            return Self::open_files(&paths, dir.display().to_string());
        }
        let single = dir.join("model.safetensors");
        if single.exists() {
            return Self::open_files(&[single], dir.display().to_string());
        }
        Err(Error::io(single, std::io::Error::new(std::io::ErrorKind::NotFound, "no model.safetensors or model.safetensors.index.json in the folder")))
    }

    /// Reads safetensors bytes already in memory (`name` is used in error messages).
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<WeightSource> {
        let (mf, index) = parse(Path::new(name), Backing::Owned(bytes))?;
        let index = index.into_iter().map(|(k, v)| (k, (0, v))).collect();
        Ok(WeightSource { inner: Arc::new(Inner { files: vec![mf], index, location: name.to_string() }), prefix: String::new() })
    }

    /// Opens one safetensors file.
    pub fn open_file(path: impl AsRef<Path>) -> Result<WeightSource> {
        let p = path.as_ref().to_path_buf();
        Self::open_files(std::slice::from_ref(&p), p.display().to_string())
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
        Ok(WeightSource { inner: Arc::new(Inner { files, index, location }), prefix: String::new() })
    }

    /// A view with `prefix.` prepended to every name.
    pub fn pp(&self, prefix: impl AsRef<str>) -> WeightSource {
        let p = prefix.as_ref();
        let prefix = match (self.prefix.is_empty(), p.is_empty()) {
            (_, true) => self.prefix.clone(),
            (true, false) => p.to_string(),
            (false, false) => format!("{}.{p}", self.prefix),
        };
        WeightSource { inner: self.inner.clone(), prefix }
    }

    /// The full name of `name` under this view's prefix.
    pub fn full_name(&self, name: &str) -> String {
        if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.prefix)
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn contains(&self, name: &str) -> bool {
        self.inner.index.contains_key(&self.full_name(name))
    }

    /// Every tensor name in the files (unprefixed).
    pub fn names(&self) -> Vec<&str> {
        self.inner.index.keys().map(|s| s.as_str()).collect()
    }

    /// The stored shape of `name`.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.inner.index.get(&self.full_name(name)).map(|(_, i)| i.shape.clone())
    }

    fn raw(&self, name: &str) -> Result<(&TensorInfo, &[u8])> {
        let full = self.full_name(name);
        let (fi, info) = self.inner.index.get(&full).ok_or_else(|| Error::MissingWeight { name: full.clone(), location: self.inner.location.clone() })?;
        let f = &self.inner.files[*fi];
        let (a, b) = info.data_offsets;
        let bytes = f
            .mmap
            .get(f.data_start + a..f.data_start + b)
            .ok_or_else(|| Error::Safetensors { path: f.path.clone(), message: format!("tensor `{full}` lies outside the file") })?;
        Ok((info, bytes))
    }

    /// Reads `name` as f32, whatever its float dtype on disk.
    pub fn get_any(&self, name: &str) -> Result<HostTensor> {
        let (info, bytes) = self.raw(name)?;
        let data = match info.dtype {
            Dtype::F32 => bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()).collect(),
            Dtype::F64 => bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32).collect(),
            other => {
                return Err(Error::DType { tensor: self.full_name(name), dtype: format!("{other:?}"), expected: "F32, F16 or BF16".into() })
            }
        };
        Ok(HostTensor { shape: info.shape.clone(), data })
    }

    /// Reads `name` and checks its shape.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<HostTensor> {
        let full = self.full_name(name);
        let stored = self.shape(name).ok_or_else(|| Error::MissingWeight { name: full.clone(), location: self.inner.location.clone() })?;
        if stored != shape {
            return Err(Error::shape(full, shape, stored));
        }
        self.get_any(name)
    }

    /// Reads an integer tensor (I64, I32, U8, BOOL, ...) as i64.
    pub fn get_int(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>)> {
        let (info, bytes) = self.raw(name)?;
        let data: Vec<i64> = match info.dtype {
            Dtype::I64 => bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
            Dtype::I32 => bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().expect("4 bytes")) as i64).collect(),
            Dtype::U32 => bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")) as i64).collect(),
            Dtype::U8 | Dtype::BOOL => bytes.iter().map(|&b| b as i64).collect(),
            Dtype::I8 => bytes.iter().map(|&b| b as i8 as i64).collect(),
            other => return Err(Error::DType { tensor: self.full_name(name), dtype: format!("{other:?}"), expected: "an integer type".into() }),
        };
        Ok((info.shape.clone(), data))
    }

    /// Uploads `name` (shape-checked) to the GPU as f32.
    pub fn tensor(&self, gpu: &Gpu, name: &str, shape: &[usize]) -> Result<Tensor> {
        let h = self.get(name, shape)?;
        Tensor::from_slice(gpu, &h.data, &h.shape)
    }

    /// Where the weights came from (for error messages).
    pub fn location(&self) -> &str {
        &self.inner.location
    }
}

/// Writes f32 tensors to a safetensors file.
pub fn save_f32(path: impl AsRef<Path>, tensors: &[(&str, &[usize], &[f32])]) -> Result<()> {
    let path = path.as_ref();
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, s, d)| {
            let v = safetensors::tensor::TensorView::new(Dtype::F32, s.to_vec(), bytemuck::cast_slice(d)).map_err(|e| Error::Safetensors { path: path.to_path_buf(), message: e.to_string() })?;
            Ok((n.to_string(), v))
        })
        .collect::<Result<_>>()?;
    safetensors::tensor::serialize_to_file(views, None, path).map_err(|e| Error::Safetensors { path: path.to_path_buf(), message: e.to_string() })
}
