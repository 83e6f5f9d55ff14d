//! Fuzz the image path: PNG / JPEG bytes → decode (within limits) → an image processor → pixel
//! values, or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = vlm_connectors::internal::fuzzing::preprocess_image_bytes(data);
});
