// anyres.wgsl: LLaVA-NeXT `pack_image_features` as one gather.
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
    y0: u32,
    x0: u32,
    rows: u32,     // kept rows after unpadding
    cols: u32,     // kept columns after unpadding
    c: u32,        // channels
    total: u32,    // output rows
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> p: AnyResParams;
@group(0) @binding(1) var<storage, read> tiles: array<f32>;
@group(0) @binding(2) var<storage, read> newline: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn anyres_pack(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
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
    let xx = q % (p.cols + 1u);
    if (xx == p.cols) {                   // end of a kept row
        y[i] = newline[ch];
        return;
    }
    let yy = p.y0 + q / (p.cols + 1u);
    let xm = p.x0 + xx;
    let tile = 1u + (yy / p.h) * p.npw + xm / p.w;
    let tok = (yy % p.h) * p.w + xm % p.w;
    y[i] = tiles[(tile * p.hw + tok) * p.c + ch];
}
