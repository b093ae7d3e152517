// ---------------------------------------------------------------------------------------------
// 128 x 128 tile, K step 16, 8 x 8 per thread: half the barriers per FMA of a K-8 tile, for
// devices with 33,792 bytes of workgroup memory (not Metal's 32 KiB).

const BUF16: u32 = 528u; // vec4s per buffer (16 rows of 33)

var<workgroup> sa16: array<vec4<f32>, 1056>;
var<workgroup> sb16: array<vec4<f32>, 1056>;

// Element e < 2048 of a 128 x 16 tile: (row, k).
fn tile16_pos(e: u32, k_contig: bool) -> vec2<u32> {
    if (k_contig) {
        return vec2<u32>(e >> 4u, e & 15u);
    }
    return vec2<u32>(e & 127u, e >> 7u);
}

fn a16(e: u32, row0: u32, k0: u32, trans: bool) -> f32 {
    let q = tile16_pos(e, !trans);
    return load_a(row0 + q.x, k0 + q.y, trans);
}

fn b16(e: u32, col0: u32, k0: u32, trans: bool) -> f32 {
    let q = tile16_pos(e, trans);
    return load_b(k0 + q.y, col0 + q.x, trans);
}

// Eight elements per thread and matrix: e = t + 256 i.
struct Fetch16 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

fn fetch_a16(t: u32, row0: u32, k0: u32, trans: bool) -> Fetch16 {
    return Fetch16(
        vec4<f32>(a16(t, row0, k0, trans), a16(t + 256u, row0, k0, trans),
                  a16(t + 512u, row0, k0, trans), a16(t + 768u, row0, k0, trans)),
        vec4<f32>(a16(t + 1024u, row0, k0, trans), a16(t + 1280u, row0, k0, trans),
                  a16(t + 1536u, row0, k0, trans), a16(t + 1792u, row0, k0, trans)));
}

fn fetch_b16(t: u32, col0: u32, k0: u32, trans: bool) -> Fetch16 {
    return Fetch16(
        vec4<f32>(b16(t, col0, k0, trans), b16(t + 256u, col0, k0, trans),
                  b16(t + 512u, col0, k0, trans), b16(t + 768u, col0, k0, trans)),
        vec4<f32>(b16(t + 1024u, col0, k0, trans), b16(t + 1280u, col0, k0, trans),
                  b16(t + 1536u, col0, k0, trans), b16(t + 1792u, col0, k0, trans)));
}

fn put16(is_a: bool, buf: u32, e: u32, v: f32, k_contig: bool) {
    let q = tile16_pos(e, k_contig);
    let i = buf + q.y * S128 + (q.x >> 2u);
    if (is_a) {
        sa16[i][q.x & 3u] = v;
    } else {
        sb16[i][q.x & 3u] = v;
    }
}

fn put_tile16(is_a: bool, buf: u32, t: u32, f: Fetch16, k_contig: bool) {
    put16(is_a, buf, t, f.lo.x, k_contig);
    put16(is_a, buf, t + 256u, f.lo.y, k_contig);
    put16(is_a, buf, t + 512u, f.lo.z, k_contig);
    put16(is_a, buf, t + 768u, f.lo.w, k_contig);
    put16(is_a, buf, t + 1024u, f.hi.x, k_contig);
    put16(is_a, buf, t + 1280u, f.hi.y, k_contig);
    put16(is_a, buf, t + 1536u, f.hi.z, k_contig);
    put16(is_a, buf, t + 1792u, f.hi.w, k_contig);
}

fn fma16_8x8(acc: ptr<function, array<vec4<f32>, 16>>, o: u32, tx: u32, ty: u32) {
    let a0 = sa16[o + ty];
    let a1 = sa16[o + 16u + ty];
    let b0 = sb16[o + tx];
    let b1 = sb16[o + 16u + tx];
    (*acc)[0] += a0.x * b0;
    (*acc)[1] += a0.x * b1;
    (*acc)[2] += a0.y * b0;
    (*acc)[3] += a0.y * b1;
    (*acc)[4] += a0.z * b0;
    (*acc)[5] += a0.z * b1;
    (*acc)[6] += a0.w * b0;
    (*acc)[7] += a0.w * b1;
    (*acc)[8] += a1.x * b0;
    (*acc)[9] += a1.x * b1;
    (*acc)[10] += a1.y * b0;
    (*acc)[11] += a1.y * b1;
    (*acc)[12] += a1.z * b0;
    (*acc)[13] += a1.z * b1;
    (*acc)[14] += a1.w * b0;
    (*acc)[15] += a1.w * b1;
}

fn mm128k16(group: vec2<u32>, t: u32, tx: u32, ty: u32, ta: bool, tb: bool) {
    let row0 = group.y * 128u;
    let col0 = group.x * 128u;
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    let steps = slice_steps(16u);
    var ra = fetch_a16(t, row0, k_lo(), ta);
    var rb = fetch_b16(t, col0, k_lo(), tb);
    put_tile16(true, 0u, t, ra, !ta);
    put_tile16(false, 0u, t, rb, tb);
    workgroupBarrier();

    for (var s = 0u; s < steps; s++) {
        let cur = (s & 1u) * BUF16;
        let more = s + 1u < steps;
        if (more) {
            ra = fetch_a16(t, row0, k_lo() + (s + 1u) * 16u, ta);
            rb = fetch_b16(t, col0, k_lo() + (s + 1u) * 16u, tb);
        }
        for (var kk = 0u; kk < 16u; kk += 4u) {
            let o = cur + kk * S128;
            fma16_8x8(&acc, o, tx, ty);
            fma16_8x8(&acc, o + S128, tx, ty);
            fma16_8x8(&acc, o + 2u * S128, tx, ty);
            fma16_8x8(&acc, o + 3u * S128, tx, ty);
        }
        if (more) {
            let nxt = BUF16 - cur;
            put_tile16(true, nxt, t, ra, !ta);
            put_tile16(false, nxt, t, rb, tb);
        }
        workgroupBarrier();
    }

    let r = row0 + ty * 4u;
    let q = col0 + tx * 4u;
    store4(r, q, acc[0]); store4(r, q + 64u, acc[1]);
    store4(r + 1u, q, acc[2]); store4(r + 1u, q + 64u, acc[3]);
    store4(r + 2u, q, acc[4]); store4(r + 2u, q + 64u, acc[5]);
    store4(r + 3u, q, acc[6]); store4(r + 3u, q + 64u, acc[7]);
    store4(r + 64u, q, acc[8]); store4(r + 64u, q + 64u, acc[9]);
    store4(r + 65u, q, acc[10]); store4(r + 65u, q + 64u, acc[11]);
    store4(r + 66u, q, acc[12]); store4(r + 66u, q + 64u, acc[13]);
    store4(r + 67u, q, acc[14]); store4(r + 67u, q + 64u, acc[15]);
}

@compute @workgroup_size(16, 16)
fn mm128k16_nn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
               @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128k16(g.xy, t, l.x, l.y, false, false);
}

@compute @workgroup_size(16, 16)
fn mm128k16_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
               @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128k16(g.xy, t, l.x, l.y, true, false);
}

@compute @workgroup_size(16, 16)
fn mm128k16_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
               @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128k16(g.xy, t, l.x, l.y, false, true);
}

@compute @workgroup_size(16, 16)
fn mm128k16_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
               @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128k16(g.xy, t, l.x, l.y, true, true);
}

