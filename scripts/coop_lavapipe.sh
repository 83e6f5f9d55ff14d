#!/usr/bin/env bash
# Runs the cooperative-matrix GEMM tests (tests/coop.rs, every test with `coop` in its name) and the
# f16 suites, whose GEMMs then go through it, on Mesa >= 26 lavapipe: a CPU Vulkan driver that
# offers 8x8x8 f16 -> f32 cooperative matrices. VLMC_REQUIRE_COOP=1 makes a missing configuration a
# failure instead of a skipped test.
#
#   scripts/coop_lavapipe.sh LAVAPIPE_DIR
#
# LAVAPIPE_DIR holds a Mesa 26 lavapipe with its `run` wrapper, e.g. from the project's
# `../shared/lavapipe/setup.sh 26 LAVAPIPE_DIR`. Sid's Mesa runs through sid's own loader, which a
# child process does not inherit, so each test binary is started through `run` directly (tests
# that spawn `vlmc` cannot run there).
set -euo pipefail
dir=${1:?usage: scripts/coop_lavapipe.sh LAVAPIPE_DIR}
[ -x "$dir/run" ] || { echo "$dir/run not found: set up Mesa 26 lavapipe there first" >&2; exit 2; }
cd "$(dirname "$0")/.."
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/xdg-runtime-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
cargo test --release --no-run --test coop --test f16 --test golden --test zoo 2>&1 | tail -1
"$dir/run" target/release/vlmc info | grep -E "^chosen|features:|cooperative|subgroup size" || true
status=0
for t in coop f16 golden zoo; do
  bin=$(ls -t target/release/deps/$t-* | grep -v '\.d$' | head -1)
  echo "== $t ($bin) on $dir"
  VLMC_REQUIRE_COOP=1 VLMC_AUTOTUNE=off "$dir/run" "$bin" --test-threads 1 || status=1
done
exit $status
