// pool.wgsl: resampling of row-major token grids.
//   pool2d:          k×k average or max pooling, stride k (AvgPool2d / MaxPool2d(k, k): the last
//                    h % k rows and w % k columns are dropped). x: [b, h·w, c] → y: [b, (h/k)·(w/k), c]
//   space_to_depth:  each k×k block of the grid becomes one token of k²·c channels (InternVL /
//                    Idefics3 pixel shuffle: channel (dy·k + dx)·c + ch, mode 0; Pixtral's F.unfold:
//                    ch·k² + dy·k + dx, mode 1), skipping `skip` leading tokens per batch row (a CLS
//                    token); rows of x are `rows_in` tokens. x: [b, rows_in, c] → y: [b, (h/k)·(w/k), k²·c]
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
    k: u32,        // pool2d, space_to_depth: window and stride
    mode: u32,     // pool2d: 0 average, 1 max; space_to_depth: channel order
    skip: u32,     // space_to_depth: leading tokens per batch row not in the grid
    rows_in: u32,  // space_to_depth: tokens per batch row of x
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

@compute @workgroup_size(256, 1, 1)
fn space_to_depth(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    let kk = p.k * p.k;
    let cout = kk * p.c;
    if (i >= p.batch * p.out_h * p.out_w * cout) { return; }
    let co = i % cout;
    let o = (i / cout) % (p.out_h * p.out_w);
    let b = i / (cout * p.out_h * p.out_w);
    var ch = co % p.c;
    var blk = co / p.c;                 // mode 0: (dy·k + dx)·c + ch
    if (p.mode == 1u) {                 // mode 1: ch·k² + dy·k + dx
        ch = co / kk;
        blk = co % kk;
    }
    let yy = p.k * (o / p.out_w) + blk / p.k;
    let xx = p.k * (o % p.out_w) + blk % p.k;
    y[i] = elem(f32(x[(b * p.rows_in + p.skip + yy * p.w + xx) * p.c + ch]));
}

// patchify: a vision tower's patch embedding input (Conv2d with kernel = stride = k, as im2col).
// x: pixel values [batch, c, h, w] (channel-first) → y [batch, out_h·out_w, c·k·k], out = ⌊h/k⌋×⌊w/k⌋
// (rows and columns past the last whole patch are never read, as the strided conv never reads
// them); column (ch·k + dy)·k + dx = Conv2d's weight.reshape(C_out, -1) order.
@compute @workgroup_size(256, 1, 1)
fn patchify(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    let kk = p.k * p.k;
    let cols = p.c * kk;
    if (i >= p.batch * p.out_h * p.out_w * cols) { return; }
    let col = i % cols;
    let o = (i / cols) % (p.out_h * p.out_w);
    let b = i / (cols * p.out_h * p.out_w);
    let ch = col / kk;
    let yy = p.k * (o / p.out_w) + (col % kk) / p.k;
    let xx = p.k * (o % p.out_w) + col % p.k;
    y[i] = elem(f32(x[((b * p.c + ch) * p.h + yy) * p.w + xx]));
}
