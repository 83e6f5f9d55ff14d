// gemm.wgsl: nn.Linear as a tiled, register-blocked GEMM.
//   y[M, N] = act(x[M, K] · W[N, K]ᵀ + b[N])          (W stored [out, in] as checkpoints store it)
//   if has_res: y = res[M, N] + alpha · y             (residual / gated residual epilogue)
// y and res are addressed as [row · ldy + y_off + col]: a weight split into row blocks (to fit the
// device's binding limit) writes its own column block of one output.
// Tile: 64×64 outputs per workgroup of 16×16 threads, 4×4 per thread, K in steps of 16.
// Every global index is guarded: any M, N, K (including 1) is correct.

struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    has_res: u32,
    alpha: f32,
    ldy: u32,      // row stride of y and res (≥ n)
    y_off: u32,    // first column of y written by this dispatch
    k_chunk: u32,  // gemm_split: K per split (a multiple of BK)
    splits: u32,   // gemm_reduce: partial products to add
    _p2: u32,
};

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> x: array<elem>;
@group(0) @binding(2) var<storage, read> w: array<elem>;
@group(0) @binding(3) var<storage, read> bias: array<elem>;
@group(0) @binding(4) var<storage, read> res: array<elem>;
@group(0) @binding(5) var<storage, read_write> y: array<elem>;
@group(0) @binding(6) var<storage, read_write> partial: array<f32>;   // split-K: always f32

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

// Slabs as vec4s: xs[k·16 + t] holds rows 4t..4t+3 at depth k; ws likewise for columns.
var<workgroup> xs: array<vec4<f32>, 256>;
var<workgroup> ws: array<vec4<f32>, 256>;

// Bias, activation, residual and the store of output (row, col): the caller guards the bounds.
fn store(row: u32, col: u32, acc: f32) {
    var v = acc;
    if (p.has_bias != 0u) { v += f32(bias[col]); }
    v = activate(v, p.act);
    let at = row * p.ldy + p.y_off + col;
    if (p.has_res != 0u) { v = f32(res[at]) + p.alpha * v; }
    y[at] = elem(v);
}

fn epilogue(row: u32, col0: u32, acc: vec4<f32>) {
    if (row >= p.m) { return; }
    for (var j = 0u; j < 4u; j++) {
        let col = col0 + j;
        if (col >= p.n) { return; }
        store(row, col, acc[j]);
    }
}

// The 64×64 tile of workgroup (wid.x, wid.y) over depths kbeg..kend: this thread's 4×4 block.
fn gemm64(wid: vec3<u32>, lid: vec3<u32>, li: u32, kbeg: u32, kend: u32) -> array<vec4<f32>, 4> {
    let m0 = wid.y * BM;
    let n0 = wid.x * BN;
    // This thread's 4×4 block: rows m0 + 4·ty + i, columns n0 + 4·tx + j; one vec4 per row.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);

    for (var k0 = kbeg; k0 < kend; k0 += BK) {
        // 1. Stage a 64×16 slab of x and of W (K-contiguous loads, zero outside the matrix).
        for (var l = 0u; l < 4u; l++) {
            let idx = li + 256u * l;
            let r = idx / BK;
            let c = idx % BK;
            let gk = k0 + c;
            let gm = m0 + r;
            let gn = n0 + r;
            var xv = 0.0;
            if (gm < p.m && gk < kend) { xv = f32(x[gm * p.k + gk]); }
            var wv = 0.0;
            if (gn < p.n && gk < kend) { wv = f32(w[gn * p.k + gk]); }
            xs[c * 16u + r / 4u][r % 4u] = xv;
            ws[c * 16u + r / 4u][r % 4u] = wv;
        }
        workgroupBarrier();
        // 2. Rank-1 updates: two vec4 loads feed 16 FMAs.
        for (var kk = 0u; kk < BK; kk++) {
            let a = xs[kk * 16u + lid.y];
            let b = ws[kk * 16u + lid.x];
            acc0 = fma(vec4<f32>(a.x), b, acc0);
            acc1 = fma(vec4<f32>(a.y), b, acc1);
            acc2 = fma(vec4<f32>(a.z), b, acc2);
            acc3 = fma(vec4<f32>(a.w), b, acc3);
        }
        workgroupBarrier();
    }
    return array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
}

@compute @workgroup_size(16, 16, 1)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let acc = gemm64(wid, lid, li, 0u, p.k);
    // 3. Epilogue: bias, activation, residual; guarded stores.
    let r0 = wid.y * BM + 4u * lid.y;
    let c0 = wid.x * BN + 4u * lid.x;
    for (var i = 0u; i < 4u; i++) { epilogue(r0 + i, c0, acc[i]); }
}

// gemm_split (split-K): workgroup z computes the 64×64 tile over depths z·k_chunk.. and stores
// the raw partial product, in f32 whatever the dtype, at partial[(z·m + row)·n + col];
// gemm_reduce then adds the `splits` partials and applies the epilogue. For grids with few tiles (small M or N, large K): more workgroups.
@compute @workgroup_size(16, 16, 1)
fn gemm_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let kbeg = wid.z * p.k_chunk;
    let acc = gemm64(wid, lid, li, kbeg, min(p.k, kbeg + p.k_chunk));
    let r0 = wid.y * BM + 4u * lid.y;
    let c0 = wid.x * BN + 4u * lid.x;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            if (r0 + i < p.m && c0 + j < p.n) { partial[(wid.z * p.m + r0 + i) * p.n + c0 + j] = acc[i][j]; }
        }
    }
}

// gemm_reduce: y = epilogue(Σ_z partial[z]) over the `splits` f32 partial products [splits, m, n].
@compute @workgroup_size(256, 1, 1)
fn gemm_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.m * p.n) { return; }
    var v = 0.0;
    for (var z = 0u; z < p.splits; z++) { v += partial[z * p.m * p.n + i]; }
    store(i / p.n, i % p.n, v);
}

// gemm_128: the same GEMM with a 128×128 tile per workgroup and 8×8 outputs per thread: four
// times the FMAs per workgroup-memory load of `gemm` (what a CPU driver, where every such load is
// a per-lane gather, and a large GPU both want). `gemm` stays for small M or N.
const BM2: u32 = 128u;
const BN2: u32 = 128u;
const BK2: u32 = 8u;

var<workgroup> xs2: array<vec4<f32>, 256>; // [BK2][BM2 / 4]
var<workgroup> ws2: array<vec4<f32>, 256>; // [BK2][BN2 / 4]

fn epilogue8(row: u32, col0: u32, lo: vec4<f32>, hi: vec4<f32>) {
    epilogue(row, col0, lo);
    epilogue(row, col0 + 4u, hi);
}

@compute @workgroup_size(16, 16, 1)
fn gemm_128(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let m0 = wid.y * BM2;
    let n0 = wid.x * BN2;
    // Rows m0 + 8·ty + i, columns n0 + 8·tx + j: acc[2i] holds columns 0..3, acc[2i+1] columns 4..7.
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }

    for (var k0 = 0u; k0 < p.k; k0 += BK2) {
        // 1. Stage 128×8 of x and of W (zero outside the matrix).
        for (var l = 0u; l < 4u; l++) {
            let idx = li + 256u * l;
            let r = idx / BK2;
            let c = idx % BK2;
            let gk = k0 + c;
            var xv = 0.0;
            if (m0 + r < p.m && gk < p.k) { xv = f32(x[(m0 + r) * p.k + gk]); }
            var wv = 0.0;
            if (n0 + r < p.n && gk < p.k) { wv = f32(w[(n0 + r) * p.k + gk]); }
            xs2[c * 32u + r / 4u][r % 4u] = xv;
            ws2[c * 32u + r / 4u][r % 4u] = wv;
        }
        workgroupBarrier();
        // 2. Rank-1 updates: four vec4 loads feed 64 FMAs.
        for (var kk = 0u; kk < BK2; kk++) {
            let a0 = xs2[kk * 32u + 2u * lid.y];
            let a1 = xs2[kk * 32u + 2u * lid.y + 1u];
            let b0 = ws2[kk * 32u + 2u * lid.x];
            let b1 = ws2[kk * 32u + 2u * lid.x + 1u];
            for (var i = 0u; i < 4u; i++) {
                acc[2u * i] = fma(vec4<f32>(a0[i]), b0, acc[2u * i]);
                acc[2u * i + 1u] = fma(vec4<f32>(a0[i]), b1, acc[2u * i + 1u]);
                acc[2u * i + 8u] = fma(vec4<f32>(a1[i]), b0, acc[2u * i + 8u]);
                acc[2u * i + 9u] = fma(vec4<f32>(a1[i]), b1, acc[2u * i + 9u]);
            }
        }
        workgroupBarrier();
    }

    // 3. Epilogue.
    let r0 = m0 + 8u * lid.y;
    let c0 = n0 + 8u * lid.x;
    for (var i = 0u; i < 8u; i++) { epilogue8(r0 + i, c0, acc[2u * i], acc[2u * i + 1u]); }
}

// gemm_reg: no workgroup memory and no barriers; each thread computes an 8×8 block straight from
// global memory (caches provide the reuse): 16 loads feed 64 FMAs per step of K. Out-of-range
// rows and columns read a clamped (valid) row and are never stored.
@compute @workgroup_size(8, 8, 1)
fn gemm_reg(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r0 = gid.y * 8u;
    let c0 = gid.x * 8u;
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) { acc[i] = vec4<f32>(0.0); }
    var xr: array<u32, 8>;
    var wr: array<u32, 8>;
    for (var i = 0u; i < 8u; i++) {
        xr[i] = min(r0 + i, p.m - 1u) * p.k;
        wr[i] = min(c0 + i, p.n - 1u) * p.k;
    }
    for (var k = 0u; k < p.k; k++) {
        let b0 = vec4<f32>(f32(w[wr[0] + k]), f32(w[wr[1] + k]), f32(w[wr[2] + k]), f32(w[wr[3] + k]));
        let b1 = vec4<f32>(f32(w[wr[4] + k]), f32(w[wr[5] + k]), f32(w[wr[6] + k]), f32(w[wr[7] + k]));
        for (var i = 0u; i < 8u; i++) {
            let a = vec4<f32>(f32(x[xr[i] + k]));
            acc[2u * i] = fma(a, b0, acc[2u * i]);
            acc[2u * i + 1u] = fma(a, b1, acc[2u * i + 1u]);
        }
    }
    for (var i = 0u; i < 8u; i++) { epilogue8(r0 + i, c0, acc[2u * i], acc[2u * i + 1u]); }
}
