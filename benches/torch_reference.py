#!/usr/bin/env python3
"""Times the PyTorch reference connectors on CUDA at the seed's shapes, to compare with `vlmc bench`.

Run on the same machine as `vlmc bench --json ours.json` (e.g. the lent H100):
    python3 benches/torch_reference.py --json torch.json
Modes: float32 with TF32 off (the honest f32 baseline), float32 with TF32 on, and float16.
Each entry: warm-up, then the median of --repeats CUDA-event timings of one forward.

Entries (names match `vlmc bench`): gemm (576×1024×4096 and 4096³ matmul), llava
(transformers LlavaMultiModalProjector), qformer (Blip2QFormerModel + language_projection),
perceiver (OpenFlamingo PerceiverResampler, re-implemented from open_flamingo/src/helpers.py when the
package is not installed), gated_xattn (GatedCrossAttentionBlock, likewise), llava_pixels (CLIPVisionModel
ViT-L/14-336 cut to 23 layers + the projector, from pixel_values [1, 3, 336, 336]).
"""
import argparse
import json
import statistics
import time

import torch
from torch import einsum, nn


def median_ms(fn, repeats, dev, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    if dev.type != "cuda":  # wall clock on the CPU (a check of the script more than a baseline)
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)
    torch.cuda.synchronize()
    for _ in range(repeats):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


# --- OpenFlamingo helpers (open_flamingo/src/helpers.py), used when open_flamingo is absent ---
def feed_forward(dim, mult=4):
    inner = int(dim * mult)
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, inner, bias=False), nn.GELU(), nn.Linear(inner, dim, bias=False))


class PerceiverAttention(nn.Module):
    def __init__(self, dim, dim_head=64, heads=8):
        super().__init__()
        self.scale, self.heads = dim_head ** -0.5, heads
        inner = dim_head * heads
        self.norm_media, self.norm_latents = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x, latents):
        x, latents = self.norm_media(x), self.norm_latents(latents)
        h = self.heads
        q = self.to_q(latents)
        k, v = self.to_kv(torch.cat((x, latents), dim=-2)).chunk(2, dim=-1)
        b, t = q.shape[:2]
        q, k, v = (z.reshape(b, t, z.shape[2], h, -1).permute(0, 3, 1, 2, 4) for z in (q, k, v))
        sim = einsum("... i d, ... j d -> ... i j", q * self.scale, k)
        attn = (sim - sim.amax(dim=-1, keepdim=True).detach()).softmax(dim=-1)
        out = einsum("... i j, ... j d -> ... i d", attn, v)
        return self.to_out(out.permute(0, 2, 3, 1, 4).reshape(b, t, out.shape[3], -1))


class PerceiverResampler(nn.Module):
    def __init__(self, dim, depth=6, dim_head=64, heads=8, num_latents=64, ff_mult=4):
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_latents, dim))
        self.layers = nn.ModuleList([nn.ModuleList([PerceiverAttention(dim, dim_head, heads), feed_forward(dim, ff_mult)]) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        b, T, F, v = x.shape[:4]
        x = x.reshape(b, T, F * v, -1)
        latents = self.latents.expand(b, T, *self.latents.shape)
        for attn, ff in self.layers:
            latents = attn(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm(latents)


class MaskedCrossAttention(nn.Module):
    def __init__(self, dim, dim_visual, dim_head=64, heads=8):
        super().__init__()
        self.scale, self.heads = dim_head ** -0.5, heads
        inner = dim_head * heads
        self.norm = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim_visual, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x, media, media_locations):
        _, T_img, n = media.shape[:3]
        h = self.heads
        x = self.norm(x)
        q = self.to_q(x)
        media = media.reshape(media.shape[0], T_img * n, -1)
        k, v = self.to_kv(media).chunk(2, dim=-1)
        q, k, v = (z.reshape(z.shape[0], z.shape[1], h, -1).transpose(1, 2) for z in (q, k, v))
        sim = einsum("... i d, ... j d -> ... i j", q * self.scale, k)
        text_time = media_locations.cumsum(dim=-1)
        media_time = torch.arange(T_img, device=x.device) + 1
        mask = torch.eq(text_time[:, None, :, None], media_time.repeat_interleave(n)[None, None, None, :])
        sim = sim.masked_fill(~mask, -torch.finfo(sim.dtype).max)
        attn = (sim - sim.amax(dim=-1, keepdim=True).detach()).softmax(dim=-1)
        attn = attn.masked_fill((text_time == 0)[:, None, :, None], 0.0)
        out = einsum("... i j, ... j d -> ... i d", attn, v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1)
        return self.to_out(out)


class GatedCrossAttentionBlock(nn.Module):
    def __init__(self, dim, dim_visual, dim_head=64, heads=8, ff_mult=4):
        super().__init__()
        self.attn = MaskedCrossAttention(dim, dim_visual, dim_head, heads)
        self.attn_gate = nn.Parameter(torch.tensor([0.3]))
        self.ff = feed_forward(dim, ff_mult)
        self.ff_gate = nn.Parameter(torch.tensor([0.2]))

    def forward(self, x, media, media_locations):
        x = self.attn(x, media, media_locations) * self.attn_gate.tanh() + x
        return self.ff(x) * self.ff_gate.tanh() + x


def entries(dev, dtype):
    from transformers import Blip2QFormerConfig, Blip2QFormerModel, LlavaConfig
    from transformers.models.llava.modeling_llava import LlavaMultiModalProjector

    g = torch.Generator(device="cpu").manual_seed(0)
    rnd = lambda *s: torch.randn(*s, generator=g).to(dev, dtype)
    out = []
    for m, k, n in [(576, 1024, 4096), (4096, 4096, 4096)]:
        a, b = rnd(m, k), rnd(n, k)
        out.append(("gemm", [m, k, n], 2 * m * k * n, lambda a=a, b=b: a @ b.T))
    # CLIP-L/336 into Vicuna-7B; transformers 5 checks the heads divide the width, so CLIP-L's 16 heads.
    vision = {"model_type": "clip_vision_model", "hidden_size": 1024, "num_attention_heads": 16, "intermediate_size": 4096}
    cfg = LlavaConfig(vision_config=vision, text_config={"model_type": "llama", "hidden_size": 4096, "num_attention_heads": 32})
    proj = LlavaMultiModalProjector(cfg).to(dev, dtype).eval()
    x = rnd(1, 576, 1024)
    out.append(("llava", [576, 1024, 4096, 4096], 2 * 576 * (1024 * 4096 + 4096 * 4096), lambda: proj(x)))
    # LLaVA-1.5 from pixels: CLIP ViT-L/14-336 run to layer -2 (23 layers; last_hidden_state adds
    # only post_layernorm), CLS dropped, then the projector (vlmc bench's llava_pixels).
    from transformers import CLIPVisionConfig, CLIPVisionModel
    tcfg = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=23,
                            image_size=336, patch_size=14, hidden_act="quick_gelu")
    tower = CLIPVisionModel(tcfg).to(dev, dtype).eval()
    px = rnd(1, 3, 336, 336)
    out.append(("llava_pixels", [336, 1024, 23, 4096], None, lambda: proj(tower(pixel_values=px).last_hidden_state[:, 1:])))
    qcfg = Blip2QFormerConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, encoder_hidden_size=1408, cross_attention_frequency=2)
    qf = Blip2QFormerModel(qcfg).to(dev, dtype).eval()
    lp = nn.Linear(768, 2560).to(dev, dtype)
    queries, img = rnd(1, 32, 768), rnd(1, 257, 1408)
    out.append(("qformer", [257, 1408, 32, 768], None, lambda: lp(qf(query_embeds=queries, encoder_hidden_states=img).last_hidden_state)))
    try:
        from open_flamingo.src.helpers import GatedCrossAttentionBlock as GX, PerceiverResampler as PR
    except ImportError:
        GX, PR = GatedCrossAttentionBlock, PerceiverResampler
    pr = PR(dim=1024, depth=6, dim_head=64, heads=8, num_latents=64).to(dev, dtype).eval()
    feats = rnd(1, 4, 1, 257, 1024)
    out.append(("perceiver", [4, 257, 1024, 64], None, lambda: pr(feats)))
    gx = GX(dim=4096, dim_visual=1024, dim_head=64, heads=8).to(dev, dtype).eval()
    text, media = rnd(1, 128, 4096), rnd(1, 4, 64, 1024)
    locs = torch.zeros(1, 128, dtype=torch.bool, device=dev)
    locs[0, [0, 32, 64, 96]] = True
    out.append(("gated_xattn", [128, 4096, 256, 1024], None, lambda: gx(text, media, media_locations=locs)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--json")
    ap.add_argument("--device", default="cuda", help="cuda (the baseline) or cpu (to check the script)")
    ap.add_argument("--modes", default="f32,tf32,f16", help="comma list of f32, tf32, f16")
    ap.add_argument("--only", help="comma list of entry names")
    args = ap.parse_args()
    dev = torch.device(args.device)
    records = []
    all_modes = {"f32": (torch.float32, False), "tf32": (torch.float32, True), "f16": (torch.float16, False)}
    for mode in args.modes.split(","):
        dtype, tf32 = all_modes[mode]
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        with torch.no_grad():
            for name, shape, flops, fn in entries(dev, dtype):
                if args.only and name not in args.only.split(","):
                    continue
                ms = median_ms(fn, args.repeats, dev)
                adapter = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
                rec = {"name": name, "shape": shape, "dtype": mode, "median_ms": ms, "gflops": (flops / ms / 1e6) if flops else None,
                       "adapter": adapter, "backend": "%s (pytorch %s)" % (dev.type, torch.__version__)}
                records.append(rec)
                print(f"{mode:5} {name:12} {str(shape):24} {ms:9.3f} ms" + (f" {rec['gflops']:10.1f} GFLOP/s" if flops else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)


if __name__ == "__main__":
    main()
