#!/usr/bin/env bash
# Runs the cooperative-matrix GEMM tests (tests/coop.rs, every test with `coop` in its name) and the
# f16, golden and zoo suites on Mesa >= 26 lavapipe: a CPU Vulkan driver that offers 8x8x8
# f16 -> f32 cooperative matrices. VLMC_REQUIRE_COOP=1 makes a missing configuration a failure
# instead of a skipped test.
#
#   scripts/coop_lavapipe.sh LAVAPIPE_DIR
#
# LAVAPIPE_DIR holds a Mesa 26 lavapipe with its `run` wrapper (`.ci/lavapipe.sh 26 LAVAPIPE_DIR`).
# Sid's Mesa runs through sid's own loader, which a child process does not inherit: cargo stays on
# the system's and starts each test binary through `run` (its target runner), so tests that spawn
# `vlmc` are not among these.
set -euo pipefail
dir=$(cd "${1:?usage: scripts/coop_lavapipe.sh LAVAPIPE_DIR}" && pwd)
[ -x "$dir/run" ] || { echo "$dir/run not found: set up Mesa 26 lavapipe there first (.ci/lavapipe.sh 26 $dir)" >&2; exit 2; }
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cargo build --release --bin vlmc
"$dir/run" target/release/vlmc info | grep -E "^chosen|cooperative|subgroup size" || true
export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$dir/run"
VLMC_REQUIRE_COOP=1 VLMC_AUTOTUNE=off cargo test --release --test coop --test f16 --test golden --test zoo -- --test-threads 1
