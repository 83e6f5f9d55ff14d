// layernorm.wgsl: y[r, :] = (z − mean) / sqrt(var + eps) · gamma + beta,  z = x[r, :] (+ res[r, :])
// One workgroup per row; two passes over the row (mean, then centred variance) for stability.
// var is the biased variance, as torch.nn.LayerNorm uses.
// rmsnorm: y[r, :] = z · rsqrt(mean(z²) + eps) · gamma (LlamaRMSNorm / IdeficsRMSNorm: no mean, no beta).

struct LnParams {
    rows: u32,
    cols: u32,
    has_res: u32,
    eps: f32,
};

@group(0) @binding(0) var<uniform> p: LnParams;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> res: array<elem>;
@group(0) @binding(3) var<storage, read> gamma: array<elem>;
@group(0) @binding(4) var<storage, read> beta: array<elem>;
@group(0) @binding(5) var<storage, read_write> y: array<elem>;

const WG: u32 = 256u;
var<workgroup> red: array<f32, 256>;

fn load(r: u32, c: u32) -> f32 {
    var v = f32(x[r * p.cols + c]);
    if (p.has_res != 0u) { v += f32(res[r * p.cols + c]); }
    return v;
}

// Tree reduction of `v` across the workgroup; every thread gets the sum.
fn block_sum(v: f32, li: u32) -> f32 {
    red[li] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (li < s) { red[li] += red[li + s]; }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256, 1, 1)
fn layernorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg);
    let live = r < p.rows;             // whole workgroup agrees: barriers stay uniform
    let n = f32(p.cols);
    // 1. mean
    var s = 0.0;
    if (live) { for (var c = li; c < p.cols; c += WG) { s += load(r, c); } }
    let mean = block_sum(s, li) / n;
    // 2. centred variance
    var q = 0.0;
    if (live) { for (var c = li; c < p.cols; c += WG) { let d = load(r, c) - mean; q += d * d; } }
    let variance = block_sum(q, li) / n;
    let inv = inverseSqrt(variance + p.eps);
    // 3. normalise, scale, shift
    if (live) {
        for (var c = li; c < p.cols; c += WG) {
            y[r * p.cols + c] = elem((load(r, c) - mean) * inv * f32(gamma[c]) + f32(beta[c]));
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn rmsnorm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let r = group_index(wid, nwg);
    let live = r < p.rows;             // whole workgroup agrees: barriers stay uniform
    var s = 0.0;
    if (live) { for (var c = li; c < p.cols; c += WG) { let v = load(r, c); s += v * v; } }
    let inv = inverseSqrt(block_sum(s, li) / f32(p.cols) + p.eps);
    if (live) {
        for (var c = li; c < p.cols; c += WG) {
            y[r * p.cols + c] = elem((load(r, c) * inv) * f32(gamma[c]));
        }
    }
}

