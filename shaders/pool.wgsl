// pool.wgsl: resampling of row-major token grids.
//   avg_pool2x2:     2×2 average pooling, stride 2 (AvgPool2d k=2 s=2: odd last rows/columns are
//                    dropped). x: [b, h·w, c] → y: [b, (h/2)·(w/2), c]
//   resize_bilinear: F.interpolate(mode="bilinear", align_corners=False) of each grid to
//                    out_h × out_w (LLaVA-OneVision's video pooling). x: [b, h·w, c] → y: [b, out_h·out_w, c]

struct PoolParams {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    out_h: u32,    // resize_bilinear only
    out_w: u32,
    scale_h: f32,  // h / out_h
    scale_w: f32,  // w / out_w
};

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn avg_pool2x2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let oh = p.h / 2u;
    let ow = p.w / 2u;
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.batch * oh * ow * p.c) { return; }
    let ch = i % p.c;
    let o = (i / p.c) % (oh * ow);
    let b = i / (p.c * oh * ow);
    let y0 = 2u * (o / ow);
    let x0 = 2u * (o % ow);
    let base = b * p.h * p.w;
    let s = x[(base + y0 * p.w + x0) * p.c + ch] + x[(base + y0 * p.w + x0 + 1u) * p.c + ch]
          + x[(base + (y0 + 1u) * p.w + x0) * p.c + ch] + x[(base + (y0 + 1u) * p.w + x0 + 1u) * p.c + ch];
    y[i] = s * 0.25;
}

@compute @workgroup_size(256, 1, 1)
fn resize_bilinear(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.batch * p.out_h * p.out_w * p.c) { return; }
    let ch = i % p.c;
    let o = (i / p.c) % (p.out_h * p.out_w);
    let b = i / (p.c * p.out_h * p.out_w);
    let ty = bilinear_taps(o / p.out_w, p.scale_h, p.h);
    let tx = bilinear_taps(o % p.out_w, p.scale_w, p.w);
    let base = b * p.h * p.w;
    let top = (1.0 - tx.l) * x[(base + ty.i1 * p.w + tx.i1) * p.c + ch] + tx.l * x[(base + ty.i1 * p.w + tx.i2) * p.c + ch];
    let bottom = (1.0 - tx.l) * x[(base + ty.i2 * p.w + tx.i1) * p.c + ch] + tx.l * x[(base + ty.i2 * p.w + tx.i2) * p.c + ch];
    y[i] = (1.0 - ty.l) * top + ty.l * bottom;
}
