// anyres.wgsl: LLaVA-NeXT `pack_image_features` as one gather (`anyres_pack`), and LLaVA-OneVision's
// with the kept map resized (`anyres_resize_pack`, below).
// Input: projected tiles [tiles, h·w, c] (tile 0 = the global view, tiles 1.. the grid, row-major).
// The grid tiles form a (nph·h) × (npw·w) feature map; `unpad_image` keeps rows y0..y0+rows and
// columns x0..x0+cols; a newline embedding follows every kept row. Output rows:
//   [0, h·w)                   the global view's tokens
//   h·w + Y·(cols+1) + X       map pixel (y0 + Y, x0 + X) for X < cols, the newline for X = cols
// With a single tile (no grid): the global view then one newline.

struct AnyResParams {
    hw: u32,       // tokens per tile
    w: u32,        // tokens per tile row
    h: u32,
    npw: u32,      // grid columns
    y0: u32,       // kept window of the grid map (unpad_image)
    x0: u32,
    rows: u32,     // kept rows after unpadding
    cols: u32,     // kept columns after unpadding
    c: u32,        // channels
    total: u32,    // output rows
    out_h: u32,    // anyres_resize_pack: the kept map resized to out_h × out_w
    out_w: u32,
    scale_h: f32,  // rows / out_h
    scale_w: f32,  // cols / out_w
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> p: AnyResParams;
@group(0) @binding(1) var<storage, read> tiles: array<elem>;
@group(0) @binding(2) var<storage, read> newline: array<elem>;
@group(0) @binding(3) var<storage, read_write> y: array<elem>;

// Pixel (yy, xx) of the kept map, read from its tile.
fn kept(yy: u32, xx: u32, ch: u32) -> f32 {
    let ym = p.y0 + yy;
    let xm = p.x0 + xx;
    let tile = 1u + (ym / p.h) * p.npw + xm / p.w;
    let tok = (ym % p.h) * p.w + xm % p.w;
    return f32(tiles[(tile * p.hw + tok) * p.c + ch]);
}

@compute @workgroup_size(256, 1, 1)
fn anyres_pack(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.total * p.c) { return; }
    let ch = i % p.c;
    let r = i / p.c;
    if (r < p.hw) {                       // the global view
        y[i] = elem(f32(tiles[r * p.c + ch]));
        return;
    }
    let q = r - p.hw;
    let xx = q % (p.cols + 1u);
    if (xx == p.cols) {                   // end of a kept row
        y[i] = elem(f32(newline[ch]));
        return;
    }
    y[i] = elem(kept(q / (p.cols + 1u), xx, ch));
}

// LLaVA-OneVision: the kept map bilinearly resized to out_h × out_w (F.interpolate mode="bilinear",
// align_corners=False, no antialias: source coordinate (dst + 0.5)·scale − 0.5 clamped at 0), a
// newline after every row, the global view first: rows h·w + Y·(out_w+1) + X.
@compute @workgroup_size(256, 1, 1)
fn anyres_resize_pack(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.total * p.c) { return; }
    let ch = i % p.c;
    let r = i / p.c;
    if (r < p.hw) {                       // the global view
        y[i] = elem(f32(tiles[r * p.c + ch]));
        return;
    }
    let q = r - p.hw;
    let ox = q % (p.out_w + 1u);
    if (ox == p.out_w) {                  // end of a row
        y[i] = elem(f32(newline[ch]));
        return;
    }
    let oy = q / (p.out_w + 1u);
    let ty = bilinear_taps(oy, p.scale_h, p.rows);
    let tx = bilinear_taps(ox, p.scale_w, p.cols);
    let top = (1.0 - tx.l) * kept(ty.i1, tx.i1, ch) + tx.l * kept(ty.i1, tx.i2, ch);
    let bottom = (1.0 - tx.l) * kept(ty.i2, tx.i1, ch) + tx.l * kept(ty.i2, tx.i2, ch);
    y[i] = elem((1.0 - ty.l) * top + ty.l * bottom);
}
