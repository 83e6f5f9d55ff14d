//! What the `vlmc` binary, `cargo bench` and the cargo-fuzz targets share with the library: the
//! benchmark harness and the fuzz harnesses. Not a stable API; hidden from the docs.

pub mod bench;
pub mod fuzzing;
pub mod seed;
