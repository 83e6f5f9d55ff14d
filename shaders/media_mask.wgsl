// media_mask.wgsl: media_ranges: Flamingo media masking from media_locations (bytes packed 4 per u32 word).
//   text_time = inclusive cumsum of media_locations along the text;
//   immediate:    t == 0 → empty range (zero output); t past the media → all keys, uniform scores
//                 (every score is masked in OpenFlamingo, so its softmax is uniform); else keys of
//                 media t: [(t-1)·n, t·n)
//   all previous: t == 0 → all keys, uniform scores; else keys [0, t·n)
// One thread per batch row (a scan over the row).
struct MediaParams {
    batch: u32,
    len: u32,
    tokens_per_media: u32,
    n_media: u32,
    immediate: u32,
    words_per_row: u32,
    _p0: u32,
    _p1: u32,
};

@group(0) @binding(0) var<uniform> mp: MediaParams;
@group(0) @binding(1) var<storage, read> locations: array<u32>;
@group(0) @binding(2) var<storage, read_write> out_ranges: array<vec4<u32>>;

@compute @workgroup_size(64, 1, 1)
fn media_ranges(@builtin(global_invocation_id) gid: vec3<u32>) {
    let b = gid.x;
    if (b >= mp.batch) { return; }
    let n = mp.tokens_per_media;
    var t = 0u;
    for (var i = 0u; i < mp.len; i++) {
        let word = locations[b * mp.words_per_row + i / 4u];
        t = min(t + ((word >> (8u * (i % 4u))) & 0xffu), mp.n_media + 1u);   // past the media is all one
        let tt = min(t, mp.n_media);
        var r = vec4<u32>(0u, 0u, 0u, 0u);
        if (mp.immediate != 0u) {
            if (t > mp.n_media) {
                r = vec4<u32>(0u, mp.n_media * n, 1u, 0u);
            } else if (t > 0u) {
                r = vec4<u32>((t - 1u) * n, t * n, 0u, 0u);
            }
        } else {
            if (tt > 0u) { r = vec4<u32>(0u, tt * n, 0u, 0u); } else { r = vec4<u32>(0u, mp.n_media * n, 1u, 0u); }
        }
        out_ranges[b * mp.len + i] = r;
    }
}
