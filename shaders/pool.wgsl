// pool.wgsl: 2×2 average pooling, stride 2, of a row-major h×w token grid (AvgPool2d k=2 s=2:
// odd last rows/columns are dropped).
//   x: [b, h·w, c] → y: [b, (h/2)·(w/2), c]

struct PoolParams {
    batch: u32,
    h: u32,
    w: u32,
    c: u32,
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
