// gemm_coop.wgsl: nn.Linear on cooperative matrices (tensor cores / simdgroup matrices), f16 in,
// f32 accumulation, the same epilogue as gemm.wgsl:
//   y[M, N] = act(x[M, K] · W[N, K]ᵀ + b[N]),  if has_res: y = res + alpha · y
// One workgroup = one subgroup computes one T×T output tile (T = 8: gemm_coop8; T = 16:
// gemm_coop16), K in steps of T. Every step stages the x tile (row-major) and the W tile (W's rows
// are B's columns, so the staged [n][k] block is B in column-major order) in workgroup memory,
// zero-padded past M, N and K: any shape is correct. The f32 accumulator tile goes through
// workgroup memory once more for the bias / activation / residual epilogue and the guarded store.
// Layouts (naga 30 on SPIR-V): coopLoadT / coopStoreT are row-major, coopLoad column-major.
// Launch contract (checked on the host): the workgroup is exactly one subgroup (size T·T / 8 for
// coop8 on an 8-wide subgroup, 32 for coop16), since cooperative matrices have subgroup scope.

struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    has_res: u32,
    alpha: f32,
    ldy: u32,
    y_off: u32,
    k_chunk: u32,
    splits: u32,
    _p2: u32,
};

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> w: array<elem>;
@group(0) @binding(3) var<storage, read> bias: array<elem>;
@group(0) @binding(4) var<storage, read> res: array<elem>;
@group(0) @binding(5) var<storage, read_write> y: array<elem>;

var<workgroup> xa8: array<f16, 64>;
var<workgroup> wb8: array<f16, 64>;
var<workgroup> cs8: array<f32, 64>;
var<workgroup> xa16: array<f16, 256>;
var<workgroup> wb16: array<f16, 256>;
var<workgroup> cs16: array<f32, 256>;

// Bias, activation, residual and the store of output (row, col), inside M × N.
fn store_out(row: u32, col: u32, acc: f32) {
    var v = acc;
    if (p.has_bias != 0u) { v += f32(bias[col]); }
    v = activate(v, p.act);
    let at = row * p.ldy + p.y_off + col;
    if (p.has_res != 0u) { v = f32(res[at]) + p.alpha * v; }
    y[at] = elem(v);
}

// x[m0 + r, k0 + c] and W[n0 + r, k0 + c], 0 outside the matrices.
fn x_at(m0: u32, k0: u32, r: u32, c: u32) -> f16 {
    let row = m0 + r;
    let col = k0 + c;
    if (row < p.m && col < p.k) { return f16(x[row * p.k + col]); }
    return f16(0.0);
}
fn w_at(n0: u32, k0: u32, r: u32, c: u32) -> f16 {
    let row = n0 + r;
    let col = k0 + c;
    if (row < p.n && col < p.k) { return f16(w[row * p.k + col]); }
    return f16(0.0);
}

@compute @workgroup_size(8, 1, 1)
fn gemm_coop8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n0 = wid.x * 8u;
    let m0 = wid.y * 8u;
    var acc = coop_mat8x8<f32, C>();
    for (var k0 = 0u; k0 < p.k; k0 += 8u) {
        for (var e = li; e < 64u; e += 8u) {
            xa8[e] = x_at(m0, k0, e / 8u, e % 8u);   // row-major [m][k]
            wb8[e] = w_at(n0, k0, e / 8u, e % 8u);   // [n][k]: B (k × n) column-major
        }
        workgroupBarrier();
        let a = coopLoadT<coop_mat8x8<f16, A>>(&xa8[0], 8u);
        let b = coopLoad<coop_mat8x8<f16, B>>(&wb8[0], 8u);
        acc = coopMultiplyAdd(a, b, acc);
        workgroupBarrier();
    }
    coopStoreT(acc, &cs8[0], 8u);
    workgroupBarrier();
    for (var e = li; e < 64u; e += 8u) {
        let row = m0 + e / 8u;
        let col = n0 + e % 8u;
        if (row < p.m && col < p.n) { store_out(row, col, cs8[e]); }
    }
}

@compute @workgroup_size(32, 1, 1)
fn gemm_coop16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n0 = wid.x * 16u;
    let m0 = wid.y * 16u;
    var acc = coop_mat16x16<f32, C>();
    for (var k0 = 0u; k0 < p.k; k0 += 16u) {
        for (var e = li; e < 256u; e += 32u) {
            xa16[e] = x_at(m0, k0, e / 16u, e % 16u);
            wb16[e] = w_at(n0, k0, e / 16u, e % 16u);
        }
        workgroupBarrier();
        let a = coopLoadT<coop_mat16x16<f16, A>>(&xa16[0], 16u);
        let b = coopLoad<coop_mat16x16<f16, B>>(&wb16[0], 16u);
        acc = coopMultiplyAdd(a, b, acc);
        workgroupBarrier();
    }
    coopStoreT(acc, &cs16[0], 16u);
    workgroupBarrier();
    for (var e = li; e < 256u; e += 32u) {
        let row = m0 + e / 16u;
        let col = n0 + e % 16u;
        if (row < p.m && col < p.n) { store_out(row, col, cs16[e]); }
    }
}
