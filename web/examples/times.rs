//! The browser test's cases timed natively, for the browser-vs-native table in web/README.md:
//!
//!     cd web && cargo run --release --target x86_64-unknown-linux-gnu --example times
//!
//! (`web/.cargo/config.toml` builds for wasm32 by default; name the host target.) The browser's
//! numbers come from `cargo test -- --nocapture` (the `forward_times_per_case` test).

#[path = "../tests/common/mod.rs"]
#[macro_use]
mod common;

fn main() {
    let g = vlm_connectors::Gpu::new().expect("a GPU adapter");
    println!("{} | case | wall ms | GPU ms (median of 5 after a warm-up)", g.describe());
    for case in common::cases() {
        let (c, inputs) = case.load(&g);
        let (wall, gpu_ms) = pollster::block_on(common::time_forward(&g, &c, &inputs, 5));
        println!("| {} | {wall:.2} | {} |", case.name, gpu_ms.map_or("—".into(), |v| format!("{v:.2}")));
    }
}
