//! Elementwise kernels and the norms' subgroup versions against their CPU references over awkward shapes: LlamaMLP's gated
//! activation (with and without a row scale) and `gather_rows`.

mod common;
use common::{check, gpu, up};

use vlm_connectors::kernels::elementwise::{gated_activation_cpu, record_gated_activation, record_gated_activation_rows};
use vlm_connectors::kernels::Activation;
use vlm_connectors::util::Rng;
use vlm_connectors::Recorder;

#[test]
fn gated_activation_matches_cpu() {
    let g = gpu();
    let mut rng = Rng::new(7);
    for &(rows, cols) in &[(1, 1), (7, 63), (65, 257), (577, 3)] {
        for act in [Activation::Silu, Activation::GeluTanh, Activation::Relu] {
            let x = rng.vec(rows * 2 * cols, 3.0);
            let mut rec = Recorder::new(g);
            let y = record_gated_activation(&mut rec, &up(&x, &[rows, 2 * cols]), act).unwrap();
            rec.submit().unwrap();
            assert_eq!(y.shape(), &[rows, cols]);
            check(&format!("gated {act:?} {rows}x{cols}"), &y.to_vec(g).unwrap(), &gated_activation_cpu(&x, cols, act), 1e-6);
        }
    }
    // With a row scale (Mllama's row mask, or any per-row factor): rows scaled after act · up.
    for &(rows, cols) in &[(1, 1), (7, 63), (65, 257)] {
        let x = rng.vec(rows * 2 * cols, 3.0);
        let scale: Vec<f32> = (0..rows).map(|r| if r % 3 == 0 { 0.0 } else { rng.uniform(-2.0, 2.0) }).collect();
        let mut rec = Recorder::new(g);
        let y = record_gated_activation_rows(&mut rec, &up(&x, &[rows, 2 * cols]), Activation::Silu, Some(&up(&scale, &[rows]))).unwrap();
        rec.submit().unwrap();
        let want: Vec<f32> =
            gated_activation_cpu(&x, cols, Activation::Silu).iter().enumerate().map(|(i, v)| v * scale[i / cols]).collect();
        check(&format!("gated rows {rows}x{cols}"), &y.to_vec(g).unwrap(), &want, 1e-6);
    }
    let mut rec = Recorder::new(g);
    let e = record_gated_activation(&mut rec, &up(&[0.0; 6], &[2, 3]), Activation::Silu).unwrap_err().to_string();
    assert!(e.contains("gate and up stacked"), "{e}");
    let e = record_gated_activation_rows(&mut rec, &up(&[0.0; 8], &[2, 4]), Activation::Silu, Some(&up(&[1.0; 3], &[3])))
        .unwrap_err()
        .to_string();
    assert!(e.contains("row_scale") && e.contains("[2]"), "{e}");
    rec.discard();
}

#[test]
fn gather_rows_matches_cpu_and_refuses_bad_ids() {
    let g = gpu();
    let mut rng = Rng::new(31);
    for &(v, c, n) in &[(1, 1, 1), (7, 63, 65), (65, 1, 257), (577, 65, 7), (30, 257, 63)] {
        let table = rng.vec(v * c, 1.0);
        let ids: Vec<usize> = (0..n).map(|_| rng.below(v)).collect();
        let ids64: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
        let mut rec = Recorder::new(g);
        let y = vlm_connectors::kernels::elementwise::record_gather_rows(&mut rec, &up(&table, &[v, c]), &ids64, "ids").unwrap();
        rec.submit().unwrap();
        assert_eq!(y.to_vec(g).unwrap(), vlm_connectors::kernels::elementwise::gather_rows_cpu(&table, c, &ids), "v{v} c{c} n{n}");
    }
    let mut rec = Recorder::new(g);
    for bad in [-1i64, 7] {
        let e =
            vlm_connectors::kernels::elementwise::record_gather_rows(&mut rec, &up(&[0.0; 14], &[7, 2]), &[0, bad], "qformer_input_ids")
                .unwrap_err()
                .to_string();
        assert!(e.contains("qformer_input_ids") && e.contains(&format!("id {bad} at position 1")), "{e}");
    }
}

/// LayerNorm and RMSNorm in both versions (subgroup reductions where the adapter has SUBGROUP,
/// the workgroup tree otherwise) against the CPU reference over awkward widths, with and without
/// the fused residual; the subgroup version is the default where it can run.
#[test]
fn norms_match_cpu_with_subgroup_and_workgroup_reductions() {
    use vlm_connectors::kernels::layernorm::{layernorm_cpu, record_norm, rmsnorm_cpu};
    let g = gpu();
    let sg = g.features().contains(vlm_connectors::wgpu::Features::SUBGROUP);
    if !sg {
        eprintln!("{}: no SUBGROUP; only the workgroup norms run here", g.describe());
    }
    let mut rng = Rng::new(8);
    for &(rows, cols) in &[(1, 1), (7, 63), (65, 257), (577, 1000), (3, 2049)] {
        let x: Vec<f32> = rng.vec(rows * cols, 3.0).iter().map(|v| v + 10.0).collect();
        let r = rng.vec(rows * cols, 1.0);
        let (gm, bt) = (rng.vec(cols, 1.0), rng.vec(cols, 1.0));
        let (xt, rt, gt, btt) = (up(&x, &[rows, cols]), up(&r, &[rows, cols]), up(&gm, &[cols]), up(&bt, &[cols]));
        for subgroups in [false, true].into_iter().filter(|&s| !s || sg) {
            for with_res in [false, true] {
                let res = with_res.then_some(&rt);
                let mut rec = Recorder::new(g);
                let ln = record_norm(&mut rec, &xt, res, &gt, Some(&btt), 1e-5, Some(subgroups)).unwrap();
                let rms = record_norm(&mut rec, &xt, res, &gt, None, 1e-6, Some(subgroups)).unwrap();
                let want = if subgroups { ["layernorm_sg", "rmsnorm_sg"] } else { ["layernorm", "rmsnorm"] };
                assert_eq!(rec.labels(), want);
                rec.submit().unwrap();
                let what = format!("{rows}x{cols} res={with_res} subgroups={subgroups}");
                let r = with_res.then_some(&r[..]);
                check(&format!("layernorm {what}"), &ln.to_vec(g).unwrap(), &layernorm_cpu(&x, r, &gm, &bt, cols, 1e-5), 2e-5);
                check(&format!("rmsnorm {what}"), &rms.to_vec(g).unwrap(), &rmsnorm_cpu(&x, r, &gm, cols, 1e-6), 2e-6);
            }
        }
    }
    let mut rec = Recorder::new(g);
    let default = record_norm(&mut rec, &up(&[1.0, 2.0], &[1, 2]), None, &up(&[1.0; 2], &[2]), None, 1e-6, None).unwrap();
    assert_eq!(rec.labels(), [if sg { "rmsnorm_sg" } else { "rmsnorm" }]);
    drop(default);
    rec.discard();
}
