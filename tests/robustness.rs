//! Threads, determinism, memory over many forwards, and non-finite inputs.

mod common;
use common::*;

use vlm_connectors::connectors::{Connector, LlavaProjector, QFormer};
use vlm_connectors::{Gpu, Recorder, Tensor};

fn assert_send_sync<T: Send + Sync>() {}

#[test]
fn context_and_connectors_are_send_and_sync() {
    assert_send_sync::<Gpu>();
    assert_send_sync::<Tensor>();
    assert_send_sync::<Connector>();
    assert_send_sync::<LlavaProjector>();
    assert_send_sync::<QFormer>();
}

fn qformer_forward(g: &Gpu, q: &QFormer, x: &[f32], shape: &[usize]) -> Vec<f32> {
    let t = Tensor::from_slice(g, x, shape).unwrap();
    let mut rec = Recorder::new(g);
    let (_, y) = q.forward(&mut rec, &t).unwrap();
    rec.submit().unwrap();
    y.to_vec(g).unwrap()
}

#[test]
fn forwards_from_several_threads_match_serial_ones_bit_for_bit() {
    let g = gpu();
    let q = QFormer::from_dir(g, case_dir("blip2_tiny")).unwrap();
    let x = inputs("blip2_tiny").get_any("image_embeds").unwrap();
    let serial = qformer_forward(g, &q, &x.data, &x.shape);
    std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..4).map(|_| s.spawn(|| (0..5).map(|_| qformer_forward(g, &q, &x.data, &x.shape)).collect::<Vec<_>>())).collect();
        for h in handles {
            for out in h.join().unwrap() {
                assert_eq!(out, serial, "a threaded forward differs from the serial one");
            }
        }
    });
}

#[test]
fn the_same_input_gives_bit_identical_output_every_run() {
    let g = gpu();
    for case in ["llava_tiny", "perceiver_video", "gated_xattn_tiny", "tome_cls"] {
        let c = Connector::from_dir(g, case_dir(case)).unwrap();
        let first = c.run(g, &inputs(case)).unwrap();
        for _ in 0..3 {
            let again = c.run(g, &inputs(case)).unwrap();
            for (a, b) in first.iter().zip(&again) {
                assert_eq!(a.data, b.data, "{case}/{} is not deterministic", a.name);
            }
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * 4)
        .unwrap_or(0)
}

#[test]
fn memory_stays_flat_over_thousands_of_forwards() {
    // Its own GPU, so the pool counts only this test's buffers.
    let g = Gpu::new().unwrap();
    let p = LlavaProjector::from_dir(&g, case_dir("llava_tiny")).unwrap();
    let x = inputs("llava_tiny").get_any("image_features").unwrap();
    let xt = Tensor::from_slice(&g, &x.data, &x.shape).unwrap();
    let forward = || {
        let mut rec = Recorder::new(&g);
        let y = p.forward(&mut rec, &xt).unwrap();
        rec.submit().unwrap();
        y
    };
    for _ in 0..50 {
        forward();
    }
    forward().to_vec(&g).unwrap(); // the read-back staging buffer is pooled too
    g.wait().unwrap();
    let (pool0, rss0) = (g.pool_stats().0, rss_kib());
    let n = 2000;
    for i in 0..n {
        let y = forward();
        if i % 500 == 0 {
            g.wait().unwrap();
            drop(y);
        }
    }
    let last = forward().to_vec(&g).unwrap();
    let (pool1, rss1) = (g.pool_stats().0, rss_kib());
    eprintln!("soak: {n} forwards, pool {pool0} → {pool1} bytes, RSS {rss0} → {rss1} KiB");
    assert_eq!(pool0, pool1, "the buffer pool grew over {n} forwards");
    assert!(rss1 < rss0 + 64 * 1024, "RSS grew by {} KiB over {n} forwards", rss1 - rss0);
    assert_close("soak output", &last, &expected("llava_tiny").get_any("output").unwrap().data, 1e-5);
}

#[test]
fn nan_and_inf_inputs_propagate_like_pytorch() {
    // A NaN feature poisons its own token's row (through the matmul), and nothing else; no hang.
    let g = gpu();
    let p = LlavaProjector::from_dir(g, case_dir("llava_tiny")).unwrap();
    let mut x = inputs("llava_tiny").get_any("image_features").unwrap();
    let c = x.shape[2];
    x.data[3 * c + 5] = f32::NAN; // token 3 of image 0
    x.data[7 * c] = f32::INFINITY; // token 7 of image 0
    let (y, shape) = p.run(g, &x.data, &x.shape).unwrap();
    let out_c = shape[2];
    for (row, chunk) in y.chunks(out_c).enumerate() {
        let poisoned = row == 3 || row == 7;
        assert_eq!(chunk.iter().any(|v| !v.is_finite()), poisoned, "row {row}");
    }
}

#[test]
fn a_lost_device_is_an_error_and_a_new_context_works() {
    let g = Gpu::new().unwrap();
    let p = LlavaProjector::from_dir(&g, case_dir("llava_tiny")).unwrap();
    let x = inputs("llava_tiny").get_any("image_features").unwrap();
    g.device().destroy(); // what a driver reset looks like to wgpu
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.run(&g, &x.data, &x.shape)));
    match r {
        Ok(Err(e)) => eprintln!("after device loss: {e}"),
        Ok(Ok(_)) => panic!("a forward on a destroyed device succeeded"),
        Err(_) => panic!("a forward on a destroyed device panicked"),
    }
    // rebuild: a fresh context runs again
    let g2 = Gpu::new().unwrap();
    let p2 = LlavaProjector::from_dir(&g2, case_dir("llava_tiny")).unwrap();
    let (y, _) = p2.run(&g2, &x.data, &x.shape).unwrap();
    assert_close("after rebuild", &y, &expected("llava_tiny").get_any("output").unwrap().data, 1e-5);
}

#[test]
fn a_caller_owned_device_works_and_pipelines_are_built_once() {
    // A device and queue the application already has (say, its renderer's).
    let adapters = vlm_connectors::runtime::enumerate_adapters(wgpu::Backends::VULKAN | wgpu::Backends::GL);
    let adapter = adapters.into_iter().next().expect("an adapter");
    let info = adapter.get_info();
    let (device, queue) =
        pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor { required_limits: adapter.limits(), ..Default::default() }))
            .unwrap();
    let g = Gpu::from_device(device, queue, info).unwrap();
    let p = LlavaProjector::from_dir(&g, case_dir("llava_tiny")).unwrap();
    let x = inputs("llava_tiny").get_any("image_features").unwrap();
    let want = expected("llava_tiny").get_any("output").unwrap().data;
    let (y, _) = p.run(&g, &x.data, &x.shape).unwrap();
    assert_close("caller-owned device", &y, &want, 1e-5);
    let compiled = g.cached_pipelines();
    assert!(compiled >= 1);
    for _ in 0..3 {
        p.run(&g, &x.data, &x.shape).unwrap();
    }
    assert_eq!(g.cached_pipelines(), compiled, "pipelines must be compiled once, not per forward");
}
