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
