//! Fuzz the image path: PNG / JPEG bytes → decode (within limits) → an image processor → pixel
//! values, or an error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // libfuzzer-sys aborts in its panic hook, before any `catch_unwind` can act; the crate
        // turns the JPEG decoder's own panics into errors that way, so keep the default hook. A
        // panic anywhere else still unwinds to libfuzzer-sys's guard, which reports it as a crash.
        let _ = std::panic::take_hook();
    },
    |data: &[u8]| {
        let _ = vlm_connectors::internal::fuzzing::preprocess_image_bytes(data);
    }
);
