//! What the web build uses, run natively: models from bytes (`Connector::from_bytes`,
//! `ImageEncoder::from_bytes`) and the async forward and readbacks, against the file-based,
//! blocking calls and the golden cases. The browser runs the same in web/tests/browser.rs.

mod common;
use common::{assert_close, case_dir, expected, gpu, inputs};

use vlm_connectors::connectors::{Connector, ImageEncoder, Inputs, LoadOptions};
use vlm_connectors::preprocess::RgbImage;
use vlm_connectors::{DType, Error, Recorder, Tensor};

fn read(case: &str, file: &str) -> Vec<u8> {
    std::fs::read(case_dir(case).join(file)).unwrap()
}

#[test]
fn connectors_from_bytes_match_the_golden_cases_through_the_async_forward() {
    let g = gpu();
    for (case, weights) in [("llava_tiny", true), ("blip2_tiny", true), ("zoo/qwen2_vl_merger", true), ("pool_odd", false)] {
        let config = String::from_utf8(read(case, "config.json")).unwrap();
        let w = weights.then(|| read(case, "model.safetensors"));
        let c = Connector::from_bytes(g, &config, w, &LoadOptions::default()).unwrap_or_else(|e| panic!("{case}: {e}"));
        let x = Inputs::read_as(g, &inputs(case), c.input_names(), DType::F32).unwrap();
        let got = pollster::block_on(c.run_inputs_async(g, &x)).unwrap();
        let blocking = c.run_inputs(g, &x).unwrap();
        let want = expected(case).get_any("output").unwrap();
        assert_close(case, &got.get("output").unwrap().data, &want.data, 1e-5);
        assert_eq!(got.get("output").unwrap().data, blocking.get("output").unwrap().data, "{case}: async = blocking");
    }
}

#[test]
fn bad_bytes_are_errors_that_name_what_is_wrong() {
    let g = gpu();
    let config = String::from_utf8(read("llava_tiny", "config.json")).unwrap();
    let opts = LoadOptions::default();
    let e = Connector::from_bytes(g, &config, None, &opts).unwrap_err().to_string();
    assert!(e.contains("weights"), "{e}");
    let e = Connector::from_bytes(g, "{not json", None, &opts).unwrap_err();
    assert!(matches!(e, Error::Config { .. }) && e.to_string().contains("config.json"), "{e}");
    assert!(Connector::from_bytes(g, &config, Some(b"PK\x03\x04 not a zip".to_vec()), &opts).is_err());
    assert!(Connector::from_bytes(g, &config, Some(vec![0xff; 64]), &opts).is_err());
    let e = ImageEncoder::from_bytes(g, &config, "{}", vec![], &opts).unwrap_err().to_string();
    assert!(e.contains("image_processor_type"), "{e}");
    let pool = String::from_utf8(read("pool_odd", "config.json")).unwrap();
    let e = ImageEncoder::from_bytes(g, &pool, "{}", vec![], &opts).unwrap_err().to_string();
    assert!(e.contains("cannot encode images"), "{e}");
}

#[test]
fn an_image_encoder_from_bytes_encodes_a_photo_like_from_dir() {
    let g = gpu();
    let case = "pixels/pixels_llava_next";
    let enc = ImageEncoder::from_bytes(
        g,
        &String::from_utf8(read(case, "config.json")).unwrap(),
        &String::from_utf8(read(case, "preprocessor_config.json")).unwrap(),
        read(case, "model.safetensors"),
        &LoadOptions::default(),
    )
    .unwrap();
    let photo = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/images/coffee.png")).unwrap();
    let img = RgbImage::decode(&photo).unwrap();
    let got = pollster::block_on(enc.encode_async(g, std::slice::from_ref(&img))).unwrap();
    let from_dir = ImageEncoder::from_dir(g, case_dir(case)).unwrap().encode(g, &[img]).unwrap();
    assert_eq!(got[0].outputs.get("output").unwrap().data, from_dir[0].outputs.get("output").unwrap().data);
    assert_close(case, &got[0].outputs.get("output").unwrap().data, &expected(case).get_any("output").unwrap().data, 1e-5);
}

#[test]
fn async_readbacks_and_timing_agree_with_the_blocking_ones() {
    let g = gpu();
    let data: Vec<f32> = (0..1031).map(|i| i as f32 * 0.5 - 7.0).collect();
    let t = Tensor::from_slice(g, &data, &[1031]).unwrap();
    assert_eq!(pollster::block_on(t.to_vec_async(g)).unwrap(), data);
    assert_eq!(t.to_vec(g).unwrap(), data);
    let u = Tensor::from_u32(g, &[1, 2, 3], &[3]).unwrap();
    assert_eq!(pollster::block_on(u.to_vec_u32_async(g)).unwrap(), vec![1, 2, 3]);
    assert!(pollster::block_on(u.to_vec_async(g)).is_err(), "U32 through the float readback is a DType error");
    pollster::block_on(g.wait_async()).unwrap();
    // A timed forward: the same values as an untimed one, and a wall time.
    let c = Connector::from_dir(g, case_dir("llava_tiny")).unwrap();
    let x = Inputs::read_as(g, &inputs("llava_tiny"), c.input_names(), DType::F32).unwrap();
    let mut rec = Recorder::new(g);
    let outs = c.record(&mut rec, &x).unwrap();
    let timing = pollster::block_on(rec.submit_timed_async()).unwrap();
    assert!(timing.wall_ms > 0.0);
    let y = pollster::block_on(outs[0].1.to_vec_async(g)).unwrap();
    assert_eq!(y, c.run_inputs(g, &x).unwrap().get("output").unwrap().data);
}
