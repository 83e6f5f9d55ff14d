//! The seams every later change lands in: the kernel registry and its pipeline cache, the tuner,
//! launch costs, dtype checks at launch, seeded random weights, and the model registry.

mod common;

use std::sync::{Arc, Barrier};

use common::*;
use vlm_connectors::checkpoint::{Config, WeightSource};
use vlm_connectors::connectors::{registry, Connector, LlavaProjector, QFormer};
use vlm_connectors::internal::bench::seed;
use vlm_connectors::kernels::attention::{record_attention, AttnOpts, Heads};
use vlm_connectors::kernels::gemm::record_linear;
use vlm_connectors::kernels::layernorm::record_layernorm;
use vlm_connectors::kernels::Activation;
use vlm_connectors::{DType, Error, Gpu, GpuOptions, Recorder, Tensor};

fn up(g: &Gpu, shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_slice(g, &(0..n).map(|i| (i % 7) as f32 * 0.1).collect::<Vec<_>>(), shape).unwrap()
}

#[test]
fn a_pipeline_is_compiled_once_even_when_threads_race_for_it() {
    let g = Arc::new(Gpu::new().unwrap());
    let threads = 8;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (g, barrier) = (g.clone(), barrier.clone());
            std::thread::spawn(move || {
                let q = up(&g, &[1, 9, 16]);
                barrier.wait(); // all ask at once for the attention kernel, the slowest to compile
                let mut rec = Recorder::new(&g);
                record_attention(&mut rec, Heads::all(&q), Heads::all(&q), Heads::all(&q), 2, 8, 0.3, AttnOpts::default(), None).unwrap();
                rec.submit().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(g.cached_pipelines(), 1, "eight threads asked for one pipeline");
    // and a second kernel is one more compile
    let (x, w) = (up(&g, &[3, 40]), up(&g, &[40]));
    record_layernorm(&mut Recorder::new(&g), &x, None, &w, &w, 1e-5).unwrap();
    assert_eq!(g.cached_pipelines(), 2);
}

#[test]
fn vlmc_kernels_forces_a_variant_and_rejects_unknown_ones() {
    let g = Gpu::new_with(GpuOptions { kernels: "gemm=reg, attention=q8".into(), ..Default::default() }).unwrap();
    let mut rec = Recorder::new(&g);
    let (x, w, q) = (up(&g, &[200, 16]), up(&g, &[200, 16]), up(&g, &[1, 32, 16]));
    record_linear(&mut rec, &x, &w, None, Activation::Identity, None).unwrap();
    record_attention(&mut rec, Heads::all(&q), Heads::all(&q), Heads::all(&q), 2, 8, 0.3, AttnOpts::default(), None).unwrap();
    assert_eq!(rec.labels(), ["gemm_reg", "attention_q8"], "the plan would pick gemm_128 and attention (v2)");
    // Without forcing or tuning, the plan for a large GPU: 128 tiles at M, N ≥ 128; split-K where
    // the tiles are few and K deep; q8 only while its grid has ≥ 264 workgroups, else v2.
    let autotune = vlm_connectors::runtime::tune::AutotuneSettings { enabled: false, cache: None };
    let g = Gpu::new_with(GpuOptions { kernels: String::new(), autotune, ..Default::default() }).unwrap();
    let mut rec = Recorder::new(&g);
    record_linear(&mut rec, &up(&g, &[200, 16]), &up(&g, &[200, 16]), None, Activation::Identity, None).unwrap();
    record_linear(&mut rec, &up(&g, &[7, 16]), &up(&g, &[200, 16]), None, Activation::Identity, None).unwrap();
    record_linear(&mut rec, &up(&g, &[32, 768]), &up(&g, &[768, 768]), None, Activation::Identity, None).unwrap();
    let (q7, q8) = (up(&g, &[1, 7, 16]), up(&g, &[1, 8, 16]));
    record_attention(&mut rec, Heads::all(&q7), Heads::all(&q7), Heads::all(&q7), 2, 8, 0.3, AttnOpts::default(), None).unwrap();
    record_attention(&mut rec, Heads::all(&q8), Heads::all(&q8), Heads::all(&q8), 2, 8, 0.3, AttnOpts::default(), None).unwrap();
    let wide = up(&g, &[2, 1024, 16]); // 128 blocks of 8 rows × 2 heads × 2 = 512 workgroups
    record_attention(&mut rec, Heads::all(&wide), Heads::all(&wide), Heads::all(&wide), 2, 8, 0.3, AttnOpts::default(), None).unwrap();
    assert_eq!(rec.labels(), ["gemm_128", "gemm", "gemm_split", "gemm_reduce", "attention", "attention", "attention_q8"]);
    for bad in ["gemm=256", "conv=1", "gemm"] {
        let e = Gpu::new_with(GpuOptions { kernels: bad.into(), ..Default::default() }).err().unwrap().to_string();
        assert!(e.contains("VLMC_KERNELS") && e.contains(bad), "{bad}: {e}");
    }
}

#[test]
fn launches_add_up_their_cost() {
    let g = gpu();
    let mut rec = Recorder::new(g);
    let (m, k, n) = (5, 7, 9);
    record_linear(&mut rec, &up(g, &[m, k]), &up(g, &[n, k]), None, Activation::Identity, None).unwrap();
    let c = rec.cost();
    assert_eq!(c.flops, 2 * (m * k * n) as u64);
    assert_eq!(c.bytes, 4 * (m * k + n * k + m * n) as u64);
    // A connector's cost is the sum of its launches: the LLaVA-1.5 projector is two GEMMs.
    let proj = seed::llava(g, vlm_connectors::DType::F32).unwrap();
    let mut rec = Recorder::new(g);
    let x = Tensor::from_slice(g, &vec![0.0; 576 * 1024], &[1, 576, 1024]).unwrap();
    proj.record(&mut rec, &registry::Inputs::new().with_tensor("image_features", x)).unwrap();
    assert_eq!(rec.cost().flops, 2 * 576 * (1024 * 4096 + 4096 * 4096));
    // bytes: each GEMM reads x, W and the bias and writes y
    let gemm_bytes = |k: u64, n: u64| 4 * (576 * k + n * k + 576 * n + n);
    assert_eq!(rec.cost().bytes, gemm_bytes(1024, 4096) + gemm_bytes(4096, 4096));
    assert_eq!(rec.labels().len(), 2);
}

#[test]
fn a_tensor_of_the_wrong_dtype_is_refused_at_launch() {
    let g = gpu();
    let p = LlavaProjector::from_dir(g, case_dir("llava_tiny")).unwrap();
    let x = Tensor::from_u32(g, &vec![1; 2 * 36 * 64], &[2, 36, 64]).unwrap();
    let e = p.forward(&mut Recorder::new(g), &x).unwrap_err();
    assert!(matches!(e, Error::DType { .. }), "{e}");
    let e = e.to_string();
    assert!(e.contains("image_features") && e.contains("U32"), "{e}");
    // and at the kernel itself, by binding
    let mut rec = Recorder::new(g);
    let e = record_linear(&mut rec, &x, &up(g, &[8, 64]), None, Activation::Identity, None).unwrap_err().to_string();
    assert!(e.contains("gemm.x") && e.contains("U32"), "{e}");
    // f16 weights with an f32 input: an error naming the kernel's binding and both dtypes.
    let ws = WeightSource::open_dir(case_dir("llava_tiny")).unwrap().with_dtype(DType::F16).unwrap();
    let cfg = Config::from_file(case_dir("llava_tiny").join("config.json")).unwrap();
    let p = LlavaProjector::load(g, &cfg, &ws).unwrap();
    let x = Tensor::from_host(g, &vec![0.5; 2 * 36 * 64], &[2, 36, 64], DType::F32).unwrap();
    let e = p.forward(&mut Recorder::new(g), &x).unwrap_err().to_string();
    assert!(e.contains("gemm.w") && e.contains("F16") && e.contains("F32"), "{e}");
    assert!(WeightSource::random(1).with_dtype(DType::U32).is_err());
}

#[test]
fn f16_tensors_round_trip_through_the_gpu() {
    let g = gpu();
    let v: Vec<f32> = (0..7).map(|i| i as f32 * 0.25 - 1.0).collect(); // odd length: padded upload
    let t = Tensor::from_host(g, &v, &[7], DType::F16).unwrap();
    assert_eq!((t.dtype(), t.byte_len()), (DType::F16, 14));
    assert_eq!(t.to_vec(g).unwrap(), v);
}

#[test]
fn every_golden_config_loads_with_random_weights_and_runs_at_its_shapes() {
    // WeightSource::random answers any name at the shape asked: every loader must get its shapes
    // from the config alone, as benchmarks do.
    let g = gpu();
    let mut seen = 0;
    for case in cases("").into_iter().filter(|c| case_dir(c).join("config.json").exists()) {
        let cfg = Config::from_file(case_dir(&case).join("config.json")).unwrap();
        let c = Connector::load(g, &cfg, Some(&WeightSource::random(7))).unwrap_or_else(|e| panic!("{case}: {e}"));
        let outs = c.run(g, &inputs(&case)).unwrap_or_else(|e| panic!("{case}: {e}"));
        let want = expected(&case);
        for o in &outs {
            if let Some(shape) = want.shape(&o.name) {
                assert_eq!(o.shape, shape, "{case}/{}", o.name);
            }
            assert!(o.data.iter().all(|v| v.is_finite()), "{case}/{}", o.name);
        }
        seen += 1;
    }
    assert!(seen >= 15, "only {seen} golden cases");
}

#[test]
fn the_model_registry_names_every_type_and_the_class_to_use() {
    let e = Connector::load(gpu(), &Config::from_str(r#"{"model_type": "kosmos-2"}"#).unwrap(), None).unwrap_err().to_string();
    for entry in registry::MODELS {
        for t in entry.model_types {
            assert!(e.contains(t), "{t} missing from: {e}");
        }
    }
    let e = LlavaProjector::from_dir(gpu(), case_dir("blip2_tiny")).err().unwrap().to_string();
    assert!(e.contains("blip-2") && e.contains("QFormer::from_dir"), "{e}");
    assert!(QFormer::from_dir(gpu(), case_dir("blip2_tiny")).is_ok());
    // The projector of a LLaVA-NeXT checkpoint loads on its own, as before the registry.
    assert_eq!(LlavaProjector::from_dir(gpu(), case_dir("llava_next_square")).unwrap().depth(), 2);
}
