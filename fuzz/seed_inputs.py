"""Writes one `inputs` corpus seed per golden case (tests/data and tests/data/zoo): the byte that
picks the case's connector in `internal::fuzzing::input_connectors` (registry rows in order, each
row's cases sorted by (model_type, path)), then the case's inputs.safetensors. Seeds are named by
their SHA-1 like cargo-fuzz's; rewriting an existing one changes nothing.

    python3 fuzz/seed_inputs.py [--only zoo/]
"""
import hashlib, json, os, re, sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""
src = open(os.path.join(ROOT, "src/connectors/models.rs")).read()
body = src[src.index("pub static MODELS"):]
rows = [re.findall(r'"([^"]+)"', m) for m in re.findall(r"model_types: &\[([^\]]*)\]", body)]
cases = []
for d in ["tests/data", "tests/data/zoo"]:
    for n in os.listdir(os.path.join(ROOT, d)):
        p = os.path.abspath(os.path.join(ROOT, d, n))
        try:
            cases.append((json.load(open(os.path.join(p, "config.json")))["model_type"], p))
        except (OSError, ValueError, KeyError):
            pass
cases.sort()
order = [c for r in rows for c in cases if c[0] in r]
for i, (mt, p) in enumerate(order):
    rel = os.path.relpath(p, os.path.join(ROOT, "tests/data"))
    if not rel.startswith(only) or not os.path.exists(os.path.join(p, "inputs.safetensors")):
        continue
    data = bytes([i]) + open(os.path.join(p, "inputs.safetensors"), "rb").read()
    name = hashlib.sha1(data).hexdigest()
    open(os.path.join(ROOT, "fuzz/corpus/inputs", name), "wb").write(data)
    print(i, mt, rel, name)
