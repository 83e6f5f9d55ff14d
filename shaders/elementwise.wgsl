// elementwise.wgsl: small memory-bound kernels. Every entry reads `src` and writes `dst`.
//   activation: dst[i] = act(src[i])                                   i < n
//   copy_rows:  dst[b, dst_off + r, c] = src[b % src_batch, src_off + r, c]
//               (b < batch, r < rows, c < cols): batch broadcast, concat along tokens, slicing
//   add_rows:   dst[r, c] += src[(r / div) % modulo, c]                (r < rows, c < cols)
//               (residual add with div = 1, modulo = rows; per-frame / per-media embeddings)
//   gather_rows: dst[r, c] = src[ids[r], c]                            (r < rows, c < cols)
//               (nn.Embedding; ids are checked against the table on the host)
//   gated_activation: dst[r, c] = act(src[r, c]) · src[r, cols + c] (· row_scale[r] when rows ≠ 0)
//               (LlamaMLP's act(gate_proj(x)) · up_proj(x) on one stacked [gate; up] GEMM output;
//               the row scale is Mllama's full_text_row_masked_out_mask on its MLP branch)

struct EwParams {
    n: u32,
    act: u32,
    rows: u32,
    cols: u32,
    batch: u32,
    src_batch: u32,
    src_rows: u32,
    src_off: u32,
    dst_rows: u32,
    dst_off: u32,
    div: u32,
    modulo: u32,
};

@group(0) @binding(0) var<uniform> p: EwParams;
@group(0) @binding(1) var<storage, read> src: array<elem>;
@group(0) @binding(2) var<storage, read_write> dst: array<elem>;
@group(0) @binding(3) var<storage, read> ids: array<u32>;
@group(0) @binding(4) var<storage, read> row_scale: array<elem>;

@compute @workgroup_size(256, 1, 1)
fn activation(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }
    dst[i] = elem(activate(f32(src[i]), p.act));
}

@compute @workgroup_size(256, 1, 1)
fn copy_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }          // n = batch · rows · cols
    let c = i % p.cols;
    let r = (i / p.cols) % p.rows;
    let b = i / (p.cols * p.rows);
    let sb = b % p.src_batch;
    dst[(b * p.dst_rows + p.dst_off + r) * p.cols + c] = elem(f32(src[(sb * p.src_rows + p.src_off + r) * p.cols + c]));
}

@compute @workgroup_size(256, 1, 1)
fn add_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }          // n = rows · cols
    let c = i % p.cols;
    let r = i / p.cols;
    dst[i] = elem(f32(dst[i]) + f32(src[((r / p.div) % p.modulo) * p.cols + c]));
}

@compute @workgroup_size(256, 1, 1)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }          // n = rows · cols; src holds src_rows rows
    let c = i % p.cols;
    let id = min(ids[i / p.cols], p.src_rows - 1u);   // checked on the host; clamped so a bad id cannot read out of bounds
    dst[i] = elem(f32(src[id * p.cols + c]));
}

@compute @workgroup_size(256, 1, 1)
fn gated_activation(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }          // n = rows · cols; src rows are 2·cols wide
    let c = i % p.cols;
    let r = i / p.cols;
    let base = r * 2u * p.cols;
    var y = activate(f32(src[base + c]), p.act) * f32(src[base + p.cols + c]);
    if (p.rows != 0u) { y *= f32(row_scale[r]); }   // rows: the row scale's length, 0 when none is bound
    dst[i] = elem(y);
}
