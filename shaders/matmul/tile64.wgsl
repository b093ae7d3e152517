// ---------------------------------------------------------------------------------------------
// 64 x 64 tile, K step 8, 4 x 4 per thread.

const S64: u32 = 17u; // vec4s per padded tile row (68 floats)
const BUF64: u32 = 136u; // vec4s per buffer (8 rows)

var<workgroup> sa64: array<vec4<f32>, 272>;
var<workgroup> sb64: array<vec4<f32>, 272>;

// Thread t fetches elements e = t + 256 i (i < 2) of a 64 x 8 tile.
fn tile64_pos(e: u32, k_contig: bool) -> vec2<u32> {
    if (k_contig) {
        return vec2<u32>(e >> 3u, e & 7u);
    }
    return vec2<u32>(e & 63u, e >> 6u);
}

fn fetch_a64(t: u32, row0: u32, k0: u32, trans: bool) -> vec2<f32> {
    let q0 = tile64_pos(t, !trans);
    let q1 = tile64_pos(t + 256u, !trans);
    return vec2<f32>(load_a(row0 + q0.x, k0 + q0.y, trans), load_a(row0 + q1.x, k0 + q1.y, trans));
}

fn fetch_b64(t: u32, col0: u32, k0: u32, trans: bool) -> vec2<f32> {
    let q0 = tile64_pos(t, trans);
    let q1 = tile64_pos(t + 256u, trans);
    return vec2<f32>(load_b(k0 + q0.y, col0 + q0.x, trans), load_b(k0 + q1.y, col0 + q1.x, trans));
}

fn put_a64(buf: u32, t: u32, v: vec2<f32>, trans: bool) {
    let q0 = tile64_pos(t, !trans);
    let q1 = tile64_pos(t + 256u, !trans);
    sa64[buf + q0.y * S64 + (q0.x >> 2u)][q0.x & 3u] = v.x;
    sa64[buf + q1.y * S64 + (q1.x >> 2u)][q1.x & 3u] = v.y;
}

fn put_b64(buf: u32, t: u32, v: vec2<f32>, trans: bool) {
    let q0 = tile64_pos(t, trans);
    let q1 = tile64_pos(t + 256u, trans);
    sb64[buf + q0.y * S64 + (q0.x >> 2u)][q0.x & 3u] = v.x;
    sb64[buf + q1.y * S64 + (q1.x >> 2u)][q1.x & 3u] = v.y;
}

// One k of the 4 x 4 block, unrolled in the source (naga bounds every loop with a counter).
fn fma_4x4(acc: ptr<function, array<vec4<f32>, 4>>, o: u32, tx: u32, ty: u32) {
    let av = sa64[o + ty];
    let bv = sb64[o + tx];
    (*acc)[0] += av.x * bv;
    (*acc)[1] += av.y * bv;
    (*acc)[2] += av.z * bv;
    (*acc)[3] += av.w * bv;
}

fn mm64(group: vec2<u32>, t: u32, tx: u32, ty: u32, ta: bool, tb: bool) {
    let row0 = group.y * 64u;
    let col0 = group.x * 64u;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));

    let steps = slice_steps(8u);
    var ra = fetch_a64(t, row0, k_lo(), ta);
    var rb = fetch_b64(t, col0, k_lo(), tb);
    put_a64(0u, t, ra, ta);
    put_b64(0u, t, rb, tb);
    workgroupBarrier();

    for (var s = 0u; s < steps; s++) {
        let cur = (s & 1u) * BUF64;
        let more = s + 1u < steps;
        if (more) {
            ra = fetch_a64(t, row0, k_lo() + (s + 1u) * 8u, ta);
            rb = fetch_b64(t, col0, k_lo() + (s + 1u) * 8u, tb);
        }
        fma_4x4(&acc, cur, tx, ty);
        fma_4x4(&acc, cur + S64, tx, ty);
        fma_4x4(&acc, cur + 2u * S64, tx, ty);
        fma_4x4(&acc, cur + 3u * S64, tx, ty);
        fma_4x4(&acc, cur + 4u * S64, tx, ty);
        fma_4x4(&acc, cur + 5u * S64, tx, ty);
        fma_4x4(&acc, cur + 6u * S64, tx, ty);
        fma_4x4(&acc, cur + 7u * S64, tx, ty);
        if (more) {
            let nxt = BUF64 - cur;
            put_a64(nxt, t, ra, ta);
            put_b64(nxt, t, rb, tb);
        }
        workgroupBarrier();
    }

    let r = row0 + ty * 4u;
    let q = col0 + tx * 4u;
    store4(r, q, acc[0]);
    store4(r + 1u, q, acc[1]);
    store4(r + 2u, q, acc[2]);
    store4(r + 3u, q, acc[3]);
}

@compute @workgroup_size(16, 16)
fn mm64_nn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
           @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm64(g.xy, t, l.x, l.y, false, false);
}

@compute @workgroup_size(16, 16)
fn mm64_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
           @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm64(g.xy, t, l.x, l.y, true, false);
}

@compute @workgroup_size(16, 16)
fn mm64_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
           @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm64(g.xy, t, l.x, l.y, false, true);
}

@compute @workgroup_size(16, 16)
fn mm64_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
           @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm64(g.xy, t, l.x, l.y, true, true);
}

