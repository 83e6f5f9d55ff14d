//! The autotuner: at a shape's first use it times the variants, keeps the fastest in memory and
//! in the disk cache (keyed by adapter and driver), reads the cache back in a new `Gpu`, ignores
//! another adapter's entries, yields to `VLMC_KERNELS`, and reruns stay bit-identical.

use std::path::{Path, PathBuf};

use vlm_connectors::kernels::gemm::record_linear;
use vlm_connectors::kernels::Activation;
use vlm_connectors::runtime::tune::AutotuneSettings;
use vlm_connectors::util::Rng;
use vlm_connectors::{DType, Gpu, GpuOptions, Recorder, Tensor};

fn gpu_with(cache: &Path, enabled: bool, kernels: &str) -> Gpu {
    let autotune = AutotuneSettings { enabled, cache: Some(cache.to_path_buf()) };
    Gpu::new_with(GpuOptions { autotune, kernels: kernels.into(), ..GpuOptions::default() }).unwrap()
}

fn cache_file(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("vlmc-tune-{tag}-{}.json", std::process::id()));
    std::fs::remove_file(&p).ok();
    p
}

/// One GEMM 512×512×512 (2.7e8 FLOPs: past the tuner's threshold); its output.
fn gemm(g: &Gpu) -> Vec<f32> {
    let mut rng = Rng::new(3);
    let x = Tensor::from_slice(g, &rng.vec(512 * 512, 1.0), &[512, 512]).unwrap();
    let w = Tensor::from_slice(g, &rng.vec(512 * 512, 0.05), &[512, 512]).unwrap();
    let mut rec = Recorder::new(g);
    let y = record_linear(&mut rec, &x, &w, None, Activation::Identity, None).unwrap();
    rec.submit().unwrap();
    y.to_vec(g).unwrap()
}

#[test]
fn the_first_use_measures_and_the_cache_carries_the_choice() {
    let path = cache_file("measure");
    let g = gpu_with(&path, true, "");
    let key = g.tuner().key("gemm", DType::F32, &[512, 512, 512]);
    assert!(g.tuner().recorded(&key).is_none());
    let first = gemm(&g);
    let chosen = g.tuner().recorded(&key).expect("measured at first use");
    // The file holds the winner and every variant's time, under this adapter's key.
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let entry = &json["entries"][0];
    assert_eq!(
        (entry["adapter"].as_str(), entry["family"].as_str(), entry["variant"].as_str()),
        (Some(g.tuner().adapter()), Some("gemm"), Some(chosen))
    );
    assert_eq!(entry["ms"].as_object().unwrap().len(), 4, "64, 128, reg and split were timed: {entry}");
    // A new Gpu starts from the cache, without measuring again; a rerun is bit-identical. With
    // autotuning off the built-in plan runs and the cache is not read.
    let g2 = gpu_with(&path, true, "");
    assert_eq!(g2.tuner().recorded(&g2.tuner().key("gemm", DType::F32, &[300, 400, 500])), Some(chosen), "same bucket");
    assert_eq!(gemm(&g2), first);
    let off = gpu_with(&path, false, "");
    assert!(off.tuner().recorded(&key).is_none(), "VLMC_AUTOTUNE=off ignores the cache");
    // A small launch is never measured.
    let g3 = gpu_with(&cache_file("small"), true, "");
    let mut rec = Recorder::new(&g3);
    let x = Tensor::from_slice(&g3, &[0.5; 64], &[8, 8]).unwrap();
    record_linear(&mut rec, &x, &x, None, Activation::Identity, None).unwrap();
    rec.submit().unwrap();
    assert!(g3.tuner().recorded(&g3.tuner().key("gemm", DType::F32, &[8, 8, 8])).is_none());
    std::fs::remove_file(&path).ok();
}

#[test]
fn another_adapters_entries_and_forced_variants() {
    let path = cache_file("other");
    let g = gpu_with(&path, true, "");
    gemm(&g);
    // The same entries under another adapter key (a driver update): not used here.
    let text = std::fs::read_to_string(&path).unwrap().replace(g.tuner().adapter(), "Some GPU | Vulkan | driver 2.0");
    std::fs::write(&path, text).unwrap();
    let g2 = gpu_with(&path, true, "");
    assert!(g2.tuner().recorded(&g2.tuner().key("gemm", DType::F32, &[512, 512, 512])).is_none());
    // VLMC_KERNELS wins over a recorded choice.
    let g3 = gpu_with(&path, true, "gemm=64");
    g3.tuner().record(g3.tuner().key("gemm", DType::F32, &[512, 512, 512]), "reg");
    assert_eq!(g3.tuner().choose("gemm", DType::F32, &[512, 512, 512], "128"), "64");
    // An unreadable cache is an empty one, not an error, and is not written over.
    std::fs::write(&path, "not json").unwrap();
    let g4 = gpu_with(&path, true, "");
    assert!(g4.tuner().recorded(&g4.tuner().key("gemm", DType::F32, &[512, 512, 512])).is_none());
    gemm(&g4);
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "not json");
    std::fs::remove_file(&path).ok();
}

#[test]
fn concurrent_writers_keep_every_entry() {
    use vlm_connectors::runtime::tune::TuneKey;
    use vlm_connectors::runtime::tune_cache;
    let path = cache_file("threads");
    let handles: Vec<_> = (0..8u32)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let key = TuneKey { adapter: "A".into(), family: "gemm", dtype: DType::F32, bucket: vec![i, i, i] };
                tune_cache::store(&path, &key, "64", &[("64", 1.0), ("128", 2.0)]);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(tune_cache::load(&path, "A").len(), 8);
    tune_cache::clear(&path, "A");
    assert!(tune_cache::load(&path, "A").is_empty());
    std::fs::remove_file(&path).ok();
}
