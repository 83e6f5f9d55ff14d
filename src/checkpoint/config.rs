//! config.json access with typed, named errors (`Error::Config { field, .. }`).

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::runtime::{Error, Result};

/// A config.json (or a sub-config of it) with its dotted path for error messages. It remembers
/// which optional fields were read but absent (the loaders then use the reference's defaults):
/// [`Config::absent`], shared by its clones and sub-configs.
#[derive(Clone, Debug)]
pub struct Config {
    value: Value,
    path: String,
    absent: Arc<Mutex<BTreeSet<String>>>,
}

impl Config {
    /// Reads and parses a `config.json`. Errors: [`Error::Io`], [`Error::Json`] (not JSON, or not an object).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_str(&text).map_err(|e| match e {
            Error::Config { message, .. } => Error::Json { path: path.to_path_buf(), message },
            other => other,
        })
    }

    /// Parses config JSON text; the top level must be an object ([`Error::Config`] otherwise).
    #[allow(clippy::should_implement_trait)]
    pub fn from_str(text: &str) -> Result<Config> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::config("config.json", e.to_string()))?;
        if !value.is_object() {
            return Err(Error::config("config.json", "top level is not a JSON object"));
        }
        Ok(Config::from_value(value))
    }

    /// Wraps an already-parsed JSON value (e.g. a seed config built with `serde_json::json!`).
    pub fn from_value(value: Value) -> Config {
        Config { value, path: String::new(), absent: Arc::default() }
    }

    /// Dotted names of the optional fields read but absent so far (sorted): where the loaders
    /// used the reference's defaults.
    pub fn absent(&self) -> Vec<String> {
        self.absent.lock().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    /// `raw`, noting an absent field.
    fn read(&self, key: &str) -> Option<&Value> {
        let v = self.raw(key);
        if v.is_none() {
            self.absent.lock().unwrap_or_else(|e| e.into_inner()).insert(self.field(key));
        }
        v
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The whole JSON value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The raw JSON value of `key`, `None` when absent or `null`.
    pub fn raw(&self, key: &str) -> Option<&Value> {
        self.value.get(key).filter(|v| !v.is_null())
    }

    /// Whether `key` is present and not `null`.
    pub fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// A nested object (e.g. `qformer_config`), if present.
    pub fn sub(&self, key: &str) -> Option<Config> {
        self.raw(key).filter(|v| v.is_object()).map(|v| Config { value: v.clone(), path: self.field(key), absent: self.absent.clone() })
    }

    /// The nested object `key`, or an empty one when absent (the reference builds that sub-config
    /// from its defaults, e.g. `Blip2Config(qformer_config=None)`); its fields are then noted absent.
    pub fn sub_or_default(&self, key: &str) -> Config {
        self.sub(key).unwrap_or_else(|| Config {
            value: Value::Object(Default::default()),
            path: self.field(key),
            absent: self.absent.clone(),
        })
    }

    /// The string `key`; [`Error::Config`] naming the dotted field when missing or not a string.
    pub fn str(&self, key: &str) -> Result<String> {
        self.opt_str(key)?.ok_or_else(|| Error::config(self.field(key), "missing"))
    }

    /// The string `key` if present; [`Error::Config`] when it is not a string.
    pub fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.read(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(Error::config(self.field(key), format!("expected a string, got {v}"))),
        }
    }

    /// A positive integer.
    pub fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| Error::config(self.field(key), "missing"))
    }

    /// The positive integer `key` (at most 2^31) if present; [`Error::Config`] otherwise.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        self.integer(key, self.read(key), 1, "a positive integer")
    }

    /// The count `key` (0 ..= 2^31, e.g. a layer count: transformers and OpenFlamingo build zero
    /// layers fine) if present; [`Error::Config`] otherwise.
    pub fn opt_count(&self, key: &str) -> Result<Option<usize>> {
        self.integer(key, self.read(key), 0, "a count (an integer from 0)")
    }

    /// The index `key` (0 ..= 2^31, e.g. `layer_index`) if present; [`Error::Config`] otherwise.
    /// A selection made by the caller, not a model field: its absence is not noted.
    pub fn opt_index(&self, key: &str) -> Result<Option<usize>> {
        self.integer(key, self.raw(key), 0, "an index (an integer from 0)")
    }

    /// `v` as an integer in `min ..= 2^31`, else an error naming the field and `what` it should be.
    fn integer(&self, key: &str, v: Option<&Value>, min: u64, what: &str) -> Result<Option<usize>> {
        match v {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= min && n <= (1 << 31) => Ok(Some(n as usize)),
                _ => Err(Error::config(self.field(key), format!("expected {what}, got {v}"))),
            },
        }
    }

    /// The finite number `key` if present; [`Error::Config`] otherwise.
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.read(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| Error::config(self.field(key), format!("expected a number, got {v}"))),
        }
    }

    /// The boolean `key` if present; [`Error::Config`] otherwise.
    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.read(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(Error::config(self.field(key), format!("expected true/false, got {v}"))),
        }
    }

    /// A list of integer pairs, e.g. `image_grid_pinpoints`.
    pub fn pairs(&self, key: &str) -> Result<Vec<[usize; 2]>> {
        let bad = |v: &Value| Error::config(self.field(key), format!("expected a list of [h, w] pairs, got {v}"));
        let v = self.raw(key).ok_or_else(|| Error::config(self.field(key), "missing"))?;
        let arr = v.as_array().ok_or_else(|| bad(v))?;
        arr.iter()
            .map(|p| match p.as_array().map(|a| a.iter().map(|x| x.as_u64()).collect::<Vec<_>>()) {
                // A zero side is accepted as LlavaNextConfig accepts it; AnyRes refuses it only if chosen.
                Some(a) if a.len() == 2 && a.iter().all(|x| matches!(x, Some(n) if *n < (1 << 31))) => {
                    Ok([a[0].unwrap() as usize, a[1].unwrap() as usize])
                }
                _ => Err(bad(p)),
            })
            .collect()
    }
}
