// anyres_resize.wgsl: LLaVA-OneVision's `pack_image_features` for a large grid, as one gather:
// the unpadded feature map (as in anyres.wgsl) bilinearly resized to out_h × out_w
// (F.interpolate mode="bilinear", align_corners=False, no antialias: source coordinate
// (dst + 0.5)·scale − 0.5 clamped at 0, scale = in / out), a newline after every row, the global
// view first. Output rows:
//   [0, h·w)                      the global view's tokens
//   h·w + Y·(out_w+1) + X         resized pixel (Y, X) for X < out_w, the newline for X = out_w

struct ResizeParams {
    hw: u32,       // tokens per tile
    w: u32,        // tokens per tile row
    h: u32,
    npw: u32,      // grid columns
    y0: u32,       // kept window of the grid map (unpad_image)
    x0: u32,
    rows: u32,
    cols: u32,
    c: u32,        // channels
    total: u32,    // output rows
    out_h: u32,
    out_w: u32,
    scale_h: f32,  // rows / out_h
    scale_w: f32,  // cols / out_w
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> p: ResizeParams;
@group(0) @binding(1) var<storage, read> tiles: array<f32>;
@group(0) @binding(2) var<storage, read> newline: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

// Pixel (yy, xx) of the kept map, read from its tile.
fn kept(yy: u32, xx: u32, ch: u32) -> f32 {
    let ym = p.y0 + yy;
    let xm = p.x0 + xx;
    let tile = 1u + (ym / p.h) * p.npw + xm / p.w;
    let tok = (ym % p.h) * p.w + xm % p.w;
    return tiles[(tile * p.hw + tok) * p.c + ch];
}

@compute @workgroup_size(256, 1, 1)
fn anyres_resize_pack(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.total * p.c) { return; }
    let ch = i % p.c;
    let r = i / p.c;
    if (r < p.hw) {                       // the global view
        y[i] = tiles[r * p.c + ch];
        return;
    }
    let q = r - p.hw;
    let ox = q % (p.out_w + 1u);
    if (ox == p.out_w) {                  // end of a row
        y[i] = newline[ch];
        return;
    }
    let oy = q / (p.out_w + 1u);
    // PyTorch's upsample_bilinear2d: h1 = (int)h1r, h1p = h1 < in − 1, λ = h1r − h1.
    let sy = max((f32(oy) + 0.5) * p.scale_h - 0.5, 0.0);
    let sx = max((f32(ox) + 0.5) * p.scale_w - 0.5, 0.0);
    let y1 = min(u32(sy), p.rows - 1u);
    let x1 = min(u32(sx), p.cols - 1u);
    let y2 = y1 + select(0u, 1u, y1 < p.rows - 1u);
    let x2 = x1 + select(0u, 1u, x1 < p.cols - 1u);
    let ly = sy - f32(y1);
    let lx = sx - f32(x1);
    let top = (1.0 - lx) * kept(y1, x1, ch) + lx * kept(y1, x2, ch);
    let bottom = (1.0 - lx) * kept(y2, x1, ch) + lx * kept(y2, x2, ch);
    y[i] = (1.0 - ly) * top + ly * bottom;
}
