//! [`GpuOptions`]: how `Gpu::new_with` picks an adapter and sets up the tuner.

use super::tune::{AutotuneSettings, KERNELS_ENV};

/// Options for [`Gpu::new_with`](super::Gpu::new_with). `Default` reads wgpu's environment variables.
#[derive(Clone, Debug)]
pub struct GpuOptions {
    /// Backends to search (`WGPU_BACKEND`).
    pub backends: wgpu::Backends,
    /// Discrete vs integrated preference (`WGPU_POWER_PREF`).
    pub power_preference: wgpu::PowerPreference,
    /// Substring of the adapter name to pick (`WGPU_ADAPTER_NAME`).
    pub adapter_name: Option<String>,
    /// Cap `max_storage_buffer_binding_size` below the adapter's (tests use this to force the
    /// paths that split big weights).
    pub cap_storage_binding: Option<u32>,
    /// Cap `max_compute_workgroups_per_dimension` (tests use this to reach the grid limits).
    pub cap_workgroups_per_dimension: Option<u32>,
    /// Forced kernel variants, `family=variant,...` (`VLMC_KERNELS`; see `runtime::tune`).
    pub kernels: String,
    /// Measuring at first use and the disk cache (`VLMC_AUTOTUNE`, `VLMC_TUNE_CACHE`).
    pub autotune: AutotuneSettings,
    /// Use cooperative matrices (wgpu's experimental feature) where the adapter offers a
    /// configuration the GEMM kernels fit; `VLMC_COOP=off` turns it off.
    pub cooperative_matrix: bool,
}

impl Default for GpuOptions {
    fn default() -> Self {
        GpuOptions {
            backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
            power_preference: wgpu::PowerPreference::from_env().unwrap_or(wgpu::PowerPreference::HighPerformance),
            adapter_name: std::env::var("WGPU_ADAPTER_NAME").ok().filter(|s| !s.is_empty()),
            cap_storage_binding: None,
            cap_workgroups_per_dimension: None,
            kernels: std::env::var(KERNELS_ENV).unwrap_or_default(),
            autotune: AutotuneSettings::default(),
            cooperative_matrix: std::env::var("VLMC_COOP")
                .map_or(true, |v| !matches!(v.trim().to_ascii_lowercase().as_str(), "off" | "0" | "false" | "no")),
        }
    }
}
