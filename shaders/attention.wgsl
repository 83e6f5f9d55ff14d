// attention.wgsl: fused multi-head attention, out = softmax(Q·Kᵀ·scale + mask)·V per head.
//   Q rows: q[(b·lq + i)·q_stride + q_off + h·d + c]   (Q, K, V may be column slices of one buffer)
//   K rows: k[(b·lk + j)·k_stride + k_off + (h / kv_group)·d + c],  V likewise with v_stride / v_off
//   (grouped-query attention: query head h reads K/V head h / kv_group)
//   out:    o[(b·lq + i)·(heads·d) + h·d + c]
// Optional additive mask, [b, lk] (mask_rows = 1) or per query [b, lq, lk] (mask_rows = lq), and
// per-query key ranges [b·lq] × (lo, hi, uniform, _):
// keys outside [lo, hi) are skipped; an empty range gives a zero row; `uniform` sets every score
// equal (OpenFlamingo's all-masked row). The softmax is online (running max and sum) over tiles
// of 64 keys, so scores never go to global memory.
// Workgroup: one query row of one (batch, head), 64 threads; grid (lq, heads, batch).
// Per tile, thread t scores key j0 + t; then every thread owns output channels t and t + 64 and
// accumulates Σ p_j · v[j, c]. No per-thread arrays: only scalars and workgroup memory.

struct AttnParams {
    lq: u32,
    lk: u32,
    heads: u32,
    d: u32,
    q_stride: u32,
    q_off: u32,
    k_stride: u32,
    k_off: u32,
    v_stride: u32,
    v_off: u32,
    has_mask: u32,
    has_ranges: u32,
    scale: f32,
    mask_rows: u32,    // 1: one mask row per batch; lq: one per query
    kv_group: u32,     // query heads per K/V head (grouped-query attention; 1: multi-head)
    _p2: u32,
};

@group(0) @binding(0) var<uniform> p: AttnParams;
@group(0) @binding(1) var<storage, read> q: array<elem>;
@group(0) @binding(2) var<storage, read> k: array<elem>;
@group(0) @binding(3) var<storage, read> v: array<elem>;
@group(0) @binding(4) var<storage, read> mask: array<elem>;
@group(0) @binding(5) var<storage, read> ranges: array<vec4<u32>>;
@group(0) @binding(6) var<storage, read_write> o: array<elem>;

const WG: u32 = 64u;
const DMAX: u32 = 128u;   // largest head dim (checked on the host): channels li and li + 64

var<workgroup> qs: array<f32, 128>;   // the query row, pre-scaled
var<workgroup> ps: array<f32, 64>;    // scores, then probabilities, of the current tile

@compute @workgroup_size(64, 1, 1)
fn attention(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = wid.x;
    let h = wid.y;
    let hk = h / p.kv_group;   // the K/V head this query head reads
    let b = wid.z;
    let d = p.d;

    // 1. Stage the query row; read this row's key range (the same for the whole workgroup).
    let qbase = (b * p.lq + i) * p.q_stride + p.q_off + h * d;
    for (var c = li; c < d; c += WG) { qs[c] = f32(q[qbase + c]) * p.scale; }
    var lo = 0u;
    var hi = p.lk;
    var uniform_scores = false;
    if (p.has_ranges != 0u) {
        let r = ranges[b * p.lq + i];
        lo = min(r.x, p.lk);
        hi = min(r.y, p.lk);
        uniform_scores = r.z != 0u;
    }
    workgroupBarrier();

    var m = -0x1.fffffep+127f;   // running max, starts at -FLT_MAX (finite: no inf − inf)
    var l = 0.0;             // running Σ exp(s − m)
    var acc0 = 0.0;          // output channel li
    var acc1 = 0.0;          // output channel li + 64
    let c1 = li + WG;

    for (var j0 = lo; j0 < hi; j0 += WG) {
        let nk = min(WG, hi - j0);
        // 2. Thread li scores key j0 + li.
        if (li < nk) {
            let j = j0 + li;
            var sc = 0.0;
            if (!uniform_scores) {
                let kbase = (b * p.lk + j) * p.k_stride + p.k_off + hk * d;
                for (var c = 0u; c < d; c++) { sc = fma(qs[c], f32(k[kbase + c]), sc); }
                if (p.has_mask != 0u) { sc += mask_at(b, i, j); }
            }
            ps[li] = sc;
        }
        workgroupBarrier();
        // 3. Tile max (every thread scans the tile), rescale the running state.
        var tmax = -0x1.fffffep+127f;
        for (var t = 0u; t < nk; t++) { tmax = max(tmax, ps[t]); }
        let m_new = max(m, tmax);
        let corr = exp(m - m_new);
        var pj = 0.0;
        if (li < nk) { pj = exp(ps[li] - m_new); }
        workgroupBarrier();
        if (li < nk) { ps[li] = pj; }
        workgroupBarrier();
        // 4. Accumulate Σ p_j and Σ p_j · v_j for this thread's channels.
        var tsum = 0.0;
        var a0 = 0.0;
        var a1 = 0.0;
        for (var t = 0u; t < nk; t++) {
            let pt = ps[t];
            tsum += pt;
            let vbase = (b * p.lk + j0 + t) * p.v_stride + p.v_off + hk * d;
            if (li < d) { a0 = fma(pt, f32(v[vbase + li]), a0); }
            if (c1 < d) { a1 = fma(pt, f32(v[vbase + c1]), a1); }
        }
        l = l * corr + tsum;
        acc0 = acc0 * corr + a0;
        acc1 = acc1 * corr + a1;
        m = m_new;
        workgroupBarrier();
    }

    // 5. Normalise and store (empty range → zeros).
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let obase = (b * p.lq + i) * (p.heads * d) + h * d;
    if (li < d) { o[obase + li] = elem(acc0 * inv); }
    if (c1 < d) { o[obase + c1] = elem(acc1 * inv); }
}

// attention_q8: the same attention for a block of 8 query rows per workgroup (v3). Each key and
// value loaded from memory serves all 8 queries: thread t scores key j0 + t against the 8 queries,
// threads 0..7 keep the running max / sum of one query each, and every thread accumulates its
// channels t and t + 64 for the 8 queries. Grid (ceil(lq/8), heads, batch).
const QB: u32 = 8u;
const NEG_MAX: f32 = -0x1.fffffep+127f;

var<workgroup> qs8: array<f32, 1024>;     // [QB][DMAX], pre-scaled
var<workgroup> ps8: array<f32, 512>;      // [QB][WG]: scores, then probabilities
var<workgroup> rng8: array<vec4<u32>, 8>; // per query: lo, hi, uniform, live
var<workgroup> m8: array<f32, 8>;         // running max per query
var<workgroup> l8: array<f32, 8>;         // running Σ exp per query
var<workgroup> mnew8: array<f32, 8>;
var<workgroup> corr8: array<f32, 8>;
var<workgroup> span8: vec2<u32>;          // union of the block's key ranges

fn key_valid(q: u32, j: u32) -> bool {
    let r = rng8[q];
    return r.w != 0u && j >= r.x && j < r.y;
}

@compute @workgroup_size(64, 1, 1)
fn attention_q8(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i0 = wid.x * QB;
    let h = wid.y;
    let hk = h / p.kv_group;   // the K/V head this query head reads
    let b = wid.z;
    let d = p.d;

    // 1. Stage the block's query rows and key ranges.
    for (var t = li; t < QB * d; t += WG) {
        let q = t / d;
        let c = t % d;
        var v = 0.0;
        if (i0 + q < p.lq) { v = q_in(b, i0 + q, h, c); }
        qs8[q * DMAX + c] = v * p.scale;
    }
    if (li < QB) {
        var r = vec4<u32>(0u, 0u, 0u, 0u);
        if (i0 + li < p.lq) {
            r = vec4<u32>(0u, p.lk, 0u, 1u);
            if (p.has_ranges != 0u) {
                let g = ranges[b * p.lq + i0 + li];
                r = vec4<u32>(min(g.x, p.lk), min(g.y, p.lk), g.z, 1u);
            }
        }
        rng8[li] = r;
        m8[li] = NEG_MAX;
        l8[li] = 0.0;
    }
    workgroupBarrier();
    if (li == 0u) {
        var lo = p.lk;
        var hi = 0u;
        for (var q = 0u; q < QB; q++) {
            let r = rng8[q];
            if (r.w != 0u && r.x < r.y) { lo = min(lo, r.x); hi = max(hi, r.y); }
        }
        span8 = vec2<u32>(lo, hi);
    }
    workgroupBarrier();
    let span = workgroupUniformLoad(&span8);

    var acc0: array<f32, 8>;
    var acc1: array<f32, 8>;
    for (var q = 0u; q < QB; q++) { acc0[q] = 0.0; acc1[q] = 0.0; }
    let c1 = li + WG;

    for (var j0 = span.x; j0 < span.y; j0 += WG) {
        let nk = min(WG, span.y - j0);
        // 2. Thread li scores key j0 + li against the block's queries (one K load serves 8).
        if (li < nk) {
            let j = j0 + li;
            var s: array<f32, 8>;
            for (var q = 0u; q < QB; q++) { s[q] = 0.0; }
            let kbase = (b * p.lk + j) * p.k_stride + p.k_off + hk * d;
            for (var c = 0u; c < d; c++) {
                let kc = f32(k[kbase + c]);
                for (var q = 0u; q < QB; q++) { s[q] = fma(qs8[q * DMAX + c], kc, s[q]); }
            }
            for (var q = 0u; q < QB; q++) {
                var sc = s[q];
                if (p.has_mask != 0u) { sc += mask_at(b, i0 + q, j); }
                if (rng8[q].z != 0u) { sc = 0.0; }
                ps8[q * WG + li] = sc;
            }
        }
        workgroupBarrier();
        // 3. Threads 0..7: the tile max of one query over its valid keys; the rescale factor.
        if (li < QB) {
            var tmax = NEG_MAX;
            for (var t = 0u; t < nk; t++) {
                if (key_valid(li, j0 + t)) { tmax = max(tmax, ps8[li * WG + t]); }
            }
            let mn = max(m8[li], tmax);
            corr8[li] = exp(m8[li] - mn);
            mnew8[li] = mn;
            m8[li] = mn;
        }
        workgroupBarrier();
        // 4. Probabilities of key j0 + li for each query (0 outside its range).
        if (li < nk) {
            for (var q = 0u; q < QB; q++) {
                var pj = 0.0;
                if (key_valid(q, j0 + li)) { pj = exp(ps8[q * WG + li] - mnew8[q]); }
                ps8[q * WG + li] = pj;
            }
        }
        workgroupBarrier();
        // 5. Running sums (threads 0..7) and Σ p · v for this thread's channels (one V load serves 8).
        if (li < QB) {
            var tsum = 0.0;
            for (var t = 0u; t < nk; t++) { tsum += ps8[li * WG + t]; }
            l8[li] = l8[li] * corr8[li] + tsum;
        }
        for (var q = 0u; q < QB; q++) { acc0[q] *= corr8[q]; acc1[q] *= corr8[q]; }
        for (var t = 0u; t < nk; t++) {
            let vbase = (b * p.lk + j0 + t) * p.v_stride + p.v_off + hk * d;
            var v0 = 0.0;
            var v1 = 0.0;
            if (li < d) { v0 = f32(v[vbase + li]); }
            if (c1 < d) { v1 = f32(v[vbase + c1]); }
            for (var q = 0u; q < QB; q++) {
                let pt = ps8[q * WG + t];
                acc0[q] = fma(pt, v0, acc0[q]);
                acc1[q] = fma(pt, v1, acc1[q]);
            }
        }
        workgroupBarrier();
    }

    // 6. Normalise and store (empty range → zeros).
    for (var q = 0u; q < QB; q++) {
        if (i0 + q >= p.lq) { break; }
        let l = l8[q];
        let inv = select(0.0, 1.0 / l, l > 0.0);
        let obase = (b * p.lq + i0 + q) * (p.heads * d) + h * d;
        if (li < d) { o[obase + li] = elem(acc0[q] * inv); }
        if (c1 < d) { o[obase + c1] = elem(acc1[q] * inv); }
    }
}

// The additive mask of query i (clamped to the last mask row: rows past lq in a q8 block are never stored).
fn mask_at(b: u32, i: u32, j: u32) -> f32 {
    return f32(mask[(b * p.mask_rows + min(i, p.mask_rows - 1u)) * p.lk + j]);
}

fn q_in(b: u32, i: u32, h: u32, c: u32) -> f32 {
    return f32(q[(b * p.lq + i) * p.q_stride + p.q_off + h * p.d + c]);
}
