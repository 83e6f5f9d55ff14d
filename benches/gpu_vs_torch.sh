#!/usr/bin/env bash
# One repeatable GPU measurement: vlmc (f32 and f16) and PyTorch eager (f32, TF32, f16) on the same
# NVIDIA GPU in one call, printed side by side. Run on the lent machine through the `device` tool
# (../shared/device/README.md): build here first (`cargo build --release --bins`), run
# `bash ../shared/device/prepare.sh` once, carry [".gl", "target/release/vlmc"], then
#     source .gl/gpu-env.sh; bash benches/gpu_vs_torch.sh
# It needs about 3–5 minutes on an H100 / H200 (most of it PyTorch's 50 repeats per entry).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/gpu_vs_torch}"
mkdir -p "$out"
vlmc="${VLMC:-target/release/vlmc}"
"$vlmc" info > "$out/info.txt" && head -4 "$out/info.txt"
# BENCH_ARGS / TORCH_ARGS narrow the run (e.g. to check the script on a CPU:
# BENCH_ARGS="--only gemm --shape 576,1024,4096 --repeats 1" TORCH_ARGS="--device cpu --only gemm --repeats 1").
"$vlmc" bench --dtype f32 --json "$out/vlmc_f32.json" ${BENCH_ARGS:-} > "$out/vlmc_f32.txt"
"$vlmc" bench --dtype f16 --json "$out/vlmc_f16.json" ${BENCH_ARGS:-} > "$out/vlmc_f16.txt"
"${PYTHON:-python3}" benches/torch_reference.py --json "$out/torch.json" ${TORCH_ARGS:-} > "$out/torch.txt"
"${PYTHON:-python3}" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
ours = {}
for dt in ("f32", "f16"):
    for r in json.load(open(f"{out}/vlmc_{dt}.json")):
        ours[(r["name"], tuple(r["shape"]), dt)] = r
torch = {(r["name"], tuple(r["shape"]), r["dtype"]): r for r in json.load(open(f"{out}/torch.json"))}
names = sorted({(n, s) for (n, s, _) in torch}, key=lambda k: (["gemm", "llava", "qformer", "perceiver", "gated_xattn", "llava_pixels"].index(k[0]), k[1]))
adapter = next(iter(ours.values()))["adapter"] if ours else "?"
print(f"\nvlmc on {adapter} vs PyTorch eager on the same GPU (median ms; ratio = vlmc / torch)")
print(f"{'entry':12} {'shape':24} {'vlmc f32':>9} {'torch f32':>9} {'ratio':>6} {'torch tf32':>10} {'vlmc f16':>9} {'torch f16':>9} {'ratio':>6}")
for n, s in names:
    v32, v16 = ours.get((n, s, "f32")), ours.get((n, s, "f16"))
    t32, t_tf, t16 = torch.get((n, s, "f32")), torch.get((n, s, "tf32")), torch.get((n, s, "f16"))
    ms = lambda r: f"{r['median_ms']:9.3f}" if r else f"{'-':>9}"
    ratio = lambda a, b: f"{a['median_ms'] / b['median_ms']:6.2f}" if a and b else f"{'-':>6}"
    print(f"{n:12} {'×'.join(map(str, s)):24} {ms(v32)} {ms(t32)} {ratio(v32, t32)} {ms(t_tf):>10} {ms(v16)} {ms(t16)} {ratio(v16, t16)}")
PY
