//! Fuzz the checkpoint loader: config.json + safetensors bytes → a connector, or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vlm_connectors::internal::fuzzing::load_checkpoint_bytes(data);
});
