"""Fixtures for tests/preprocess.rs, made with Pillow 13.0.0 (the golden cases' version; run with
a venv holding pillow and numpy, from the repository root):

- images/cmyk.jpg: coffee.png resized to 24x16 (bicubic), converted to CMYK, saved as JPEG q95
  (Pillow writes Adobe-style inverted CMYK).
- images/cmyk_pil_rgb.png: what Pillow's convert("RGB") makes of that JPEG (the reference's conversion).
- images/coffee_jpg_pil_crop.png: Pillow/libjpeg-turbo's decode of assets/images/coffee.jpg, rows
  150..246 and columns 250..346 (a 96x96 crop: the whole decode would be 470 KB).
"""
import numpy as np
from PIL import Image

out = "tests/data/images/"
im = Image.open("assets/images/coffee.png").convert("RGB").resize((24, 16), Image.BICUBIC)
im.convert("CMYK").save(out + "cmyk.jpg", quality=95)
Image.open(out + "cmyk.jpg").convert("RGB").save(out + "cmyk_pil_rgb.png")
full = np.asarray(Image.open("assets/images/coffee.jpg").convert("RGB"))
Image.fromarray(full[150:246, 250:346]).save(out + "coffee_jpg_pil_crop.png")

# Resizes Pillow 13 does, for the port in src/preprocess/resize.rs (inputs are crops of coffee.png:
# [top, left, height, width]; outputs [height, width]; the file names say all of it).
coffee = Image.open("assets/images/coffee.png").convert("RGB")
for (top, left, h, w), (oh, ow), f in [
    ((0, 0, 400, 200), (42, 42), Image.BICUBIC),   # tall: Pillow 13 goes vertical first
    ((0, 0, 400, 600), (30, 30), Image.BILINEAR),  # SigLIP's filter
    ((100, 200, 13, 17), (40, 50), Image.BICUBIC), # upscale on both axes
    ((100, 200, 13, 17), (9, 50), Image.BILINEAR), # one axis down, one up
]:
    name = "bicubic" if f == Image.BICUBIC else "bilinear"
    crop = coffee.crop((left, top, left + w, top + h))
    crop.resize((ow, oh), f).save(out + f"resize_{top}_{left}_{h}x{w}_to_{oh}x{ow}_{name}.png")
