#!/usr/bin/env bash
# Builds the web page: web/ (the crate's wasm-bindgen API) for wasm32-unknown-unknown, then
# wasm-bindgen into web/pkg. `scripts/web.sh serve` then serves the repository at
# http://127.0.0.1:8000/web/ (PORT to change it): the page fetches the shipped tiny models from
# tests/data/pixels and the photos from assets/images. Installs what it needs from crates.io
# when missing: the wasm32 target (rustup) and wasm-bindgen-cli at the version web/Cargo.lock pins
# (built from source; no prebuilt binaries are downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
# The CLI must be the wasm-bindgen version web/Cargo.lock holds.
WASM_BINDGEN_VERSION=$(grep -A1 '^name = "wasm-bindgen"$' web/Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if command -v rustup >/dev/null && ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH" # where cargo install puts the CLI
if ! wasm-bindgen --version 2>/dev/null | grep -q " $WASM_BINDGEN_VERSION"; then
  echo "web.sh: installing wasm-bindgen-cli $WASM_BINDGEN_VERSION from crates.io (a few minutes, once)"
  # Not --locked: its lock file names a webpki-roots release that crates.io no longer serves.
  cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION"
fi
(cd web && cargo build --release --lib)
wasm-bindgen --target web --no-typescript --out-dir web/pkg web/target/wasm32-unknown-unknown/release/vlm_connectors_web.wasm
echo "web.sh: built web/pkg ($(du -h web/pkg/vlm_connectors_web_bg.wasm | cut -f1) of wasm)"
if [ "${1:-}" = serve ]; then
  echo "web.sh: open http://127.0.0.1:${PORT:-8000}/web/ in a browser with WebGPU (Chrome, Edge; Firefox 141+, Safari 26+)"
  exec python3 -m http.server "${PORT:-8000}" --bind 127.0.0.1
fi
