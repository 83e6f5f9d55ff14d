//! IDEFICS (`model_type: idefics`): the golden cases from transformers, and the variants they do
//! not cover (q/k norms, vector alphas, several images per token) against a CPU reference of the
//! same layer written from `modeling_idefics.py`.

mod common;
use common::{assert_close, case_dir, data_dir, expected, gpu, inputs};

use vlm_connectors::connectors::Connector;

fn check_case(case: &str, names: &[&str]) {
    let g = gpu();
    let c = Connector::from_dir(g, case_dir(case)).unwrap_or_else(|e| panic!("{case}: {e}"));
    let outs = c.run(g, &inputs(case)).unwrap_or_else(|e| panic!("{case}: {e}"));
    let want = expected(case);
    for name in names {
        let got = outs.get(name).unwrap_or_else(|e| panic!("{case}: {e}"));
        let w = want.get_any(name).unwrap();
        assert_eq!(got.shape, w.shape, "{case}/{name}: shape");
        assert_close(&format!("{case}/{name}"), &got.data, &w.data, 1e-5);
    }
}

#[test]
fn idefics_perceiver_matches_transformers() {
    check_case("idefics_perceiver", &["output"]);
}

#[test]
fn idefics_gated_layer_matches_transformers() {
    check_case("idefics_gated_xattn", &["output", "cross_attention_gate"]);
}

use vlm_connectors::checkpoint::{Config, WeightSource};
use vlm_connectors::connectors::Inputs;
use vlm_connectors::kernels::rel_l2;
use vlm_connectors::util::Rng;
use vlm_connectors::Tensor;

/// The golden case's config.json with `edits` applied, loaded on random weights of `seed`.
fn random_model(case: &str, edits: &[(&str, serde_json::Value)], seed: u64) -> (Connector, Config, WeightSource) {
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(case_dir(case).join("config.json")).unwrap()).unwrap();
    for (path, val) in edits {
        vlm_connectors::checkpoint::infer::set(&mut v, path, val.clone()).unwrap();
    }
    let cfg = Config::from_value(v);
    let ws = WeightSource::random(seed);
    (Connector::load(gpu(), &cfg, Some(&ws)).unwrap(), cfg, ws)
}

fn w(ws: &WeightSource, name: &str, shape: &[usize]) -> Vec<f64> {
    ws.get_host(name, shape).unwrap().data.iter().map(|&v| v as f64).collect()
}

/// x [rows, in] · wᵀ, w [out, in].
fn linear(x: &[f64], w: &[f64], in_f: usize) -> Vec<f64> {
    let out_f = w.len() / in_f;
    x.chunks(in_f).flat_map(|r| (0..out_f).map(move |o| (0..in_f).map(|i| r[i] * w[o * in_f + i]).sum::<f64>())).collect()
}

/// RMSNorm (no beta) or LayerNorm (with beta) over rows of `gamma.len()`.
fn norm(x: &[f64], gamma: &[f64], beta: Option<&[f64]>, eps: f64) -> Vec<f64> {
    let d = gamma.len();
    x.chunks(d)
        .flat_map(|r| {
            let mean = if beta.is_some() { r.iter().sum::<f64>() / d as f64 } else { 0.0 };
            let inv = 1.0 / (r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64 + eps).sqrt();
            (0..d).map(move |c| (r[c] - mean) * inv * gamma[c] + beta.map_or(0.0, |b| b[c]))
        })
        .collect()
}

/// softmax(q kᵀ · scale + bias) v for one batch row, per head; `allowed[i][j]` false masks key j
/// at finfo.min like transformers; a row with nothing allowed is zeroed (the cross_attention_gate).
fn attend(q: &[f64], k: &[f64], v: &[f64], heads: usize, hd: usize, allowed: &dyn Fn(usize, usize) -> bool) -> Vec<f64> {
    let w = heads * hd;
    let (lq, lk) = (q.len() / w, k.len() / w);
    let mut out = vec![0f64; lq * w];
    for i in 0..lq {
        if !(0..lk).any(|j| allowed(i, j)) {
            continue;
        }
        for h in 0..heads {
            let s: Vec<f64> = (0..lk)
                .map(|j| match allowed(i, j) {
                    true => (0..hd).map(|c| q[i * w + h * hd + c] * k[j * w + h * hd + c]).sum::<f64>() / (hd as f64).sqrt(),
                    false => f64::NEG_INFINITY,
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
            let sum: f64 = e.iter().sum();
            for c in 0..hd {
                out[i * w + h * hd + c] = (0..lk).map(|j| e[j] * v[j * w + h * hd + c]).sum::<f64>() / sum;
            }
        }
    }
    out
}

/// IdeficsGatedCrossAttentionLayer with `qk_layer_norms` and `alpha_type` vector or float, images
/// seen with gaps between them (a per-token mask), none, or all, against the f64 reference.
#[test]
fn idefics_gated_variants_match_a_cpu_reference() {
    let g = gpu();
    let (b, len, images, n, d, e, heads, inter) = (2, 7, 3, 2, 32, 24, 4, 48);
    let hd = d / heads;
    // Per token: which of the 3 images it sees (row 1 reverses row 0).
    let seen: [[i64; 3]; 7] = [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1], [0, 0, 1], [0, 1, 0]];
    let mask: Vec<i64> = (0..b).flat_map(|bi| (0..len).flat_map(move |t| seen[if bi == 0 { t } else { len - 1 - t }])).collect();
    let mut rng = Rng::new(31);
    let x = rng.vec(b * len * d, 1.0);
    let img = rng.vec(b * images * n * e, 1.0);
    for (qk, vector, layer) in [(true, true, 1usize), (true, false, 0), (false, true, 0)] {
        let edits = [
            ("qk_layer_norms", serde_json::json!(qk)),
            ("alpha_type", serde_json::json!(if vector { "vector" } else { "float" })),
            ("layer_index", serde_json::json!(layer)),
        ];
        let (c, _, ws) = random_model("idefics_gated_xattn", &edits, 40 + layer as u64);
        let inputs = Inputs::new()
            .with_tensor("hidden_states", Tensor::from_slice(g, &x, &[b, len, d]).unwrap())
            .with_tensor("image_hidden_states", Tensor::from_slice(g, &img, &[b, images * n, e]).unwrap())
            .with_ints("image_attention_mask", &[b, len, images], mask.clone());
        let outs = c.run_inputs(g, &inputs).unwrap();
        // The reference, from the same weights.
        let p = format!("model.gated_cross_attn_layers.{layer}.");
        let get = |name: &str, shape: &[usize]| w(&ws, &format!("{p}{name}"), shape);
        let alpha_shape: &[usize] = if vector { &[1, 1, d] } else { &[1] };
        let tanh = |v: Vec<f64>| -> Vec<f64> { (0..d).map(|c| v[if vector { c } else { 0 }].tanh()).collect() };
        let (a_attn, a_ff) = (tanh(get("alpha_cross_attn", alpha_shape)), tanh(get("alpha_dense", alpha_shape)));
        let mut want = Vec::new();
        for bi in 0..b {
            let xb: Vec<f64> = x[bi * len * d..(bi + 1) * len * d].iter().map(|&v| v as f64).collect();
            let ib: Vec<f64> = img[bi * images * n * e..(bi + 1) * images * n * e].iter().map(|&v| v as f64).collect();
            let h = norm(&xb, &get("input_layernorm.weight", &[d]), None, 1e-6);
            let mut q = linear(&h, &get("cross_attn.q_proj.weight", &[d, d]), d);
            let mut k = linear(&ib, &get("cross_attn.k_proj.weight", &[d, e]), e);
            let v = linear(&ib, &get("cross_attn.v_proj.weight", &[d, e]), e);
            if qk {
                q = norm(&q, &get("cross_attn.q_layer_norm.weight", &[hd]), None, 1e-6);
                k = norm(&k, &get("cross_attn.k_layer_norm.weight", &[hd]), None, 1e-6);
            }
            let m = &mask[bi * len * images..(bi + 1) * len * images];
            let ctx = attend(&q, &k, &v, heads, hd, &|i, j| m[i * images + j / n] == 1);
            let o = linear(&ctx, &get("cross_attn.o_proj.weight", &[d, d]), d);
            let h1: Vec<f64> = (0..len * d).map(|i| xb[i] + a_attn[i % d] * o[i]).collect();
            let nn = norm(&h1, &get("post_attention_layernorm.weight", &[d]), None, 1e-6);
            let gate = linear(&nn, &get("mlp.gate_proj.weight", &[inter, d]), d);
            let upv = linear(&nn, &get("mlp.up_proj.weight", &[inter, d]), d);
            let act: Vec<f64> = gate.iter().zip(&upv).map(|(g, u)| g / (1.0 + (-g).exp()) * u).collect();
            let mlp = linear(&act, &get("mlp.down_proj.weight", &[d, inter]), inter);
            want.extend((0..len * d).map(|i| h1[i] + a_ff[i % d] * mlp[i]));
        }
        // Compared on out − x, the part the layer adds, so a small gate cannot hide an error.
        let got = &outs.get("output").unwrap().data;
        let delta = |o: &[f32]| -> Vec<f32> { o.iter().zip(&x).map(|(o, x)| o - x).collect() };
        let want_f: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        let err = rel_l2(&delta(got), &delta(&want_f));
        assert!(err < 1e-5, "qk {qk} vector {vector} layer {layer}: rel-L2 of the update {err:.2e}");
        let gate_want: Vec<f32> = mask.chunks(images).map(|r| r.contains(&1) as i32 as f32).collect();
        assert_eq!(outs.get("cross_attention_gate").unwrap().data, gate_want);
    }
}

/// IdeficsPerceiverResampler with `qk_layer_norms_perceiver` (LayerNorm over head_dim, with bias)
/// and inner width heads·head_dim ≠ embed_dim, against the f64 reference.
#[test]
fn idefics_perceiver_with_qk_norms_matches_a_cpu_reference() {
    let g = gpu();
    let (images, seq, e, lat, depth, heads, hd) = (3, 7, 24, 5, 2, 3, 7);
    let edits = [
        ("perceiver_config.qk_layer_norms_perceiver", serde_json::json!(true)),
        ("perceiver_config.resampler_n_latents", serde_json::json!(lat)),
        ("perceiver_config.resampler_n_heads", serde_json::json!(heads)),
        ("perceiver_config.resampler_head_dim", serde_json::json!(hd)),
    ];
    let (c, _, ws) = random_model("idefics_perceiver", &edits, 9);
    let x = Rng::new(5).vec(images * seq * e, 1.0);
    let inputs = Inputs::new().with_tensor("image_hidden_states", Tensor::from_slice(g, &x, &[images, seq, e]).unwrap());
    let out = c.run_inputs(g, &inputs).unwrap();
    let got = out.get("output").unwrap();
    assert_eq!(got.shape, [images, lat, e]);
    let p = "model.perceiver_resampler.";
    let get = |name: &str, shape: &[usize]| w(&ws, &format!("{p}{name}"), shape);
    let ln = |x: &[f64], name: &str, dim: usize| {
        norm(x, &get(&format!("{name}.weight"), &[dim]), Some(&get(&format!("{name}.bias"), &[dim])), 1e-5)
    };
    let inner = heads * hd;
    let mut want = Vec::new();
    for img in 0..images {
        let ctx: Vec<f64> = x[img * seq * e..(img + 1) * seq * e].iter().map(|&v| v as f64).collect();
        let mut latents = get("latents", &[lat, e]);
        for i in 0..depth {
            let a = format!("blocks.{i}.0");
            let (cn, ln_) = (ln(&ctx, &format!("{a}.context_layer_norm"), e), ln(&latents, &format!("{a}.latents_layer_norm"), e));
            let kv_in: Vec<f64> = cn.iter().chain(&ln_).copied().collect();
            let q = ln(&linear(&ln_, &get(&format!("{a}.q_proj.weight"), &[inner, e]), e), &format!("{a}.q_layer_norm"), hd);
            let k = ln(&linear(&kv_in, &get(&format!("{a}.k_proj.weight"), &[inner, e]), e), &format!("{a}.k_layer_norm"), hd);
            let v = linear(&kv_in, &get(&format!("{a}.v_proj.weight"), &[inner, e]), e);
            let o = linear(&attend(&q, &k, &v, heads, hd, &|_, _| true), &get(&format!("{a}.output_proj.weight"), &[e, inner]), inner);
            latents.iter_mut().zip(&o).for_each(|(l, o)| *l += o);
            let m = format!("blocks.{i}.1");
            let h = linear(&ln(&latents, &format!("{m}.ln"), e), &get(&format!("{m}.fc.weight"), &[4 * e, e]), e);
            let h: Vec<f64> = h.iter().map(|v| v.max(0.0)).collect();
            let f = linear(&h, &get(&format!("{m}.c_proj.weight"), &[e, 4 * e]), 4 * e);
            latents.iter_mut().zip(&f).for_each(|(l, f)| *l += f);
        }
        want.extend(ln(&latents, "layer_norm", e).iter().map(|&v| v as f32));
    }
    let err = rel_l2(&got.data, &want);
    assert!(err < 1e-5, "rel-L2 {err:.2e}");
}

/// What transformers refuses or turns into nonsense is an error naming the input; what it
/// accepts (no images at all, a text token that sees none) runs.
#[test]
fn idefics_inputs_are_checked_by_name() {
    let g = gpu();
    let c = Connector::from_dir(g, case_dir("idefics_gated_xattn")).unwrap();
    let (b, len, d, e) = (2, 9, 32, 24);
    let x = Tensor::from_slice(g, &vec![0.5; b * len * d], &[b, len, d]).unwrap();
    let run = |images: &[usize], mask_shape: &[usize], mask: Vec<i64>| {
        let img = Tensor::from_slice(g, &vec![0.25; images.iter().product()], images).unwrap();
        let i = Inputs::new().with_tensor("hidden_states", x.clone()).with_tensor("image_hidden_states", img).with_ints(
            "image_attention_mask",
            mask_shape,
            mask,
        );
        c.run_inputs(g, &i).map_err(|e| e.to_string())
    };
    // Any nonzero value means "sees the image" (transformers 5: `mask.bool()`).
    let ones = run(&[b, 4, e], &[b, len, 1], vec![1; b * len]).unwrap();
    for v in [2, -1, 7] {
        assert_eq!(run(&[b, 4, e], &[b, len, 1], vec![v; b * len]).unwrap().get("output").unwrap().data, ones.get("output").unwrap().data);
    }
    let err = run(&[b, 5, e], &[b, len, 2], vec![1; b * len * 2]).unwrap_err();
    assert!(err.contains("image_hidden_states") && err.contains("num_images 2"), "{err}");
    let err = run(&[b, 4, e], &[b, len + 1, 1], vec![1; b * (len + 1)]).unwrap_err();
    assert!(err.contains("image_attention_mask"), "{err}");
    // No image anywhere: the attention half adds nothing, the MLP half still runs.
    let none = run(&[b, 4, e], &[b, len, 1], vec![0; b * len]).unwrap();
    assert_eq!(none.get("cross_attention_gate").unwrap().data, vec![0.0; b * len]);
    let zero_images = run(&[b, 0, e], &[b, len, 0], vec![]).unwrap();
    assert_eq!(zero_images.get("output").unwrap().data, none.get("output").unwrap().data);
    // The Perceiver path refuses a mask without text; a folder without the resampler needs the text.
    let p = Connector::from_dir(g, case_dir("idefics_perceiver")).unwrap();
    let i = Inputs::new().with_tensor("image_hidden_states", Tensor::from_slice(g, &[0.0; 240], &[1, 10, 24]).unwrap()).with_ints(
        "image_attention_mask",
        &[1, 1, 1],
        vec![1],
    );
    assert!(p.run_inputs(g, &i).unwrap_err().to_string().contains("needs the text"));
    let (nr, _, _) = random_model("idefics_perceiver", &[("use_resampler", serde_json::json!(false))], 1);
    let i = Inputs::new().with_tensor("image_hidden_states", Tensor::from_slice(g, &[0.0; 240], &[1, 10, 24]).unwrap());
    assert!(nr.run_inputs(g, &i).unwrap_err().to_string().contains("use_resampler false"));
    // alpha_type other than float / vector, and a zero cross_layer_interval, are config errors.
    for (field, v) in [("alpha_type", serde_json::json!("matrix")), ("cross_layer_interval", serde_json::json!(0))] {
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(case_dir("idefics_perceiver").join("config.json")).unwrap()).unwrap();
        cfg[field] = v;
        let e = Connector::load(g, &Config::from_value(cfg), Some(&WeightSource::random(1))).unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
}

/// The options the golden cases leave out, against transformers 5.24 itself
/// (`tests/data/edge/idefics_qk_vector`, from `tests/data/tools/make_idefics_variants.py`): RMSNorm
/// q/k norms and vector alphas in gated layer 1, LayerNorm q/k norms in the Perceiver, a mask with
/// gaps, counts above 1 and a negative value (all read as bool), and tokens that see nothing.
#[test]
fn idefics_variants_match_transformers() {
    let g = gpu();
    let dir = data_dir().join("edge/idefics_qk_vector");
    let io = WeightSource::open_file(dir.join("io.safetensors")).unwrap();
    let t = |name: &str| {
        let h = io.get_any(name).unwrap();
        Tensor::from_slice(g, &h.data, &h.shape).unwrap()
    };
    let c = Connector::from_dir_with(g, &dir, &[("layer_index".to_string(), serde_json::json!(1))]).unwrap();
    let (shape, mask) = io.get_int("image_attention_mask").unwrap();
    let inputs = Inputs::new()
        .with_tensor("hidden_states", t("hidden_states"))
        .with_tensor("image_hidden_states", t("resampled_images"))
        .with_ints("image_attention_mask", &shape, mask);
    let outs = c.run_inputs(g, &inputs).unwrap();
    for name in ["output", "cross_attention_gate"] {
        assert_close(&format!("idefics_qk_vector/{name}"), &outs.get(name).unwrap().data, &io.get_any(name).unwrap().data, 1e-5);
    }
    let outs = c.run_inputs(g, &Inputs::new().with_tensor("image_hidden_states", t("image_hidden_states"))).unwrap();
    assert_close("idefics_qk_vector/perceiver", &outs.get("output").unwrap().data, &io.get_any("perceiver_output").unwrap().data, 1e-5);
}
