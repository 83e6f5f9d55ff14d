//! Mistakes a user makes in the first hour, each an error that says what happened (or, for empty
//! batches, the empty answer PyTorch gives) — never a panic or a silently wrong answer.

mod common;

use common::*;
use vlm_connectors::connectors::{Connector, Inputs, LlavaProjector};
use vlm_connectors::{Error, Gpu, Recorder, Tensor};

fn llava_input(g: &Gpu) -> Tensor {
    let x = inputs("llava_tiny").get_any("image_features").unwrap();
    Tensor::from_slice(g, &x.data, &x.shape).unwrap()
}

#[test]
fn a_tensor_from_another_gpu_is_an_error_that_says_so() {
    let (g1, g2) = (gpu(), Gpu::new().unwrap());
    let proj = LlavaProjector::from_dir(g1, case_dir("llava_tiny")).unwrap();
    // input uploaded with g2, recorded with g1's recorder: used to return Ok with rel-L2 1.0
    let e = proj.forward(&mut Recorder::new(g1), &llava_input(&g2)).unwrap_err();
    assert!(matches!(e, Error::OtherGpu { .. }), "{e}");
    assert!(e.to_string().contains("image_features") && e.to_string().contains("belongs to Gpu"), "{e}");
    // g1's weights recorded with g2's recorder
    let e = proj.forward(&mut Recorder::new(&g2), &llava_input(&g2)).unwrap_err().to_string();
    assert!(e.contains("gemm.w") && e.contains("belongs to Gpu"), "{e}");
    // reading with the wrong Gpu, and with a new Gpu after the tensor's own was dropped
    let mut rec = Recorder::new(g1);
    let y = proj.forward(&mut rec, &llava_input(g1)).unwrap();
    rec.submit().unwrap();
    assert!(matches!(y.to_vec(&g2), Err(Error::OtherGpu { .. })));
    let g3 = Gpu::new().unwrap();
    let t = Tensor::from_slice(&g3, &[1.0, 2.0], &[2]).unwrap();
    drop(g3);
    let g4 = Gpu::new().unwrap();
    assert!(matches!(t.to_vec(&g4), Err(Error::OtherGpu { .. })));
    // and the right Gpu still reads the right answer
    let want = expected("llava_tiny").get_any("output").unwrap();
    assert_close("llava_tiny after misuse", &y.to_vec(g1).unwrap(), &want.data, 1e-5);
}

#[test]
fn empty_tensors_and_empty_batches_give_empty_outputs() {
    let g = gpu();
    assert_eq!(Tensor::from_slice(g, &[], &[0, 4]).unwrap().to_vec(g).unwrap(), Vec::<f32>::new());
    assert!(Tensor::from_u32(g, &[], &[0]).unwrap().to_vec_u32(g).unwrap().is_empty());
    // Each connector on a batch of 0: the output's leading dim is 0, as PyTorch returns.
    for case in
        ["llava_tiny", "llava_original", "blip2_tiny", "instructblip", "perceiver_video", "gated_xattn_tiny", "pool_odd", "tome_cls"]
    {
        let c = Connector::from_dir(g, case_dir(case)).unwrap();
        let file = inputs(case);
        let mut inp = Inputs::new();
        for &name in c.input_names() {
            inp = match file.get_any(name) {
                Ok(h) => {
                    let mut shape = h.shape.clone();
                    shape[0] = 0;
                    inp.with_tensor(name, Tensor::from_slice(g, &[], &shape).unwrap())
                }
                Err(_) => {
                    let (mut shape, _) = file.get_int(name).unwrap();
                    shape[0] = 0;
                    inp.with_ints(name, &shape, vec![])
                }
            };
        }
        let outs = c.run_inputs(g, &inp).unwrap_or_else(|e| panic!("{case}: {e}"));
        let out = outs.get("output").unwrap();
        // The golden output's shape with its leading (batch) dim set to 0.
        let mut want = expected(case).shape("output").unwrap();
        want[0] = 0;
        assert_eq!(out.shape, want, "{case}");
        assert!(out.data.is_empty(), "{case}");
    }
}

#[test]
fn reading_before_submit_is_an_error_not_stale_data() {
    let g = gpu();
    let proj = LlavaProjector::from_dir(g, case_dir("llava_tiny")).unwrap();
    // Leave stale data in the pool first: a submitted forward whose output is then dropped.
    let mut rec = Recorder::new(g);
    drop(proj.forward(&mut rec, &llava_input(g)).unwrap());
    rec.submit().unwrap();
    let mut rec = Recorder::new(g);
    let y = proj.forward(&mut rec, &llava_input(g)).unwrap();
    let e = y.to_vec(g).unwrap_err();
    assert!(matches!(e, Error::Pending { .. }) && e.to_string().contains("Recorder::submit"), "{e}");
    rec.submit().unwrap();
    assert_close("after submit", &y.to_vec(g).unwrap(), &expected("llava_tiny").get_any("output").unwrap().data, 1e-5);
    // A recorder dropped with recorded work: what it would have written stays unreadable.
    let mut rec = Recorder::new(g);
    let y = proj.forward(&mut rec, &llava_input(g)).unwrap();
    drop(rec);
    assert!(matches!(y.to_vec(g), Err(Error::Pending { .. })));
    // Inputs uploaded by the host are readable at once.
    assert!(llava_input(g).to_vec(g).is_ok());
}

#[test]
fn every_connector_type_has_from_dir_and_a_clear_error_for_the_wrong_folder() {
    use vlm_connectors::connectors::*;
    let g = gpu();
    assert!(LlavaNext::from_dir(g, case_dir("llava_next_square")).is_ok());
    assert!(QFormer::from_dir(g, case_dir("blip2_tiny")).is_ok());
    assert!(OpenFlamingo::from_dir(g, case_dir("perceiver_video")).is_ok());
    assert!(PerceiverResampler::from_dir(g, case_dir("perceiver_video")).is_ok());
    assert!(GatedCrossAttention::from_dir(g, case_dir("gated_xattn_tiny")).is_ok());
    assert!(Pool2x2::from_dir(g, case_dir("pool_odd")).is_ok());
    assert!(TokenMerger::from_dir(g, case_dir("tome_cls")).is_ok());
    let e = PerceiverResampler::from_dir(g, case_dir("gated_xattn_tiny")).unwrap_err().to_string();
    assert!(e.contains("perceiver") && e.contains("only a `gated_xattn`"), "{e}");
    let e = GatedCrossAttention::from_dir(g, case_dir("perceiver_tiny")).unwrap_err().to_string();
    assert!(e.contains("gated_xattn") && e.contains("only a `perceiver`"), "{e}");
    let e = TokenMerger::from_dir(g, case_dir("pool_odd")).unwrap_err().to_string();
    assert!(e.contains("`pool2x2` loads a Pool2x2") && e.contains("Pool2x2::from_dir"), "{e}");
    let e = QFormer::from_dir(g, case_dir("llava_tiny")).unwrap_err().to_string();
    assert!(e.contains("`llava` loads a LlavaProjector"), "{e}");
}

#[test]
fn an_input_written_by_another_unsubmitted_recorder_is_an_error() {
    let g = gpu();
    let proj = LlavaProjector::from_dir(g, case_dir("llava_tiny")).unwrap();
    let pool = vlm_connectors::connectors::Pool2x2 { grid: [6, 6] };
    let mut first = Recorder::new(g);
    let pooled = pool.forward(&mut first, &llava_input(g)).unwrap(); // not submitted yet
    let e = proj.forward(&mut Recorder::new(g), &pooled).unwrap_err();
    assert!(matches!(e, Error::Pending { .. }) && e.to_string().contains("gemm.x"), "{e}");
    // Within the recorder that writes it, it is an ordinary intermediate: the same answer as two
    // submitted recorders in a row.
    let y = proj.forward(&mut first, &pooled).unwrap();
    first.submit().unwrap();
    let mut rec = Recorder::new(g);
    let pooled2 = pool.forward(&mut rec, &llava_input(g)).unwrap();
    rec.submit().unwrap();
    let mut rec = Recorder::new(g);
    let y2 = proj.forward(&mut rec, &pooled2).unwrap();
    rec.submit().unwrap();
    assert_eq!(y.shape(), &[2, 9, 96]);
    assert_eq!(y.to_vec(g).unwrap(), y2.to_vec(g).unwrap());
    // Writing into a tensor another unsubmitted recorder writes is refused too (in-place add).
    let mut a = Recorder::new(g);
    let t = pool.forward(&mut a, &llava_input(g)).unwrap();
    let e = vlm_connectors::kernels::elementwise::record_add_rows(&mut Recorder::new(g), &t, &llava_input(g), 1, 1).unwrap_err();
    assert!(matches!(e, Error::Pending { .. }) && e.to_string().contains("add_rows.dst"), "{e}");
    a.submit().unwrap();
}

#[test]
fn an_unwritten_tensor_a_u32_tensor_and_an_oversized_shape_are_refused() {
    let g = gpu();
    // Tensor::empty hands out a pooled buffer: reading it before anything wrote it would return
    // whatever the last tenant left.
    let t = Tensor::empty(g, &[4, 4], vlm_connectors::DType::F32).unwrap();
    assert!(matches!(t.to_vec(g), Err(Error::Unwritten { .. })));
    let e = vlm_connectors::kernels::elementwise::record_activation(&mut Recorder::new(g), &t, vlm_connectors::kernels::Activation::Relu);
    assert!(matches!(e, Err(Error::Unwritten { .. })));
    // An identity projector (original LLaVA `mm_projector_type: identity`) runs no kernel, yet a
    // U32 tensor or one of another Gpu is still refused by name.
    let dir = std::env::temp_dir().join(format!("vlmc-misuse-{}-identity", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), r#"{"model_type": "llava_llama", "mm_projector_type": "identity", "mm_hidden_size": 4}"#)
        .unwrap();
    vlm_connectors::checkpoint::save_f32(dir.join("model.safetensors"), &[("unused", &[1], &[0.0])]).unwrap();
    let p = LlavaProjector::from_dir(g, &dir).unwrap();
    let u = Tensor::from_u32(g, &[1; 8], &[1, 2, 4]).unwrap();
    let e = p.forward(&mut Recorder::new(g), &u).unwrap_err().to_string();
    assert!(e.contains("image_features") && e.contains("U32"), "{e}");
    let other = Tensor::from_slice(&Gpu::new().unwrap(), &[0.0; 8], &[1, 2, 4]).unwrap();
    assert!(matches!(p.forward(&mut Recorder::new(g), &other), Err(Error::OtherGpu { .. })));
    // A shape whose element count overflows is a limit error, not a wrap-around.
    for shape in [[1usize << 40, 1 << 40], [usize::MAX, 2]] {
        assert!(matches!(Tensor::empty(g, &shape, vlm_connectors::DType::F32), Err(Error::Limit { .. })), "{shape:?}");
        assert!(Tensor::from_slice(g, &[], &shape).is_err());
    }
}
