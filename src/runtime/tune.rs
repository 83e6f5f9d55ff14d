//! The tuner seam: which variant of a kernel family runs, per (adapter + driver, family, dtype,
//! shape bucket).
//!
//! A choice is, in order: the variant a caller passes (tests sweep every variant this way); the one
//! `VLMC_KERNELS` forces (`VLMC_KERNELS=gemm=reg,attention=q8`); one recorded for this key (read
//! from the disk cache when the `Gpu` is made, or measured: [`Tuner::record`]); else, when
//! autotuning is on and the launch is big enough to time, the fastest variant measured now
//! (`kernels::choose`), stored in memory and on disk; else the family's heuristic.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::error::{Error, Result};
use super::tensor::DType;

/// Where a tuned choice applies.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TuneKey {
    /// Adapter name, backend and driver (a driver update can change the winner).
    pub adapter: String,
    /// Kernel family (`gemm`, `attention`).
    pub family: &'static str,
    /// Compute dtype.
    pub dtype: DType,
    /// log2 of each dimension rounded up to a power of two.
    pub bucket: Vec<u32>,
}

/// The shape bucket of `shape`: ⌈log2⌉ per dimension, so 577 and 1000 share a bucket.
pub fn bucket(shape: &[usize]) -> Vec<u32> {
    shape.iter().map(|&d| d.max(1).next_power_of_two().trailing_zeros()).collect()
}

/// Per-`Gpu` kernel choices.
#[derive(Debug, Default)]
pub struct Tuner {
    adapter: String,
    forced: HashMap<String, String>,
    recorded: Mutex<HashMap<TuneKey, &'static str>>,
    /// Whether to measure at first use (`VLMC_AUTOTUNE`, on by default).
    autotune: bool,
    /// Where measured choices are kept between runs (none: in memory only).
    cache: Option<PathBuf>,
}

/// How the tuner measures and where it keeps what it measured.
#[derive(Clone, Debug)]
pub struct AutotuneSettings {
    /// Measure the variants at a shape's first use and use the cache (`VLMC_AUTOTUNE=off` turns
    /// both off: the built-in plan runs).
    pub enabled: bool,
    /// The cache file (`VLMC_TUNE_CACHE`, else the user's cache folder); `None` keeps nothing.
    pub cache: Option<PathBuf>,
}

impl Default for AutotuneSettings {
    fn default() -> AutotuneSettings {
        AutotuneSettings { enabled: super::tune_cache::enabled_from_env(), cache: super::tune_cache::default_path() }
    }
}

/// The environment variable that forces variants.
pub const KERNELS_ENV: &str = "VLMC_KERNELS";

impl Tuner {
    /// A tuner for `adapter` with the forced choices of `spec` (`family=variant,...`; empty for
    /// none). `families` lists each family's variant names; anything else in `spec` is an error
    /// naming `VLMC_KERNELS`, the entry and the known choices.
    pub fn new(adapter: String, spec: &str, families: &[(&'static str, &'static [&'static str])]) -> Result<Tuner> {
        Self::with_autotune(adapter, spec, families, AutotuneSettings { enabled: false, cache: None })
    }

    /// [`Tuner::new`] that also measures (per `autotune`) and starts from the choices the disk cache
    /// holds for this adapter; entries naming unknown families or variants are skipped.
    pub fn with_autotune(
        adapter: String,
        spec: &str,
        families: &[(&'static str, &'static [&'static str])],
        autotune: AutotuneSettings,
    ) -> Result<Tuner> {
        let mut forced = HashMap::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let known_families = || families.iter().map(|(f, _)| *f).collect::<Vec<_>>().join(", ");
            let (fam, var) = entry.split_once('=').ok_or_else(|| {
                Error::config(KERNELS_ENV, format!("`{entry}`: expected family=variant (families: {})", known_families()))
            })?;
            let (fam, var) = (fam.trim(), var.trim());
            let (_, variants) = families
                .iter()
                .find(|(f, _)| *f == fam)
                .ok_or_else(|| Error::config(KERNELS_ENV, format!("`{entry}`: unknown family `{fam}` (families: {})", known_families())))?;
            if !variants.contains(&var) {
                return Err(Error::config(
                    KERNELS_ENV,
                    format!("`{entry}`: `{fam}` has no variant `{var}` (variants: {})", variants.join(", ")),
                ));
            }
            if forced.insert(fam.to_string(), var.to_string()).is_some() {
                return Err(Error::config(KERNELS_ENV, format!("`{entry}`: family `{fam}` is forced twice")));
            }
        }
        // With measuring off the built-in plan runs: the cache is neither read nor written. Never
        // on the web: measuring waits for the GPU, which the browser's thread cannot.
        let enabled = autotune.enabled && !cfg!(target_arch = "wasm32");
        let cache = autotune.cache.filter(|_| enabled);
        let mut recorded = HashMap::new();
        for (fam, dtype, bucket, var) in cache.as_deref().map(|p| super::tune_cache::load(p, &adapter)).unwrap_or_default() {
            let known = families.iter().find(|(f, _)| *f == fam).and_then(|(f, vs)| Some((*f, *vs.iter().find(|v| **v == var)?)));
            if let Some((family, variant)) = known {
                recorded.insert(TuneKey { adapter: adapter.clone(), family, dtype, bucket }, variant);
            }
        }
        Ok(Tuner { adapter, forced, recorded: Mutex::new(recorded), autotune: enabled, cache })
    }

    /// Whether variants are measured at a shape's first use.
    pub fn autotune(&self) -> bool {
        self.autotune
    }

    /// Records a measured winner for `key` and writes it, with every variant's time, to the cache.
    pub fn record_measured(&self, key: TuneKey, variant: &'static str, times: &[(&str, f64)]) {
        if let Some(path) = &self.cache {
            super::tune_cache::store(path, &key, variant, times);
        }
        self.record(key, variant);
    }

    /// Forgets every choice for this adapter, in memory and in the cache (to measure afresh).
    pub fn clear(&self) {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).clear();
        if let Some(path) = &self.cache {
            super::tune_cache::clear(path, &self.adapter);
        }
    }

    /// The adapter key choices are stored under (name | backend | driver).
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// The key a choice for `family` at `shape` in `dtype` is stored under.
    pub fn key(&self, family: &'static str, dtype: DType, shape: &[usize]) -> TuneKey {
        TuneKey { adapter: self.adapter.clone(), family, dtype, bucket: bucket(shape) }
    }

    /// The variant `VLMC_KERNELS` forces for `family`, if any.
    pub fn forced(&self, family: &str) -> Option<&str> {
        self.forced.get(family).map(String::as_str)
    }

    /// Records `variant` as the choice for `key` (for the measuring tuner and its disk cache).
    pub fn record(&self, key: TuneKey, variant: &'static str) {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).insert(key, variant);
    }

    /// The variant recorded for `key`, if any.
    pub fn recorded(&self, key: &TuneKey) -> Option<&'static str> {
        self.recorded.lock().unwrap_or_else(|e| e.into_inner()).get(key).copied()
    }

    /// The variant name to run: forced, else recorded for this key, else `heuristic`.
    pub fn choose(&self, family: &'static str, dtype: DType, shape: &[usize], heuristic: &'static str) -> &str {
        if let Some(f) = self.forced(family) {
            return f;
        }
        self.recorded(&self.key(family, dtype, shape)).unwrap_or(heuristic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAMS: &[(&str, &[&str])] = &[("gemm", &["64", "128", "reg"]), ("attention", &["v2", "q8"])];

    #[test]
    fn spec_parses_and_rejects_unknowns() {
        let t = Tuner::new("a".into(), "gemm=reg, attention=q8", FAMS).unwrap();
        assert_eq!(t.forced("gemm"), Some("reg"));
        assert_eq!(t.choose("attention", DType::F32, &[1], "v2"), "q8");
        for bad in ["gemm", "conv=1", "gemm=256", "gemm=64,gemm=reg"] {
            let e = Tuner::new("a".into(), bad, FAMS).unwrap_err().to_string();
            assert!(e.contains("VLMC_KERNELS") && e.contains(bad.split('=').next_back().unwrap()), "{bad}: {e}");
        }
    }

    #[test]
    fn recorded_choice_beats_heuristic_within_its_bucket() {
        let t = Tuner::new("a".into(), "", FAMS).unwrap();
        assert_eq!(t.choose("gemm", DType::F32, &[577, 1024, 4096], "128"), "128");
        t.record(t.key("gemm", DType::F32, &[600, 1024, 4096]), "reg");
        assert_eq!(t.choose("gemm", DType::F32, &[577, 1024, 4096], "128"), "reg");
        assert_eq!(t.choose("gemm", DType::F32, &[257, 1024, 4096], "128"), "128");
        assert_eq!(t.choose("gemm", DType::F16, &[577, 1024, 4096], "128"), "128");
    }
}
