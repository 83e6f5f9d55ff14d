//! Fuzz the `vlmc run` input reader and the connectors' input checks: any inputs file, any connector.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data");
    let connectors = vlm_connectors::internal::fuzzing::input_connectors(&dir);
    let _ = vlm_connectors::internal::fuzzing::run_inputs_bytes(connectors, data);
});
