//! The vision towers against a plain CPU model of transformers' `CLIPVisionModel` /
//! `Blip2VisionModel` (f64, written from `modeling_clip.py` / `modeling_blip_2.py`) on seeded
//! random weights, over awkward geometries: patch grids 1×1, 2×2 with pixels left unread
//! (image 30, patch 14, as SigLIP's 384/14), 3×3, 27×27 (729 tokens); batches of 1 and 2; feature
//! layers 0, 1, −2 and lists concatenated on channels ([−4, −2], [1, 0, 1]); strategies `default` and `full`; odd widths. (Towers take square images, as
//! CLIP and BLIP-2 do without position interpolation: a 3×5 grid is not a shape they accept.)

mod common;
use common::{assert_close, gpu};

use vlm_connectors::checkpoint::{Config, WeightSource};
use vlm_connectors::connectors::{Connector, Inputs};
use vlm_connectors::kernels::Activation;
use vlm_connectors::util::Rng;
use vlm_connectors::Tensor;

struct Geo {
    c: usize,
    heads: usize,
    inter: usize,
    image: usize,
    patch: usize,
    layers: usize,
}

fn layer_norm(x: &[f64], g: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    let c = g.len();
    x.chunks(c)
        .flat_map(|r| {
            let m = r.iter().sum::<f64>() / c as f64;
            let v = r.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / c as f64;
            r.iter().enumerate().map(move |(i, x)| (x - m) / (v + eps).sqrt() * g[i] as f64 + b[i] as f64).collect::<Vec<_>>()
        })
        .collect()
}

/// `y = x Wᵀ + b`, W [out, in].
fn linear(x: &[f64], w: &[f32], b: Option<&[f32]>, inp: usize) -> Vec<f64> {
    let out = w.len() / inp;
    x.chunks(inp)
        .flat_map(|r| {
            (0..out).map(move |o| {
                r.iter().zip(&w[o * inp..(o + 1) * inp]).map(|(a, b)| a * *b as f64).sum::<f64>() + b.map_or(0.0, |b| b[o] as f64)
            })
        })
        .collect()
}

/// Multi-head self-attention of one sequence: q, k, v [T, C].
fn attention(q: &[f64], k: &[f64], v: &[f64], heads: usize, c: usize) -> Vec<f64> {
    let (t, d) = (q.len() / c, c / heads);
    let mut out = vec![0.0; t * c];
    for h in 0..heads {
        for i in 0..t {
            let s: Vec<f64> =
                (0..t).map(|j| (0..d).map(|e| q[i * c + h * d + e] * k[j * c + h * d + e]).sum::<f64>() / (d as f64).sqrt()).collect();
            let m = s.iter().cloned().fold(f64::MIN, f64::max);
            let p: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let z: f64 = p.iter().sum();
            for e in 0..d {
                out[i * c + h * d + e] = (0..t).map(|j| p[j] * v[j * c + h * d + e]).sum::<f64>() / z;
            }
        }
    }
    out
}

/// CPU tower: (hidden states after embeddings / pre-LN, then after each layer; per image).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Clip,
    Siglip,
    Blip2,
}

fn tower_cpu(ws: &WeightSource, g: &Geo, px: &[f32], kind: Kind, act: Activation, eps: f64) -> Vec<Vec<f64>> {
    let blip2 = kind == Kind::Blip2;
    let w = |n: &str, s: &[usize]| ws.get_host(n, s).unwrap().data;
    let (c, s, p) = (g.c, g.image, g.patch);
    let side = s / p;
    let n = side * side;
    let conv = w("embeddings.patch_embedding.weight", &[c, 3, p, p]);
    let conv_b = (kind != Kind::Clip).then(|| w("embeddings.patch_embedding.bias", &[c]));
    let (cls, pos) = match kind {
        Kind::Blip2 => (w("embeddings.class_embedding", &[1, 1, c]), w("embeddings.position_embedding", &[1, n + 1, c])),
        Kind::Clip => (w("embeddings.class_embedding", &[c]), w("embeddings.position_embedding.weight", &[n + 1, c])),
        Kind::Siglip => (vec![], w("embeddings.position_embedding.weight", &[n, c])),
    };
    let mut h: Vec<f64> = Vec::new();
    for py in 0..side {
        for pxx in 0..side {
            let patch: Vec<f64> = (0..3)
                .flat_map(|ch| (0..p).flat_map(move |y| (0..p).map(move |x| (ch, py * p + y, pxx * p + x))))
                .map(|(ch, y, x)| px[(ch * s + y) * s + x] as f64)
                .collect();
            h.extend(linear(&patch, &conv, conv_b.as_deref(), 3 * p * p));
        }
    }
    let mut x: Vec<f64> = cls.iter().map(|v| *v as f64).chain(h).collect();
    x.iter_mut().zip(&pos).for_each(|(a, b)| *a += *b as f64);
    if kind == Kind::Clip {
        x = layer_norm(&x, &w("pre_layrnorm.weight", &[c]), &w("pre_layrnorm.bias", &[c]), eps);
    }
    let mut states = vec![x.clone()];
    for l in 0..g.layers {
        let lw = |n: &str, s: &[usize]| w(&format!("encoder.layers.{l}.{n}"), s);
        let y = layer_norm(&x, &lw("layer_norm1.weight", &[c]), &lw("layer_norm1.bias", &[c]), eps);
        let (q, k, v, o) = if blip2 {
            let qkv = linear(&y, &lw("self_attn.qkv.weight", &[3 * c, c]), Some(&lw("self_attn.qkv.bias", &[3 * c])), c);
            let part = |i: usize| qkv.chunks(3 * c).flat_map(|r| r[i * c..(i + 1) * c].to_vec()).collect::<Vec<_>>();
            (part(0), part(1), part(2), "self_attn.projection")
        } else {
            let proj =
                |n: &str| linear(&y, &lw(&format!("self_attn.{n}.weight"), &[c, c]), Some(&lw(&format!("self_attn.{n}.bias"), &[c])), c);
            (proj("q_proj"), proj("k_proj"), proj("v_proj"), "self_attn.out_proj")
        };
        let a = attention(&q, &k, &v, g.heads, c);
        let a = linear(&a, &lw(&format!("{o}.weight"), &[c, c]), Some(&lw(&format!("{o}.bias"), &[c])), c);
        x.iter_mut().zip(&a).for_each(|(x, a)| *x += a);
        let y = layer_norm(&x, &lw("layer_norm2.weight", &[c]), &lw("layer_norm2.bias", &[c]), eps);
        let y: Vec<f64> = linear(&y, &lw("mlp.fc1.weight", &[g.inter, c]), Some(&lw("mlp.fc1.bias", &[g.inter])), c)
            .into_iter()
            .map(|v| act.apply(v))
            .collect();
        let y = linear(&y, &lw("mlp.fc2.weight", &[c, g.inter]), Some(&lw("mlp.fc2.bias", &[c])), g.inter);
        x.iter_mut().zip(&y).for_each(|(x, a)| *x += a);
        states.push(x.clone());
    }
    if blip2 {
        let last = layer_norm(&x, &w("post_layernorm.weight", &[c]), &w("post_layernorm.bias", &[c]), eps);
        states.push(last);
    }
    states
}

fn vision_config(g: &Geo, act: &str) -> serde_json::Value {
    serde_json::json!({"hidden_size": g.c, "num_attention_heads": g.heads, "intermediate_size": g.inter,
        "num_hidden_layers": g.layers, "image_size": g.image, "patch_size": g.patch, "hidden_act": act})
}

/// A `llava` model with its CLIP or SigLIP tower (seeded random weights) on random pixels of
/// batch `b`: `vision_features` against the CPU model's selected states, token by token with the
/// listed layers' channels one after another, at rel-L2 ≤ 1e-5.
#[allow(clippy::too_many_arguments)]
fn check_llava_tower(what: &str, g: &Geo, b: usize, layer: &[i64], strategy: &str, kind: Kind, seed: u64, rng: &mut Rng) {
    let gp = gpu();
    let layer_cfg = if layer.len() == 1 { serde_json::json!(layer[0]) } else { serde_json::json!(layer) };
    let (act, eps) = if kind == Kind::Siglip { (Activation::GeluTanh, 1e-6) } else { (Activation::QuickGelu, 1e-5) };
    let mut vc = vision_config(g, if kind == Kind::Siglip { "gelu_pytorch_tanh" } else { "quick_gelu" });
    if kind == Kind::Siglip {
        vc["model_type"] = serde_json::json!("siglip_vision_model");
        vc["layer_norm_eps"] = serde_json::json!(1e-6);
    }
    let cfg = serde_json::json!({"model_type": "llava", "load_vision_tower": true, "vision_feature_layer": layer_cfg,
        "vision_feature_select_strategy": strategy, "vision_config": vc, "text_config": {"hidden_size": 8}});
    let ws = WeightSource::random(seed);
    let model = Connector::load(gp, &Config::from_value(cfg), Some(&ws)).unwrap();
    let px = rng.vec(b * 3 * g.image * g.image, 2.0);
    let input = Tensor::from_slice(gp, &px, &[b, 3, g.image, g.image]).unwrap();
    let out = model.run_inputs(gp, &Inputs::new().with_tensor("pixel_values", input)).unwrap();
    let got = out.get("vision_features").unwrap();
    let index: Vec<usize> = layer.iter().map(|&l| if l < 0 { g.layers as i64 + 1 + l } else { l } as usize).collect();
    let skip = (strategy == "default") as usize;
    let (per, t) = (g.image * g.image * 3, (g.image / g.patch).pow(2) + (kind == Kind::Clip) as usize);
    let mut want: Vec<f32> = Vec::new();
    for k in 0..b {
        let states = tower_cpu(&ws.pp("vision_tower"), g, &px[k * per..(k + 1) * per], kind, act, eps);
        for tok in skip..t {
            want.extend(index.iter().flat_map(|&s| states[s][tok * g.c..(tok + 1) * g.c].iter().map(|v| *v as f32)));
        }
    }
    assert_eq!(got.shape, [b, t - skip, g.c * layer.len()], "{what}");
    assert_close(&format!("{what} ({}px, batch {b}, layer {layer:?}, {strategy})", g.image), &got.data, &want, 1e-5);
}

#[test]
fn clip_and_blip2_towers_match_a_cpu_model_over_awkward_geometries() {
    let gp = gpu();
    let mut rng = Rng::new(336);
    // (geometry, batch, vision_feature_layer(s), strategy): a list is concatenated on channels.
    let cases = [
        (Geo { c: 32, heads: 4, inter: 37, image: 14, patch: 14, layers: 2 }, 1, vec![-2i64], "default"),
        (Geo { c: 24, heads: 3, inter: 40, image: 30, patch: 14, layers: 2 }, 2, vec![1], "full"),
        (Geo { c: 16, heads: 2, inter: 24, image: 42, patch: 14, layers: 1 }, 2, vec![0], "default"),
        (Geo { c: 16, heads: 2, inter: 20, image: 378, patch: 14, layers: 1 }, 1, vec![-1], "default"),
        (Geo { c: 8, heads: 2, inter: 12, image: 42, patch: 14, layers: 3 }, 2, vec![-4, -2], "default"),
        (Geo { c: 12, heads: 3, inter: 7, image: 28, patch: 14, layers: 2 }, 1, vec![1, 0, 1], "full"),
    ];
    for (i, (g, b, layer, strategy)) in cases.iter().enumerate() {
        check_llava_tower(&format!("CLIP tower case {i}"), g, *b, layer, strategy, Kind::Clip, 40 + i as u64, &mut rng);
    }
    // BLIP-2's EVA tower: fused qkv, patch bias, no pre-norm, post_layernorm, gelu, eps 1e-6.
    for (i, (g, b)) in [
        (Geo { c: 24, heads: 4, inter: 30, image: 28, patch: 14, layers: 2 }, 2),
        (Geo { c: 16, heads: 2, inter: 16, image: 14, patch: 14, layers: 1 }, 1),
    ]
    .iter()
    .enumerate()
    {
        let cfg = serde_json::json!({"model_type": "blip-2", "load_vision_tower": true, "num_query_tokens": 4,
            "vision_config": vision_config(g, "gelu"),
            "qformer_config": {"hidden_size": 16, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 20, "encoder_hidden_size": g.c},
            "text_config": {"hidden_size": 8}});
        let ws = WeightSource::random(60 + i as u64);
        let model = Connector::load(gp, &Config::from_value(cfg), Some(&ws)).unwrap();
        let px = rng.vec(b * 3 * g.image * g.image, 2.0);
        let out = model
            .run_inputs(gp, &Inputs::new().with_tensor("pixel_values", Tensor::from_slice(gp, &px, &[*b, 3, g.image, g.image]).unwrap()))
            .unwrap();
        let per = g.image * g.image * 3;
        let want: Vec<f32> = (0..*b)
            .flat_map(|k| {
                tower_cpu(&ws.pp("vision_model"), g, &px[k * per..(k + 1) * per], Kind::Blip2, Activation::Gelu, 1e-6)
                    .pop()
                    .unwrap()
                    .into_iter()
                    .map(|v| v as f32)
            })
            .collect();
        assert_close(&format!("BLIP-2 tower case {i} (batch {b})"), &out.get("vision_features").unwrap().data, &want, 1e-5);
    }
}

/// SigLIP (`SiglipVisionModel`, `modeling_siglip.py`): patch conv with bias, no CLS, positions
/// [N, C], no pre-norm, gelu_pytorch_tanh, eps 1e-6; `hidden_states[-1]` without
/// `post_layernorm` (what LLaVA-OneVision selects), strategy `full`; image 30 with 14-px patches
/// leaves 2 px unread; a list of layers; `default` drops the first token even without a CLS.
#[test]
fn siglip_tower_matches_a_cpu_model() {
    let mut rng = Rng::new(384);
    let cases = [
        (Geo { c: 24, heads: 2, inter: 40, image: 30, patch: 14, layers: 2 }, 2, vec![-1i64], "full"),
        (Geo { c: 16, heads: 4, inter: 20, image: 70, patch: 14, layers: 3 }, 1, vec![-1], "full"),
        (Geo { c: 8, heads: 1, inter: 9, image: 28, patch: 14, layers: 2 }, 1, vec![0, -1], "default"),
    ];
    for (i, (g, b, layer, strategy)) in cases.iter().enumerate() {
        check_llava_tower(&format!("SigLIP tower case {i}"), g, *b, layer, strategy, Kind::Siglip, 80 + i as u64, &mut rng);
    }
}
