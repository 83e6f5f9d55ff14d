"""Writes tests/data/edge/*.safetensors: inputs the reference accepts at the edges (zero frames,
more <image> tokens than media, shared media, counts above 1, one-row embedding tables) and what
OpenFlamingo 2.0.1 `helpers.py` computes for them, on the weights of the golden cases (or, for the
one-row tables, on weights written next to them). Needs torch, einops, einops_exts and a copy of
open_flamingo/src/helpers.py importable as `helpers` (pass its folder as the first argument):

    python tests/data/tools/make_edge_cases.py /path/to/open_flamingo/src
"""
import json, os, sys
import torch
from safetensors.torch import load_file, save_file

sys.path.insert(0, sys.argv[1])
import importlib
H = importlib.import_module(sys.argv[2] if len(sys.argv) > 2 else "helpers")

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..")
OUT = os.path.join(DATA, "edge")
torch.manual_seed(7)


def load(case, cls, key):
    cfg = json.load(open(os.path.join(DATA, case, "config.json")))[key]
    cfg = {k: v for k, v in cfg.items() if v is not None}
    if cls is H.GatedCrossAttentionBlock:
        cfg.pop("ff_mult", None)
    m = cls(**cfg).eval()
    sd = load_file(os.path.join(DATA, case, "model.safetensors"))
    prefix = "perceiver." if key == "perceiver" else "lang_encoder.gated_cross_attn_layers.0."
    m.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
    return m, cfg


with torch.no_grad():
    # 1. Perceiver with F·v = 0: the latents attend to themselves alone.
    p, cfg = load("perceiver_tiny", H.PerceiverResampler, "perceiver")
    x0 = torch.randn(2, 1, 1, 0, cfg["dim"])
    x1 = torch.randn(1, 2, 0, 3, cfg["dim"])
    save_file({"v0_vision_features": x0, "v0_output": p(x0), "f0_vision_features": x1, "f0_output": p(x1)},
              os.path.join(OUT, "perceiver_tiny_empty_media.safetensors"))

    # 2. Gated layers: more <image> tokens than media, counts above 1, one media row for two text rows.
    for case in ["gated_xattn_tiny", "gated_xattn_all_previous"]:
        g, cfg = load(case, H.GatedCrossAttentionBlock, "gated_xattn")
        x = torch.randn(2, 7, cfg["dim"])
        media = torch.randn(2, 2, 3, cfg["dim_visual"])
        loc = torch.tensor([[0, 1, 0, 1, 0, 1, 1], [2, 0, 1, 0, 0, 0, 0]])
        shared = torch.randn(1, 2, 3, cfg["dim_visual"])
        loc_b = torch.tensor([[1, 0, 0, 1, 0, 0, 0], [0, 0, 1, 0, 0, 0, 0]])
        save_file({
            "hidden_states": x, "media": media, "media_locations": loc.to(torch.int64), "output": g(x, media, media_locations=loc),
            "shared_media": shared, "shared_locations": loc_b.to(torch.int64), "shared_output": g(x, shared, media_locations=loc_b.bool()),
        }, os.path.join(OUT, f"{case}_extra_images.safetensors"))

    # 3. One-row frame_embs / media_time_embs broadcast over every frame and media.
    p1 = H.PerceiverResampler(dim=16, depth=1, dim_head=4, heads=2, num_latents=3, max_num_frames=1, max_num_media=1).eval()
    for prm in p1.parameters():
        prm.normal_(0, 0.5)
    x = torch.randn(2, 3, 2, 4, 16)
    tensors = {f"perceiver.{k}": v.contiguous() for k, v in p1.state_dict().items()}
    tensors.update({"vision_features": x, "output": p1(x)})
    save_file(tensors, os.path.join(OUT, "perceiver_one_row_embs.safetensors"))
print("wrote", sorted(os.listdir(OUT)))
