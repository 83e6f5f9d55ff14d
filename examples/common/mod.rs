//! What every example shares: the folder from the command line, its inputs, and the comparison
//! with `expected.safetensors` when one sits beside them (as in the golden cases).
#![allow(dead_code)]

use vlm_connectors::checkpoint::WeightSource;
use vlm_connectors::{Error, Gpu, Result, Tensor};

/// The folder named on the command line, else `tests/data/<default>`.
pub fn dir(default: &str) -> String {
    std::env::args().nth(1).unwrap_or_else(|| format!("{}/tests/data/{default}", env!("CARGO_MANIFEST_DIR")))
}

/// `inputs.safetensors` in the folder.
pub fn inputs(dir: &str) -> Result<WeightSource> {
    WeightSource::open_file(format!("{dir}/inputs.safetensors"))
}

/// The float input `name` uploaded to the GPU.
pub fn tensor(gpu: &Gpu, inputs: &WeightSource, name: &str) -> Result<Tensor> {
    let h = inputs.get_any(name)?;
    Tensor::from_slice(gpu, &h.data, &h.shape)
}

/// Prints `name`'s shape and, when `expected.safetensors` holds it, the relative L2 error and the
/// largest absolute difference; an error when the relative error is above 1e-5 (the golden
/// tolerance), so CI can run the examples as checks.
pub fn report(gpu: &Gpu, dir: &str, name: &str, got: &Tensor) -> Result<()> {
    let data = got.to_vec(gpu)?;
    let Ok(expected) = WeightSource::open_file(format!("{dir}/expected.safetensors")) else {
        println!("{name} {:?} (no expected.safetensors to compare with)", got.shape());
        return Ok(());
    };
    let want = expected.get_any(name)?;
    if want.shape != got.shape() {
        return Err(Error::shape(format!("{name} vs expected"), &want.shape, got.shape()));
    }
    let err = vlm_connectors::kernels::rel_l2(&data, &want.data);
    let max = data.iter().zip(&want.data).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    println!("{name} {:?}: relative L2 error {err:.2e}, max |diff| {max:.2e} vs expected.safetensors", got.shape());
    if err > 1e-5 {
        return Err(Error::input(name, format!("relative L2 error {err:.2e} is above 1e-5")));
    }
    Ok(())
}
