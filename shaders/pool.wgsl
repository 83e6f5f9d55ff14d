// pool.wgsl: resampling of row-major token grids.
//   pool2d:          k×k average or max pooling, stride k (AvgPool2d / MaxPool2d(k, k): the last
//                    h % k rows and w % k columns are dropped). x: [b, h·w, c] → y: [b, (h/k)·(w/k), c]
//   resize_bilinear: F.interpolate(mode="bilinear", align_corners=False) of each grid to
//                    out_h × out_w (LLaVA-OneVision's video pooling). x: [b, h·w, c] → y: [b, out_h·out_w, c]

struct PoolParams {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
    out_h: u32,
    out_w: u32,
    scale_h: f32,  // resize_bilinear: h / out_h
    scale_w: f32,  // resize_bilinear: w / out_w
    k: u32,        // pool2d: window and stride
    mode: u32,     // pool2d: 0 average, 1 max
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> p: PoolParams;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read_write> y: array<elem>;

@compute @workgroup_size(256, 1, 1)
fn pool2d(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.batch * p.out_h * p.out_w * p.c) { return; }
    let ch = i % p.c;
    let o = (i / p.c) % (p.out_h * p.out_w);   // output pixel
    let base = (i / (p.c * p.out_h * p.out_w)) * p.h * p.w;   // the batch row's first input pixel
    let y0 = p.k * (o / p.out_w);
    let x0 = p.k * (o % p.out_w);
    var s = 0.0;
    var m = f32(x[(base + y0 * p.w + x0) * p.c + ch]);   // the first tap (k ≥ 1): -inf stays -inf
    for (var dy = 0u; dy < p.k; dy++) {
        for (var dx = 0u; dx < p.k; dx++) {
            let v = f32(x[(base + (y0 + dy) * p.w + x0 + dx) * p.c + ch]);
            s += v;
            m = max(m, v);
        }
    }
    y[i] = elem(select(s / f32(p.k * p.k), m, p.mode == 1u));
}

@compute @workgroup_size(256, 1, 1)
fn resize_bilinear(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.batch * p.out_h * p.out_w * p.c) { return; }
    let ch = i % p.c;
    let o = (i / p.c) % (p.out_h * p.out_w);   // output pixel
    let base = (i / (p.c * p.out_h * p.out_w)) * p.h * p.w;   // the batch row's first input pixel
    let ty = bilinear_taps(o / p.out_w, p.scale_h, p.h);
    let tx = bilinear_taps(o % p.out_w, p.scale_w, p.w);
    let top = (1.0 - tx.l) * f32(x[(base + ty.i1 * p.w + tx.i1) * p.c + ch]) + tx.l * f32(x[(base + ty.i1 * p.w + tx.i2) * p.c + ch]);
    let bottom = (1.0 - tx.l) * f32(x[(base + ty.i2 * p.w + tx.i1) * p.c + ch]) + tx.l * f32(x[(base + ty.i2 * p.w + tx.i2) * p.c + ch]);
    y[i] = elem((1.0 - ty.l) * top + ty.l * bottom);
}
