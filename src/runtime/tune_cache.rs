//! The autotuner's disk cache: one JSON file of measured choices for every adapter this user has
//! tuned on, in the user's cache folder (`dirs::cache_dir()/vlm-connectors/tune.json`: on Linux
//! `$XDG_CACHE_HOME` or `~/.cache`, on macOS `~/Library/Caches`, on Windows `%LOCALAPPDATA%`), or
//! `VLMC_TUNE_CACHE`. An entry is keyed by the adapter's name, backend and driver and by the
//! kernels' source (a hash), so a driver update or a kernel change measures again; entries of
//! other adapters are kept as they are.
//!
//! Writes are read-modify-write under a process-wide lock, through a temporary file unique to the
//! writer and a rename, so a reader never sees half a file; a file that exists but does not parse
//! is left alone (nothing is stored over it), never silently emptied.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use super::tensor::DType;
use super::tune::TuneKey;

/// Environment variable naming the cache file (else the user's cache folder).
pub const TUNE_CACHE_ENV: &str = "VLMC_TUNE_CACHE";
/// Environment variable that turns measuring off (`VLMC_AUTOTUNE=off`).
pub const AUTOTUNE_ENV: &str = "VLMC_AUTOTUNE";

/// Serialises this process's read-modify-write cycles on cache files.
static WRITING: Mutex<()> = Mutex::new(());
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// The default cache file: `VLMC_TUNE_CACHE`, else `<user cache folder>/vlm-connectors/tune.json`.
pub fn default_path() -> Option<PathBuf> {
    match std::env::var_os(TUNE_CACHE_ENV) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => dirs::cache_dir().map(|d| d.join("vlm-connectors").join("tune.json")),
    }
}

/// Whether measuring is on: anything but `VLMC_AUTOTUNE=off` (or `0`, `false`). (On the web the
/// tuner never measures, whatever this says: see `Tuner::with_autotune`.)
pub fn enabled_from_env() -> bool {
    !matches!(std::env::var(AUTOTUNE_ENV).as_deref().map(str::to_ascii_lowercase).as_deref(), Ok("off" | "0" | "false"))
}

/// The entries of the file: `Some(vec![])` when it does not exist, `None` when it exists but
/// cannot be read or parsed (then nothing must be written over it).
fn read(path: &Path) -> Option<Vec<Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Vec::new()),
        Err(_) => return None,
    };
    let v: Value = serde_json::from_str(&text).ok()?;
    v.get("entries").and_then(Value::as_array).cloned()
}

/// The choices stored for `adapter`: (family, dtype, bucket, variant name). A file that is absent
/// or unreadable is an empty cache (the tuner measures again), never an error.
pub fn load(path: &Path, adapter: &str) -> Vec<(String, DType, Vec<u32>, String)> {
    read(path)
        .unwrap_or_default()
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

/// Rewrites the file with `edit` applied to its entries (under the process lock, through a unique
/// temporary file and a rename). Errors are logged, not raised: a cache that cannot be written only
/// means measuring again next time.
fn rewrite(path: &Path, edit: impl FnOnce(&mut Vec<Value>)) {
    let _guard = WRITING.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut entries) = read(path) else {
        log::warn!("the tuning cache {} does not parse; leaving it as it is", path.display());
        return;
    };
    edit(&mut entries);
    let text = serde_json::to_string_pretty(&json!({ "version": 1, "entries": entries })).unwrap_or_default();
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp.{}.{n}", std::process::id()));
    let res = path
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|_| std::fs::write(&tmp, text))
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = res {
        std::fs::remove_file(&tmp).ok();
        log::warn!("could not write the tuning cache {}: {e}", path.display());
    }
}

/// Adds (or replaces) the entry for `key`: its winner and each variant's time in ms.
pub fn store(path: &Path, key: &TuneKey, variant: &str, times: &[(&str, f64)]) {
    rewrite(path, |entries| {
        let same = |e: &Value| {
            e["adapter"] == key.adapter && e["family"] == key.family && e["dtype"] == key.dtype.wgsl() && e["bucket"] == json!(key.bucket)
        };
        entries.retain(|e| !same(e));
        let ms: serde_json::Map<String, Value> = times.iter().map(|(n, t)| (n.to_string(), json!(t))).collect();
        entries.push(
            json!({ "adapter": key.adapter, "family": key.family, "dtype": key.dtype.wgsl(), "bucket": key.bucket, "variant": variant, "ms": ms }),
        );
    });
}

/// Drops every entry of `adapter` (`vlmc bench --tune` measures afresh).
pub fn clear(path: &Path, adapter: &str) {
    rewrite(path, |entries| entries.retain(|e| e["adapter"] != adapter));
}
