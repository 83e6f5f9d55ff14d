//! Fuzz the PyTorch checkpoint path: checkpoint.pt bytes (a released OpenFlamingo checkpoint) → an
//! inferred config → a connector, or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vlm_connectors::internal::fuzzing::load_torch_bytes(data);
});
