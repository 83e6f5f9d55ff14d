// layernorm_sg.wgsl: layernorm.wgsl's kernels with the row statistics reduced by subgroup
// operations, for adapters with SUBGROUP (a file of its own: a module that uses subgroup ops does
// not validate on an adapter without them, so the workgroup versions cannot share it).
// Any subgroup width: each subgroup adds its lanes with subgroupAdd, lane 0 leaves the partial in
// one workgroup slot per subgroup, and every thread adds the slots in subgroup order
// (deterministic). Two barriers per reduction instead of the tree's nine.

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
var<workgroup> sg_part: array<f32, 256>;   // one slot per subgroup (at most 256 of width 1)

fn load(r: u32, c: u32) -> f32 {
    var v = f32(x[r * p.cols + c]);
    if (p.has_res != 0u) { v += f32(res[r * p.cols + c]); }
    return v;
}

fn subgroup_block_sum(v: f32, sid: u32, lane: u32, nsg: u32) -> f32 {
    let s = subgroupAdd(v);
    if (lane == 0u) { sg_part[sid] = s; }
    workgroupBarrier();
    var total = 0.0;
    for (var i = 0u; i < nsg; i++) { total += sg_part[i]; }
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256, 1, 1)
fn layernorm_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sid: u32,
                @builtin(subgroup_invocation_id) lane: u32, @builtin(num_subgroups) nsg: u32) {
    let r = group_index(wid, nwg);
    let live = r < p.rows;             // whole workgroup agrees: barriers and subgroup ops stay uniform
    let n = f32(p.cols);
    var s = 0.0;
    if (live) { for (var c = li; c < p.cols; c += WG) { s += load(r, c); } }
    let mean = subgroup_block_sum(s, sid, lane, nsg) / n;
    var q = 0.0;
    if (live) { for (var c = li; c < p.cols; c += WG) { let d = load(r, c) - mean; q += d * d; } }
    let inv = inverseSqrt(subgroup_block_sum(q, sid, lane, nsg) / n + p.eps);
    if (live) {
        for (var c = li; c < p.cols; c += WG) {
            y[r * p.cols + c] = elem((load(r, c) - mean) * inv * f32(gamma[c]) + f32(beta[c]));
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn rmsnorm_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32, @builtin(subgroup_id) sid: u32,
              @builtin(subgroup_invocation_id) lane: u32, @builtin(num_subgroups) nsg: u32) {
    let r = group_index(wid, nwg);
    let live = r < p.rows;
    var s = 0.0;
    if (live) { for (var c = li; c < p.cols; c += WG) { let v = load(r, c); s += v * v; } }
    let inv = inverseSqrt(subgroup_block_sum(s, sid, lane, nsg) / f32(p.cols) + p.eps);
    if (live) {
        for (var c = li; c < p.cols; c += WG) {
            y[r * p.cols + c] = elem((load(r, c) * inv) * f32(gamma[c]));
        }
    }
}
