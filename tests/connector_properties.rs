//! Connector-level property tests: random shapes and random weights are written as a real checkpoint
//! folder (config.json + safetensors under the reference's key names), loaded through the library,
//! and compared with a CPU reference composed from the kernels' CPU references, written after the
//! PyTorch modules. PROPTEST_CASES raises the case count. Widths start at 4: a LayerNorm over two
//! values outputs ±1 by the sign of their difference, so float32 rounding of nearly equal inputs
//! flips outputs wholesale (ill-conditioned, not a kernel error). Outputs have at least 16 values
//! (a relative L2 over one value near zero measures cancellation, not correctness).

mod common;
use common::gpu;

use std::path::PathBuf;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use vlm_connectors::checkpoint::{save_f32, WeightSource};
use vlm_connectors::connectors::Connector;
use vlm_connectors::kernels::attention::{attention_cpu, media_ranges_cpu};
use vlm_connectors::kernels::gemm::linear_cpu;
use vlm_connectors::kernels::layernorm::layernorm_cpu;
use vlm_connectors::kernels::{rel_l2, Activation};
use vlm_connectors::util::Rng;

/// A fixed seed, so CI replays the same cases; VLMC_PROPTEST_SEED explores others.
fn seed() -> RngSeed {
    RngSeed::Fixed(std::env::var("VLMC_PROPTEST_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0x5eed_c0de))
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).map(|c: u32| (c / 8).max(4)).unwrap_or(6)
}

/// Host tensors by name, written as a checkpoint folder.
struct Ckpt {
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    rng: Rng,
}

impl Ckpt {
    fn new(seed: u64) -> Ckpt {
        Ckpt { tensors: vec![], rng: Rng::new(seed) }
    }
    /// A random tensor (magnitude `s`) stored under `name`; returns its data.
    fn add(&mut self, name: &str, shape: &[usize], s: f32) -> Vec<f32> {
        let d = self.rng.vec(shape.iter().product(), s);
        self.tensors.push((name.to_string(), shape.to_vec(), d.clone()));
        d
    }
    /// LayerNorm weight near 1 and bias near 0.
    fn ln(&mut self, prefix: &str, dim: usize) -> (Vec<f32>, Vec<f32>) {
        let w: Vec<f32> = self.rng.vec(dim, 0.2).iter().map(|v| 1.0 + v).collect();
        self.tensors.push((format!("{prefix}.weight"), vec![dim], w.clone()));
        (w, self.add(&format!("{prefix}.bias"), &[dim], 0.2))
    }
    fn write(&self, config: serde_json::Value, tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("vlmc-prop-{}-{tag}-{}", std::process::id(), self.rng.clone().next_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
        let views: Vec<(&str, &[usize], &[f32])> = self.tensors.iter().map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())).collect();
        save_f32(dir.join("model.safetensors"), &views).unwrap();
        dir
    }
}

/// Runs the connector in `dir` on `inputs` (written as a safetensors file) and returns `output`.
fn run(dir: &PathBuf, inputs: &[(&str, &[usize], &[f32])]) -> Vec<f32> {
    let g = gpu();
    let c = Connector::from_dir(g, dir).unwrap();
    save_f32(dir.join("inputs.safetensors"), inputs).unwrap();
    let outs = c.run(g, &WeightSource::open_file(dir.join("inputs.safetensors")).unwrap()).unwrap();
    std::fs::remove_dir_all(dir).ok();
    outs.into_iter().find(|o| o.name == "output").unwrap().data
}

fn lin(x: &[f32], w: &[f32], b: Option<&[f32]>, k: usize, n: usize, act: Activation) -> Vec<f32> {
    linear_cpu(x, w, b, x.len() / k, k, n, act, None)
}

fn add(a: &[f32], b: &[f32], alpha: f32) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + alpha * y).collect()
}

/// The CPU attention on [b, lq, inner] queries and [b, lk, 2·inner] stacked K/V.
fn attn(q: &[f32], kv: &[f32], b: usize, lq: usize, lk: usize, heads: usize, d: usize, ranges: Option<&[u32]>) -> Vec<f32> {
    let inner = heads * d;
    let (mut k, mut v) = (vec![], vec![]);
    for row in kv.chunks(2 * inner) {
        k.extend_from_slice(&row[..inner]);
        v.extend_from_slice(&row[inner..]);
    }
    attention_cpu(q, &k, &v, b, lq, lk, heads, d, 1.0 / (d as f32).sqrt(), None, ranges)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, rng_seed: seed(), ..ProptestConfig::default() })]

    #[test]
    fn llava_projector_matches_cpu(b in 1usize..3, n in 1usize..70, vis in 1usize..70, txt in 1usize..70, act in 0usize..6, bias: bool, seed: u64) {
        let act_name = ["linear", "gelu", "gelu_pytorch_tanh", "quick_gelu", "relu", "silu"][act];
        let mut c = Ckpt::new(seed);
        let w1 = c.add("multi_modal_projector.linear_1.weight", &[txt, vis], 0.5);
        let b1 = bias.then(|| c.add("multi_modal_projector.linear_1.bias", &[txt], 0.5));
        let w2 = c.add("multi_modal_projector.linear_2.weight", &[txt, txt], 0.5);
        let b2 = bias.then(|| c.add("multi_modal_projector.linear_2.bias", &[txt], 0.5));
        let dir = c.write(serde_json::json!({"model_type": "llava", "projector_hidden_act": act_name, "multimodal_projector_bias": bias}), "llava");
        let x = Rng::new(seed ^ 1).vec(b * n * vis, 2.0);
        let got = run(&dir, &[("image_features", &[b, n, vis], &x)]);
        let a = Activation::from_name(act_name).unwrap();
        let h = lin(&x, &w1, b1.as_deref(), vis, txt, a);
        let want = lin(&h, &w2, b2.as_deref(), txt, txt, Activation::Identity);
        let e = rel_l2(&got, &want);
        prop_assert!(e < 1e-5, "llava b{b} n{n} {vis}->{txt} {act_name}: {e:e}");
    }

    #[test]
    fn qformer_matches_cpu(b in 1usize..3, n in 1usize..40, q in 2usize..9, heads in 1usize..4, d in 1usize..17, layers in 1usize..4, freq in 1usize..3, c_vis in 1usize..40, txt in 8usize..30, seed: u64) {
        let h = heads * d;
        let inter = 2 * h + 1;
        let eps = 1e-12f32;
        let mut c = Ckpt::new(seed);
        let qt = c.add("query_tokens", &[1, q, h], 1.0);
        let (lnw, lnb) = c.ln("qformer.layernorm", h);
        struct Blk { q: Vec<f32>, qb: Vec<f32>, k: Vec<f32>, kb: Vec<f32>, v: Vec<f32>, vb: Vec<f32>, o: Vec<f32>, ob: Vec<f32>, lw: Vec<f32>, lb: Vec<f32> }
        let blk = |c: &mut Ckpt, p: &str, kvd: usize| Blk {
            q: c.add(&format!("{p}.attention.query.weight"), &[h, h], 0.4), qb: c.add(&format!("{p}.attention.query.bias"), &[h], 0.2),
            k: c.add(&format!("{p}.attention.key.weight"), &[h, kvd], 0.4), kb: c.add(&format!("{p}.attention.key.bias"), &[h], 0.2),
            v: c.add(&format!("{p}.attention.value.weight"), &[h, kvd], 0.4), vb: c.add(&format!("{p}.attention.value.bias"), &[h], 0.2),
            o: c.add(&format!("{p}.output.dense.weight"), &[h, h], 0.4), ob: c.add(&format!("{p}.output.dense.bias"), &[h], 0.2),
            lw: c.ln(&format!("{p}.output.LayerNorm"), h).0, lb: c.tensors.last().unwrap().2.clone(),
        };
        let mut layer_w = vec![];
        for i in 0..layers {
            let s = blk(&mut c, &format!("qformer.encoder.layer.{i}.attention"), h);
            let x = (i % freq == 0).then(|| blk(&mut c, &format!("qformer.encoder.layer.{i}.crossattention"), c_vis));
            let iw = c.add(&format!("qformer.encoder.layer.{i}.intermediate_query.dense.weight"), &[inter, h], 0.4);
            let ib = c.add(&format!("qformer.encoder.layer.{i}.intermediate_query.dense.bias"), &[inter], 0.2);
            let ow = c.add(&format!("qformer.encoder.layer.{i}.output_query.dense.weight"), &[h, inter], 0.4);
            let ob = c.add(&format!("qformer.encoder.layer.{i}.output_query.dense.bias"), &[h], 0.2);
            let (olw, olb) = c.ln(&format!("qformer.encoder.layer.{i}.output_query.LayerNorm"), h);
            layer_w.push((s, x, iw, ib, ow, ob, olw, olb));
        }
        let pw = c.add("language_projection.weight", &[txt, h], 0.4);
        let pb = c.add("language_projection.bias", &[txt], 0.2);
        let cfg = serde_json::json!({"model_type": "blip-2", "num_query_tokens": q, "vision_config": {"hidden_size": c_vis}, "qformer_config": {
            "hidden_size": h, "num_attention_heads": heads, "num_hidden_layers": layers, "intermediate_size": inter,
            "cross_attention_frequency": freq, "encoder_hidden_size": c_vis, "hidden_act": "gelu", "layer_norm_eps": eps}});
        let dir = c.write(cfg, "qformer");
        let img = Rng::new(seed ^ 2).vec(b * n * c_vis, 1.0);
        let got = run(&dir, &[("image_embeds", &[b, n, c_vis], &img)]);
        // CPU reference (Blip2QFormerModel)
        let block = |x: &[f32], kvx: &[f32], lk: usize, kvd: usize, w: &Blk| {
            let qq = lin(x, &w.q, Some(&w.qb), h, h, Activation::Identity);
            let kk = lin(kvx, &w.k, Some(&w.kb), kvd, h, Activation::Identity);
            let vv = lin(kvx, &w.v, Some(&w.vb), kvd, h, Activation::Identity);
            let ctx = attention_cpu(&qq, &kk, &vv, b, q, lk, heads, d, 1.0 / (d as f32).sqrt(), None, None);
            let o = lin(&ctx, &w.o, Some(&w.ob), h, h, Activation::Identity);
            layernorm_cpu(&o, Some(x), &w.lw, &w.lb, h, eps)
        };
        let tokens: Vec<f32> = (0..b).flat_map(|_| qt.iter().copied()).collect();
        let mut x = layernorm_cpu(&tokens, None, &lnw, &lnb, h, eps);
        for (s, xa, iw, ib, ow, ob, olw, olb) in &layer_w {
            x = block(&x, &x.clone(), q, h, s);
            if let Some(xa) = xa {
                x = block(&x, &img, n, c_vis, xa);
            }
            let f = lin(&x, iw, Some(ib), h, inter, Activation::Gelu);
            let f = lin(&f, ow, Some(ob), inter, h, Activation::Identity);
            x = layernorm_cpu(&f, Some(&x), olw, olb, h, eps);
        }
        let want = lin(&x, &pw, Some(&pb), h, txt, Activation::Identity);
        let e = rel_l2(&got, &want);
        prop_assert!(e < 2e-5, "qformer b{b} n{n} q{q} {heads}x{d} layers{layers}/{freq}: {e:e}");
    }

    #[test]
    fn perceiver_matches_cpu(b in 1usize..3, t in 1usize..3, f in 1usize..3, v in 1usize..12, heads in 1usize..4, dh in 1usize..9, dim in 4usize..24, nl in 1usize..9, depth in 1usize..3, embs: bool, seed: u64) {
        let inner = heads * dh;
        let mut c = Ckpt::new(seed);
        let lat = c.add("perceiver.latents", &[nl, dim], 1.0);
        let fe = embs.then(|| c.add("perceiver.frame_embs", &[f + 1, dim], 1.0));
        let te = embs.then(|| c.add("perceiver.media_time_embs", &[t + 1, 1, dim], 1.0));
        let mut lw = vec![];
        for i in 0..depth {
            let p = format!("perceiver.layers.{i}");
            let nm = c.ln(&format!("{p}.0.norm_media"), dim);
            let nlat = c.ln(&format!("{p}.0.norm_latents"), dim);
            let q = c.add(&format!("{p}.0.to_q.weight"), &[inner, dim], 0.4);
            let kv = c.add(&format!("{p}.0.to_kv.weight"), &[2 * inner, dim], 0.4);
            let o = c.add(&format!("{p}.0.to_out.weight"), &[dim, inner], 0.4);
            let fln = c.ln(&format!("{p}.1.0"), dim);
            let f1 = c.add(&format!("{p}.1.1.weight"), &[4 * dim, dim], 0.4);
            let f3 = c.add(&format!("{p}.1.3.weight"), &[dim, 4 * dim], 0.4);
            lw.push((nm, nlat, q, kv, o, fln, f1, f3));
        }
        let norm = c.ln("perceiver.norm", dim);
        let mut pc = serde_json::json!({"dim": dim, "depth": depth, "dim_head": dh, "heads": heads, "num_latents": nl, "ff_mult": 4});
        if embs {
            pc["max_num_frames"] = (f + 1).into();
            pc["max_num_media"] = (t + 1).into();
        }
        let dir = c.write(serde_json::json!({"model_type": "open_flamingo", "perceiver": pc}), "perceiver");
        let x = Rng::new(seed ^ 3).vec(b * t * f * v * dim, 1.0);
        let got = run(&dir, &[("vision_features", &[b, t, f, v, dim], &x)]);
        // CPU reference (OpenFlamingo PerceiverResampler)
        let (bt, fv) = (b * t, f * v);
        let mut xm = x.clone();
        for (r, row) in xm.chunks_mut(dim).enumerate() {
            for (ci, val) in row.iter_mut().enumerate() {
                if let (Some(fe), Some(te)) = (&fe, &te) {
                    *val += fe[((r / v) % f) * dim + ci] + te[((r / fv) % t) * dim + ci];
                }
            }
        }
        let mut latents: Vec<f32> = (0..bt).flat_map(|_| lat.iter().copied()).collect();
        for ((nmw, nmb), (nlw, nlb), q, kv, o, (fw, fb), f1, f3) in &lw {
            let xn = layernorm_cpu(&xm, None, nmw, nmb, dim, 1e-5);
            let ln_l = layernorm_cpu(&latents, None, nlw, nlb, dim, 1e-5);
            let mut kv_in = vec![];
            for bi in 0..bt {
                kv_in.extend_from_slice(&xn[bi * fv * dim..(bi + 1) * fv * dim]);
                kv_in.extend_from_slice(&ln_l[bi * nl * dim..(bi + 1) * nl * dim]);
            }
            let qq = lin(&ln_l, q, None, dim, inner, Activation::Identity);
            let kvv = lin(&kv_in, kv, None, dim, 2 * inner, Activation::Identity);
            let ctx = attn(&qq, &kvv, bt, nl, fv + nl, heads, dh, None);
            latents = add(&latents, &lin(&ctx, o, None, inner, dim, Activation::Identity), 1.0);
            let hh = layernorm_cpu(&latents, None, fw, fb, dim, 1e-5);
            let hh = lin(&hh, f1, None, dim, 4 * dim, Activation::Gelu);
            latents = add(&latents, &lin(&hh, f3, None, 4 * dim, dim, Activation::Identity), 1.0);
        }
        let want = layernorm_cpu(&latents, None, &norm.0, &norm.1, dim, 1e-5);
        let e = rel_l2(&got, &want);
        prop_assert!(e < 2e-5, "perceiver b{b} T{t} F{f} v{v} {heads}x{dh} dim{dim} n{nl} depth{depth}: {e:e}");
    }

    #[test]
    fn gated_xattn_matches_cpu(b in 1usize..3, len in 1usize..30, t_img in 1usize..4, n in 1usize..9, heads in 1usize..4, dh in 1usize..9, dim in 4usize..24, dv in 1usize..20, immediate: bool, gates in 0usize..3, seed: u64) {
        let inner = heads * dh;
        let mut c = Ckpt::new(seed);
        let p = "lang_encoder.gated_cross_attn_layers.3";
        let (nw, nb) = c.ln(&format!("{p}.attn.norm"), dim);
        let q = c.add(&format!("{p}.attn.to_q.weight"), &[inner, dim], 0.4);
        let kv = c.add(&format!("{p}.attn.to_kv.weight"), &[2 * inner, dv], 0.4);
        let o = c.add(&format!("{p}.attn.to_out.weight"), &[dim, inner], 0.4);
        let (ag, fg) = match gates { 0 => (0.0, 0.0), 1 => (0.7, -0.4), _ => (-1.5, 2.0) };
        c.tensors.push((format!("{p}.attn_gate"), vec![1], vec![ag]));
        c.tensors.push((format!("{p}.ff_gate"), vec![1], vec![fg]));
        let (fw, fb) = c.ln(&format!("{p}.ff.0"), dim);
        let f1 = c.add(&format!("{p}.ff.1.weight"), &[4 * dim, dim], 0.4);
        let f3 = c.add(&format!("{p}.ff.3.weight"), &[dim, 4 * dim], 0.4);
        let cfg = serde_json::json!({"model_type": "open_flamingo", "gated_xattn": {"dim": dim, "dim_visual": dv, "dim_head": dh, "heads": heads, "ff_mult": 4, "only_attend_immediate_media": immediate}});
        let dir = c.write(cfg, "gated");
        let mut rng = Rng::new(seed ^ 4);
        let x = rng.vec(b * len * dim, 1.0);
        let media = rng.vec(b * t_img * n * dv, 1.0);
        let mut locs = vec![0u8; b * len];
        for row in 0..b {
            for _ in 0..rng.below(t_img + 1) {
                locs[row * len + rng.below(len)] = 1; // at most t_img images per row
            }
        }
        // media_locations as U8, the rest as F32
        let g = gpu();
        let conn = Connector::from_dir(g, &dir).unwrap();
        let file = dir.join("inputs.safetensors");
        let u8s = locs.clone();
        let views = vec![
            ("hidden_states".to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![b, len, dim], bytemuck::cast_slice(&x)).unwrap()),
            ("media".to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![b, t_img, n, dv], bytemuck::cast_slice(&media)).unwrap()),
            ("media_locations".to_string(), safetensors::tensor::TensorView::new(safetensors::Dtype::U8, vec![b, len], &u8s).unwrap()),
        ];
        safetensors::serialize_to_file(views, None, &file).unwrap();
        let got = conn.run(g, &WeightSource::open_file(&file).unwrap()).unwrap().get("output").unwrap().data.clone();
        std::fs::remove_dir_all(&dir).ok();
        // CPU reference (OpenFlamingo GatedCrossAttentionBlock)
        let ranges = media_ranges_cpu(&locs, b, len, t_img, n, immediate);
        let h = layernorm_cpu(&x, None, &nw, &nb, dim, 1e-5);
        let qq = lin(&h, &q, None, dim, inner, Activation::Identity);
        let kvv = lin(&media, &kv, None, dv, 2 * inner, Activation::Identity);
        let ctx = attn(&qq, &kvv, b, len, t_img * n, heads, dh, Some(&ranges));
        let x1 = add(&x, &lin(&ctx, &o, None, inner, dim, Activation::Identity), ag.tanh());
        let hh = layernorm_cpu(&x1, None, &fw, &fb, dim, 1e-5);
        let hh = lin(&hh, &f1, None, dim, 4 * dim, Activation::Gelu);
        let want = add(&x1, &lin(&hh, &f3, None, 4 * dim, dim, Activation::Identity), fg.tanh());
        if gates == 0 {
            prop_assert_eq!(&got, &x, "zero gates must return x exactly");
        }
        let e = rel_l2(&got, &want);
        prop_assert!(e < 2e-5, "gated b{b} L{len} T{t_img} n{n} {heads}x{dh} dim{dim} dv{dv} immediate={immediate}: {e:e}");
    }
}
