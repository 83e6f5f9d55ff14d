"""Writes tests/data/edge/zoo_edges.safetensors: what transformers 5.24 computes on the zoo golden
checkpoints (tests/data/zoo) for inputs the golden cases leave out.

- mistral3_*: Mistral3MultiModalProjector on three images of different patch grids, two of them odd
  (F.unfold floors: a 3×5 grid gives 1×2 merged tokens), and whether a grid side below the merge
  size is refused (it is: unfold has no block to take).

    python tests/data/tools/make_zoo_edges.py     (needs torch, transformers 5.24, safetensors)
"""
import os
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig
from transformers.models.mistral3.modeling_mistral3 import Mistral3MultiModalProjector

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..")
torch.manual_seed(11)
out = {}

case = os.path.join(DATA, "zoo", "mistral3_projector")
cfg = AutoConfig.from_pretrained(case)
proj = Mistral3MultiModalProjector(cfg).eval()
sd = {k.split("multi_modal_projector.", 1)[1]: v for k, v in load_file(os.path.join(case, "model.safetensors")).items() if "multi_modal_projector." in k}
proj.load_state_dict(sd)
sizes = torch.tensor([[16, 24], [12, 20], [20, 12]], dtype=torch.int64)  # patch 4: 4×6, 3×5, 5×3
n = int(sum((h // 4) * (w // 4) for h, w in sizes.tolist()))
x = torch.randn(n, cfg.vision_config.hidden_size) * torch.rand(n, 1).mul(2).add(0.02)
with torch.no_grad():
    y = proj(x, sizes)
out.update({"mistral3_image_features": x, "mistral3_image_sizes": sizes, "mistral3_output": y})
try:
    with torch.no_grad():
        proj(torch.randn(2, cfg.vision_config.hidden_size), torch.tensor([[4, 8]]))
    print("a 1×2 grid ran")
except Exception as e:  # recorded in the test as the reference's behaviour
    print("a 1×2 grid is refused:", type(e).__name__, str(e)[:120])

save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(DATA, "edge", "zoo_edges.safetensors"))
print({k: list(v.shape) for k, v in out.items()})
