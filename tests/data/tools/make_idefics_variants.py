"""Writes tests/data/edge/idefics_qk_vector: a tiny IdeficsForVisionText2Text (transformers 5.24)
with the options the golden cases leave out (qk_layer_norms in the gated layers,
qk_layer_norms_perceiver, alpha_type "vector", head widths ≠ embed_dim), saved by
save_pretrained, and what it computes: the Perceiver on image_hidden_states, and gated layer 1
on text whose image_attention_mask has gaps, counts above 1 and tokens that see nothing
(preprocessed exactly as IdeficsModel.forward does). Also tests/data/edge/resample.safetensors:
F.interpolate(bilinear, align_corners=False) down and up, MaxPool2d and AvgPool2d with k = 3.

    python tests/data/tools/make_idefics_variants.py     (needs torch, transformers 5.24, safetensors)
"""
import json, os
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import IdeficsConfig, IdeficsForVisionText2Text

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "edge")
torch.manual_seed(3)

cfg = IdeficsConfig(
    vocab_size=32, additional_vocab_size=2, hidden_size=24, intermediate_size=40, num_hidden_layers=4,
    num_attention_heads=3, cross_layer_interval=2, qk_layer_norms=True, alpha_type="vector",
    alpha_initializer="normal", alphas_initializer_range=0.5, use_resampler=True, rms_norm_eps=1e-6,
    max_position_embeddings=32, tie_word_embeddings=False,
    vision_config=dict(embed_dim=20, image_size=8, patch_size=4, num_hidden_layers=1, num_attention_heads=2, intermediate_size=24),
    perceiver_config=dict(resampler_n_latents=5, resampler_depth=2, resampler_n_heads=3, resampler_head_dim=7, qk_layer_norms_perceiver=True),
)
model = IdeficsForVisionText2Text(cfg).eval()
with torch.no_grad():
    for name, p in model.named_parameters():  # no norm left at 1/0, no gate at 0
        p.normal_(0.0, 0.3 if p.ndim > 1 else 0.5)
        if name.endswith("layernorm.weight") or name.endswith("layer_norm.weight") or ".ln.weight" in name or name.endswith("norm.weight"):
            p.add_(1.0)
case = os.path.join(OUT, "idefics_qk_vector")
model.save_pretrained(case)
for extra in ["generation_config.json"]:
    if os.path.exists(os.path.join(case, extra)):
        os.remove(os.path.join(case, extra))

m = model.model
with torch.no_grad():
    # 1. Perceiver: [b·num_images, seq, E] → [b·num_images, n_latents, E].
    images = torch.randn(4, 7, 20)
    resampled = m.perceiver_resampler(images)
    # 2. Gated layer 1 (before decoder layer 2): b = 2, 3 images of n = 5 latents each.
    b, L, num_images = 2, 8, 3
    x = torch.randn(b, L, 24)
    img = torch.randn(b, num_images * 5, 20)
    mask = torch.tensor([
        [[0, 0, 0], [1, 0, 0], [1, 0, 1], [0, 2, 0], [1, 1, 1], [0, 0, 1], [0, 0, 0], [-1, 0, 1]],
        [[1, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 1], [0, 1, 1], [3, 0, 0], [1, 1, 0], [0, 0, 1]],
    ])
    n = img.size(1) // num_images
    expanded = mask[..., None].expand(-1, -1, -1, n).reshape(b, L, -1)
    additive = torch.where(expanded[:, None, :, :].bool(), torch.tensor(0.0), torch.finfo(torch.float32).min)
    gate = (additive == 0.0).any(dim=-1).to(torch.float32).squeeze(dim=1)
    out = m.gated_cross_attn_layers[1](x, None, img, image_attention_mask=additive, cross_attention_gate=gate)
    out = out[0] if isinstance(out, tuple) else out
save_file({
    "image_hidden_states": images.contiguous(), "perceiver_output": resampled.contiguous(),
    "hidden_states": x.contiguous(), "resampled_images": img.contiguous(), "image_attention_mask": mask.to(torch.int64),
    "output": out.contiguous(), "cross_attention_gate": gate.contiguous(),
}, os.path.join(case, "io.safetensors"))

# 3. Resampling of token grids: x [b, h·w, c] row-major, as the kernels see it.
def grid(t, h, w):  # [b, h·w, c] → [b, c, h, w]
    return t.reshape(t.shape[0], h, w, -1).permute(0, 3, 1, 2)
def tokens(t):      # [b, c, h, w] → [b, h·w, c]
    return t.permute(0, 2, 3, 1).reshape(t.shape[0], -1, t.shape[1]).contiguous()
r = {}
for name, (b, h, w, c, oh, ow) in {"down": (2, 5, 5, 3, 3, 3), "up": (1, 3, 4, 2, 7, 9), "mixed": (2, 7, 3, 4, 12, 2)}.items():
    x = torch.randn(b, h * w, c)
    r[f"{name}_x"] = x
    r[f"{name}_y"] = tokens(F.interpolate(grid(x, h, w), size=(oh, ow), mode="bilinear", align_corners=False))
x = torch.randn(2, 7 * 8, 3)
x[0, 0, 0] = float("-inf")
r["pool_x"] = x
r["max3_y"] = tokens(torch.nn.MaxPool2d(3, 3)(grid(x, 7, 8)))
r["avg3_y"] = tokens(torch.nn.AvgPool2d(3, 3)(grid(x.clamp_min(-1e30), 7, 8)))
r["pool_x_finite"] = x.clamp_min(-1e30)
save_file({k: v.contiguous() for k, v in r.items()}, os.path.join(OUT, "resample.safetensors"))
print("wrote", case, "and resample.safetensors")
