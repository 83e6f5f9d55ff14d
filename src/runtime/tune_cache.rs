//! The autotuner's disk cache: one JSON file of measured choices for every adapter this user has
//! tuned on, in the user's cache folder (`dirs::cache_dir()/vlm-connectors/tune.json`, or
//! `VLMC_TUNE_CACHE`). An entry is keyed by the adapter's name, backend and driver, so a driver
//! update measures again; entries of other adapters are kept as they are.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::tensor::DType;
use super::tune::TuneKey;

/// Environment variable naming the cache file (else the user's cache folder).
pub const TUNE_CACHE_ENV: &str = "VLMC_TUNE_CACHE";
/// Environment variable that turns measuring off (`VLMC_AUTOTUNE=off`).
pub const AUTOTUNE_ENV: &str = "VLMC_AUTOTUNE";

/// The default cache file: `VLMC_TUNE_CACHE`, else `<user cache folder>/vlm-connectors/tune.json`.
pub fn default_path() -> Option<PathBuf> {
    match std::env::var_os(TUNE_CACHE_ENV) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => dirs::cache_dir().map(|d| d.join("vlm-connectors").join("tune.json")),
    }
}

/// Whether measuring is on: anything but `VLMC_AUTOTUNE=off` (or `0`, `false`).
pub fn enabled_from_env() -> bool {
    !matches!(std::env::var(AUTOTUNE_ENV).as_deref().map(str::to_ascii_lowercase).as_deref(), Ok("off" | "0" | "false"))
}

fn read(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v.get("entries").and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The choices stored for `adapter`: (family, dtype, bucket, variant name). A file that is absent
/// or unreadable is an empty cache (the tuner measures again), never an error.
pub fn load(path: &Path, adapter: &str) -> Vec<(String, DType, Vec<u32>, String)> {
    read(path)
        .iter()
        .filter(|e| e["adapter"] == adapter)
        .filter_map(|e| {
            let dtype = match e["dtype"].as_str()? {
                "f32" => DType::F32,
                "f16" => DType::F16,
                _ => return None,
            };
            let bucket = e["bucket"].as_array()?.iter().map(|b| b.as_u64().map(|b| b as u32)).collect::<Option<Vec<_>>>()?;
            Some((e["family"].as_str()?.to_string(), dtype, bucket, e["variant"].as_str()?.to_string()))
        })
        .collect()
}

/// Adds (or replaces) the entry for `key`: its winner and each variant's time in ms. Written to a
/// temporary file and renamed, so a reader never sees half a file. Errors are logged, not raised:
/// a cache that cannot be written only means measuring again next time.
pub fn store(path: &Path, key: &TuneKey, variant: &str, times: &[(&str, f64)]) {
    let mut entries = read(path);
    let same = |e: &Value| {
        e["adapter"] == key.adapter && e["family"] == key.family && e["dtype"] == key.dtype.wgsl() && e["bucket"] == json!(key.bucket)
    };
    entries.retain(|e| !same(e));
    let ms: serde_json::Map<String, Value> = times.iter().map(|(n, t)| (n.to_string(), json!(t))).collect();
    entries.push(json!({ "adapter": key.adapter, "family": key.family, "dtype": key.dtype.wgsl(), "bucket": key.bucket, "variant": variant, "ms": ms }));
    let text = serde_json::to_string_pretty(&json!({ "version": 1, "entries": entries })).unwrap_or_default();
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let res = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::write(&tmp, text))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        log::warn!("could not write the tuning cache {}: {e}", path.display());
    }
}

/// Drops every entry of `adapter` (`vlmc bench --tune` measures afresh).
pub fn clear(path: &Path, adapter: &str) {
    let mut entries = read(path);
    entries.retain(|e| e["adapter"] != adapter);
    let text = serde_json::to_string_pretty(&json!({ "version": 1, "entries": entries })).unwrap_or_default();
    if let Err(e) = std::fs::write(path, text) {
        log::warn!("could not write the tuning cache {}: {e}", path.display());
    }
}
