// ceiling.wgsl: two tiny kernels that measure the adapter's ceilings in the same run as a benchmark.
//   fma_peak: each thread runs 8 independent vec4 FMA chains for `iters` steps (2·4·8·iters FLOPs)
//             and writes one value, so the work cannot be optimised away.
//   copy_bw:  dst[i] = src[i] over vec4s (16 B read + 16 B written per element).

struct CeilParams {
    n: u32,
    iters: u32,
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> p: CeilParams;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256, 1, 1)
fn fma_peak(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }
    let s = f32(i % 7u) * 1e-3;
    let m = vec4<f32>(0.999, 0.998, 0.997, 0.996);
    let c = vec4<f32>(1e-3, 2e-3, 3e-3, 4e-3);
    var a0 = vec4<f32>(s); var a1 = a0 + 0.1; var a2 = a0 + 0.2; var a3 = a0 + 0.3;
    var a4 = a0 + 0.4; var a5 = a0 + 0.5; var a6 = a0 + 0.6; var a7 = a0 + 0.7;
    for (var k = 0u; k < p.iters; k++) {
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
    }
    dst[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

@compute @workgroup_size(256, 1, 1)
fn copy_bw(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) li: u32) {
    let i = group_index(wid, nwg) * 256u + li;
    if (i >= p.n) { return; }
    dst[i] = src[i];
}
