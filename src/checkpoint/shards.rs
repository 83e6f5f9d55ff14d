//! Sharded checkpoints: the `weight_map` of `model.safetensors.index.json` or
//! `pytorch_model.bin.index.json` (what `save_pretrained` writes past `max_shard_size`).

use std::path::{Path, PathBuf};

use crate::runtime::{Error, Result};

/// The shard files `dir/index_name` names, sorted and deduplicated as transformers reads them
/// (`sorted(set(index["weight_map"].values()))`); `None` when there is no such index. Errors: an
/// unreadable index, no `weight_map` object, or a shard name that is not a plain file name (it
/// could point outside the folder).
pub(crate) fn read_index(dir: &Path, index_name: &str) -> Result<Option<Vec<PathBuf>>> {
    let index_path = dir.join(index_name);
    if !index_path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&index_path).map_err(|e| Error::io(&index_path, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Json { path: index_path.clone(), message: e.to_string() })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::Json { path: index_path.clone(), message: "no `weight_map` object".into() })?;
    let mut shards: Vec<String> = map.values().filter_map(|v| v.as_str().map(String::from)).collect();
    shards.sort();
    shards.dedup();
    if shards.iter().any(|s| s.contains('/') || s.contains('\\') || s.contains("..")) {
        return Err(Error::Json { path: index_path, message: "shard names must be plain file names".into() });
    }
    Ok(Some(shards.iter().map(|s| dir.join(s)).collect()))
}
