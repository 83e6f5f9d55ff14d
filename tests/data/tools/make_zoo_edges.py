"""Writes tests/data/edge/zoo_edges.safetensors: what transformers 5.24 computes on the zoo golden
checkpoints (tests/data/zoo) for inputs the golden cases leave out.

- mistral3_*: Mistral3MultiModalProjector on three images of different patch grids, two of them odd
  (F.unfold floors: a 3×5 grid gives 1×2 merged tokens), and whether a grid side below the merge
  size is refused (it is: unfold has no block to take).
- mllama_*: the projector and cross-attention layer 1 of the golden checkpoint with two images of 2
  and 1 tiles (the second's padded tile masked), text rows before the first image that see nothing
  (all-zero bias: they attend every key; their MLP branch is zeroed), and a mask value of 2 (masked:
  the reference allows a tile only where 1 − v = 0).
- idefics2_*: Idefics2Connector of the golden checkpoint with padded patches masked out
  (`patch_attention_mask` BOOL, sample 0 has 6 of 16 patches masked, sample 1 none), and the same
  mask as int64 2s and 0s (any nonzero value is a real patch there).

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

from transformers import MllamaForConditionalGeneration
from transformers.models.mllama.modeling_mllama import _prepare_cross_attention_mask

case = os.path.join(DATA, "zoo", "mllama_xattn")
model = MllamaForConditionalGeneration.from_pretrained(case).eval()
lm = model.model.language_model
d, P = lm.config.hidden_size, 5
b, L, n, t = 2, 7, 2, 2
states = torch.randn(b, n, t, P, model.config.vision_config.vision_output_dim)
x = torch.randn(b, L, d) * torch.rand(b, L, 1).mul(2).add(0.02)
mask = torch.zeros(b, L, n, t, dtype=torch.int64)
mask[0, 2:, 0, :] = 1          # sample 0: image 0 (2 tiles) from token 2
mask[0, 5:, 1, 0] = 1          # and image 1 (1 tile, tile 1 padding) from token 5
mask[1, 1:, 1, 0] = 1          # sample 1: only image 1's first tile
mask[1, 4, 0, 1] = 2           # a 2: masked like a 0
with torch.no_grad():
    projected = model.model.multi_modal_projector(states).reshape(-1, P, d)
    bias, rows = _prepare_cross_attention_mask(mask, num_vision_tokens=P, dtype=torch.float32)
    layer = lm.layers[lm.config.cross_attention_layers[0]]
    y = layer(x, cross_attention_states=projected.reshape(b, -1, d), cross_attention_mask=bias, attention_mask=None,
              full_text_row_masked_out_mask=rows)
    y = y[0] if isinstance(y, tuple) else y
out.update({"mllama_hidden_states": x, "mllama_cross_attention_states": states, "mllama_cross_attention_mask": mask,
            "mllama_output": y, "mllama_projected": projected, "mllama_row_mask": rows.reshape(b, L)})

from transformers import Idefics2ForConditionalGeneration

case = os.path.join(DATA, "zoo", "idefics2_connector")
model = Idefics2ForConditionalGeneration.from_pretrained(case).eval()
conn = model.model.connector
x = torch.randn(2, 16, model.config.vision_config.hidden_size) * torch.rand(2, 16, 1).mul(2).add(0.02)
pmask = torch.ones(2, 16, dtype=torch.bool)
pmask[0, [3, 7, 11, 12, 13, 14]] = False
with torch.no_grad():
    y = conn(x, attention_mask=pmask)
    y2 = conn(x, attention_mask=pmask.long() * 2)  # an int mask of 2s: what the reference makes of it
# transformers 5.24 turns the mask into bools (create_bidirectional_mask): any nonzero value is a
# real patch. Kept as an int64 mask of 2s and 0s that must give the bool mask's output.
assert torch.allclose(y2, y), "an int mask of 2s no longer acts like the bool mask"
out.update({"idefics2_image_hidden_states": x, "idefics2_patch_attention_mask": pmask, "idefics2_output": y,
            "idefics2_patch_attention_mask_int2": pmask.long() * 2})

save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(DATA, "edge", "zoo_edges.safetensors"))
print({k: list(v.shape) for k, v in out.items()})
