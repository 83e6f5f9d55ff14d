// tome.wgsl: Token Merging (ToMe's bipartite soft matching + size-weighted merge), per batch row.
// Tokens alternate into A (even positions, t1 = ceil(t/2)) and B (odd, t2 = floor(t/2)).
//   tome_match: each A token's best B match by cosine similarity of `metric` (first max wins);
//               with a class token, A token 0 scores -FLT_MAX (never merged)
//   tome_rank:  position of each A token in the descending order of best scores (ties: lower
//               index first, so the order is the same every run); the first r are merged
//   tome_slots: output slot of each unmerged A token (score order, or position order with a class
//               token) → slot_src
//   tome_merge: out = [unmerged A tokens, then every B token]; a B token's row is
//               Σ size·x / Σ size over itself and the A tokens merged into it; sizes add up
// info[b, i] = (bitcast best score, best B index, rank, unused)

struct TomeParams {
    batch: u32,
    t: u32,
    t1: u32,
    t2: u32,
    r: u32,
    c: u32,          // channels of x
    cm: u32,         // channels of metric
    class_token: u32,
};

@group(0) @binding(0) var<uniform> p: TomeParams;
@group(0) @binding(1) var<storage, read> metric: array<elem>;
@group(0) @binding(2) var<storage, read> x: array<elem>;
@group(0) @binding(3) var<storage, read> size: array<elem>;
@group(0) @binding(4) var<storage, read_write> info: array<vec4<u32>>;
@group(0) @binding(5) var<storage, read_write> slot_src: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<elem>;
@group(0) @binding(7) var<storage, read_write> out_size: array<elem>;

const NEG_MAX: f32 = -0x1.fffffep+127f;

fn inv_norm(b: u32, tok: u32) -> f32 {
    var s = 0.0;
    for (var k = 0u; k < p.cm; k++) { let v = f32(metric[(b * p.t + tok) * p.cm + k]); s = fma(v, v, s); }
    return inverseSqrt(s);
}

@compute @workgroup_size(64, 1, 1)
fn tome_match(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let b = gid.y;
    if (i >= p.t1 || b >= p.batch) { return; }
    let ta = 2u * i;
    let ia = inv_norm(b, ta);
    var best = NEG_MAX;
    var best_j = 0u;
    for (var j = 0u; j < p.t2; j++) {
        let tb = 2u * j + 1u;
        var d = 0.0;
        for (var k = 0u; k < p.cm; k++) { d = fma(f32(metric[(b * p.t + ta) * p.cm + k]), f32(metric[(b * p.t + tb) * p.cm + k]), d); }
        let s = d * ia * inv_norm(b, tb);
        if (s > best || j == 0u) { best = s; best_j = j; }
    }
    if (p.class_token != 0u && i == 0u) { best = NEG_MAX; }
    info[b * p.t1 + i] = vec4<u32>(bitcast<u32>(best), best_j, 0u, 0u);
}

@compute @workgroup_size(64, 1, 1)
fn tome_rank(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let b = gid.y;
    if (i >= p.t1 || b >= p.batch) { return; }
    let si = bitcast<f32>(info[b * p.t1 + i].x);
    var rank = 0u;
    for (var j = 0u; j < p.t1; j++) {
        let sj = bitcast<f32>(info[b * p.t1 + j].x);
        if (sj > si || (sj == si && j < i)) { rank++; }
    }
    info[b * p.t1 + i].z = rank;
}

@compute @workgroup_size(64, 1, 1)
fn tome_slots(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x;
    let b = gid.y;
    if (i >= p.t1 || b >= p.batch) { return; }
    let rank = info[b * p.t1 + i].z;
    if (rank < p.r) { return; }                 // merged away
    var slot = rank - p.r;                      // descending score order
    if (p.class_token != 0u) {                  // position order
        slot = 0u;
        for (var j = 0u; j < i; j++) { if (info[b * p.t1 + j].z >= p.r) { slot++; } }
    }
    slot_src[b * p.t1 + slot] = i;
}

@compute @workgroup_size(256, 1, 1)
fn tome_merge(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let rows = p.t1 - p.r + p.t2;
    let idx = group_index(wid, nwg) * 256u + li;
    if (idx >= p.batch * rows * p.c) { return; }
    let ch = idx % p.c;
    let o = (idx / p.c) % rows;
    let b = idx / (p.c * rows);
    let unm = p.t1 - p.r;
    var acc = 0.0;
    var sz = 0.0;
    if (o < unm) {
        let ta = 2u * slot_src[b * p.t1 + o];
        sz = f32(size[b * p.t + ta]);
        acc = f32(x[(b * p.t + ta) * p.c + ch]) * sz;
    } else {
        let j = o - unm;
        let tb = 2u * j + 1u;
        sz = f32(size[b * p.t + tb]);
        acc = f32(x[(b * p.t + tb) * p.c + ch]) * sz;
        for (var i = 0u; i < p.t1; i++) {
            let inf = info[b * p.t1 + i];
            if (inf.z < p.r && inf.y == j) {
                let ta = 2u * i;
                let s = f32(size[b * p.t + ta]);
                acc += f32(x[(b * p.t + ta) * p.c + ch]) * s;
                sz += s;
            }
        }
    }
    out[(b * rows + o) * p.c + ch] = elem(acc / sz);
    if (ch == 0u) { out_size[b * rows + o] = elem(sz); }
}
