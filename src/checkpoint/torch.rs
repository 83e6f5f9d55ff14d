//! PyTorch checkpoints (`checkpoint.pt`, `pytorch_model.bin`, `*.pth`): the zip container
//! `torch.save` writes since PyTorch 1.6, the older legacy and tar containers, read with the
//! `pytorch-reader` crate (burn's standalone reader). It interprets only the pickle globals a
//! state dict needs (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, the storage
//! types, ...), keeps every other global as an opaque value and never runs code; it refuses
//! tensors past 10 GiB and pickles past 100 MiB before allocating them, and checks every length
//! against the file. Tensor bytes are read only when a loader asks for that tensor.
//!
//! Training-run files (`checkpoint_{epoch}.pt`: `{"epoch", "model_state_dict", "optimizer_state_dict",
//! ...}`) are read from their `model_state_dict`, and a DDP `module.` prefix on every key is dropped,
//! as OpenFlamingo's `train.py` does on resume.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pytorch_reader::{PytorchReader, Tensor as TorchTensor};

use super::stored::Stored;
use crate::runtime::{Error, Result};

/// A stored tensor read to memory: dtype, shape, little-endian bytes.
pub(crate) type RawTensor = (Stored, Vec<usize>, Vec<u8>);

/// The tensors of one PyTorch checkpoint, by name, read lazily.
pub(crate) struct TorchFile {
    pub tensors: HashMap<String, TorchTensor>,
    pub path: PathBuf,
}

fn error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Checkpoint { path: path.to_path_buf(), message: e.to_string() }
}

/// Opens `path`; a training-run file is read from its `model_state_dict`.
pub(crate) fn open(path: &Path) -> Result<TorchFile> {
    let size = std::fs::metadata(path).map_err(|e| Error::io(path, e))?.len();
    let reader = PytorchReader::new(path).map_err(|e| error(path, e))?;
    let reader = match nested(&reader) {
        true => PytorchReader::with_top_level_key(path, "model_state_dict").map_err(|e| error(path, e))?,
        false => reader,
    };
    finish(reader, path, size)
}

/// Opens the shards of a `pytorch_model.bin.index.json` (`index` names them in errors) as one
/// checkpoint. A key in two shards takes the later shard's tensor, as transformers' shard-by-shard
/// loading (`modeling_utils.load_state_dict` over the sorted shard names) leaves it.
pub(crate) fn open_shards(paths: &[PathBuf], index: &Path) -> Result<TorchFile> {
    let mut tensors = HashMap::new();
    for p in paths {
        tensors.extend(open(p)?.tensors);
    }
    Ok(TorchFile { tensors, path: index.to_path_buf() })
}

/// Reads a checkpoint already in memory (`name` is used in error messages), as [`open`] does.
pub(crate) fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<TorchFile> {
    let (path, size) = (Path::new(name), bytes.len() as u64);
    let reader = PytorchReader::from_bytes(bytes.clone(), None).map_err(|e| error(path, e))?;
    let reader = match nested(&reader) {
        true => PytorchReader::from_bytes(bytes, Some("model_state_dict")).map_err(|e| error(path, e))?,
        false => reader,
    };
    finish(reader, path, size)
}

/// A training run's `{"epoch", "model_state_dict", "optimizer_state_dict", ...}`.
fn nested(reader: &PytorchReader) -> bool {
    reader.keys().iter().any(|k| k.starts_with("model_state_dict."))
}

fn finish(reader: PytorchReader, path: &Path, file_size: u64) -> Result<TorchFile> {
    let tensors = reader.into_tensors();
    if tensors.is_empty() {
        return Err(error(path, "holds no tensors"));
    }
    // A state dict's tensors own their bytes; one that declares more than the whole file holds is a
    // broadcast (stride-0) view or a lie, and reading it could allocate without bound.
    if let Some((name, t)) = tensors.iter().find(|(_, t)| t.byte_len() as u64 > file_size) {
        return Err(error(path, format!("tensor `{name}` declares {} bytes, more than the file's {file_size}", t.byte_len())));
    }
    // DDP wraps the model in `module.`; OpenFlamingo's train.py strips it from every key that has it.
    let tensors = tensors.into_iter().map(|(k, v)| (k.strip_prefix("module.").map(str::to_string).unwrap_or(k), v)).collect();
    Ok(TorchFile { tensors, path: path.to_path_buf() })
}

impl TorchFile {
    /// (dtype, shape, bytes) of `name`, read from the file now.
    pub fn read(&self, name: &str) -> Option<Result<RawTensor>> {
        use pytorch_reader::DType as D;
        let t = self.tensors.get(name)?;
        let dtype = match t.dtype() {
            D::F64 => Stored::F64,
            D::F32 => Stored::F32,
            D::F16 => Stored::F16,
            D::BF16 => Stored::BF16,
            D::I64 => Stored::I64,
            D::I32 => Stored::I32,
            D::U32 => Stored::U32,
            D::I16 => Stored::I16,
            D::I8 => Stored::I8,
            D::U8 => Stored::U8,
            D::Bool => Stored::Bool,
            D::U64 => Stored::Other("U64"),
            D::U16 => Stored::Other("U16"),
        };
        Some(t.read().map(|bytes| (dtype, t.shape().to_vec(), bytes)).map_err(|e| error(&self.path, e)))
    }

    /// The stored shape of `name`.
    pub fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors.get(name).map(|t| t.shape().to_vec())
    }
}
