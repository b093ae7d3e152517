// ---------------------------------------------------------------------------------------------
// 128 x 128 tile, K step 8: workgroup tiles and staging shared by mm128p_* (v4, below). The
// plain K-8 kernel of the first round (mm128_*) was removed: `Auto` never chose it once v4
// measured faster (BENCHMARKS.md, v4).

const S128: u32 = 33u; // vec4s per padded tile row (132 floats)
const BUF128: u32 = 264u; // vec4s per buffer (8 rows)

var<workgroup> sa128: array<vec4<f32>, 528>;
var<workgroup> sb128: array<vec4<f32>, 528>;

// Thread t fetches elements e = t + 256 i (i < 4) of a 128 x 8 tile. When the source is
// contiguous along k, e walks k fastest (row = e / 8); otherwise it walks the row fastest.
fn tile128_pos(e: u32, k_contig: bool) -> vec2<u32> {
    if (k_contig) {
        return vec2<u32>(e >> 3u, e & 7u);
    }
    return vec2<u32>(e & 127u, e >> 7u);
}

fn a128(t: u32, row0: u32, k0: u32, trans: bool) -> f32 {
    let q = tile128_pos(t, !trans);
    return load_a(row0 + q.x, k0 + q.y, trans);
}

fn b128(t: u32, col0: u32, k0: u32, trans: bool) -> f32 {
    let q = tile128_pos(t, trans);
    return load_b(k0 + q.y, col0 + q.x, trans);
}

fn fetch_a128(t: u32, row0: u32, k0: u32, trans: bool) -> vec4<f32> {
    return vec4<f32>(a128(t, row0, k0, trans), a128(t + 256u, row0, k0, trans),
                     a128(t + 512u, row0, k0, trans), a128(t + 768u, row0, k0, trans));
}

fn fetch_b128(t: u32, col0: u32, k0: u32, trans: bool) -> vec4<f32> {
    return vec4<f32>(b128(t, col0, k0, trans), b128(t + 256u, col0, k0, trans),
                     b128(t + 512u, col0, k0, trans), b128(t + 768u, col0, k0, trans));
}

fn put128(is_a: bool, buf: u32, e: u32, v: f32, k_contig: bool) {
    let q = tile128_pos(e, k_contig);
    let i = buf + q.y * S128 + (q.x >> 2u);
    if (is_a) {
        sa128[i][q.x & 3u] = v;
    } else {
        sb128[i][q.x & 3u] = v;
    }
}

fn put_a128(buf: u32, t: u32, v: vec4<f32>, trans: bool) {
    put128(true, buf, t, v.x, !trans);
    put128(true, buf, t + 256u, v.y, !trans);
    put128(true, buf, t + 512u, v.z, !trans);
    put128(true, buf, t + 768u, v.w, !trans);
}

fn put_b128(buf: u32, t: u32, v: vec4<f32>, trans: bool) {
    put128(false, buf, t, v.x, trans);
    put128(false, buf, t + 256u, v.y, trans);
    put128(false, buf, t + 512u, v.z, trans);
    put128(false, buf, t + 768u, v.w, trans);
}


// ---------------------------------------------------------------------------------------------
// v4: the 128 x 128 tile (256 threads, 8 x 8 per thread) with the fragments of the next k read
// from workgroup memory before the FMAs of the current one, and explicit fma.
// - mm128p_*: K step 8 in the padded layout of mm128 (same loads and stores; 16,896 bytes).
// - mm128s_*: K step 16 in an unpadded, XOR-swizzled layout (vec4 column c of k row r is stored
//   at r * 32 + (c ^ (r & 7))): exactly 32,768 bytes, so it fits Metal's and lavapipe's 32 KiB.
//   Stores from a row-contiguous source hit 32 distinct banks per warp, from a k-contiguous one
//   16 (2-way); the vec4 reads of the inner loop stay conflict-free.
// (A 64 x 128 tile of 128 threads with the same 8 x 8 per thread ran at 0.38-0.47 of cuBLAS,
// against 0.61-0.68 here; it was dropped: BENCHMARKS.md, v4.)

// The four vec4s one k contributes to a thread's 8 x 8 block.
struct Frag {
    a0: vec4<f32>,
    a1: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
}

// acc[2 i + h] += a_i * b_h: row i (i < 4: ty*4 + i; else 64 + ty*4 + i - 4), columns h*64 + tx*4.
fn mac(acc: ptr<function, array<vec4<f32>, 16>>, f: Frag) {
    (*acc)[0] = fma(vec4<f32>(f.a0.x), f.b0, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(f.a0.x), f.b1, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(f.a0.y), f.b0, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(f.a0.y), f.b1, (*acc)[3]);
    (*acc)[4] = fma(vec4<f32>(f.a0.z), f.b0, (*acc)[4]);
    (*acc)[5] = fma(vec4<f32>(f.a0.z), f.b1, (*acc)[5]);
    (*acc)[6] = fma(vec4<f32>(f.a0.w), f.b0, (*acc)[6]);
    (*acc)[7] = fma(vec4<f32>(f.a0.w), f.b1, (*acc)[7]);
    (*acc)[8] = fma(vec4<f32>(f.a1.x), f.b0, (*acc)[8]);
    (*acc)[9] = fma(vec4<f32>(f.a1.x), f.b1, (*acc)[9]);
    (*acc)[10] = fma(vec4<f32>(f.a1.y), f.b0, (*acc)[10]);
    (*acc)[11] = fma(vec4<f32>(f.a1.y), f.b1, (*acc)[11]);
    (*acc)[12] = fma(vec4<f32>(f.a1.z), f.b0, (*acc)[12]);
    (*acc)[13] = fma(vec4<f32>(f.a1.z), f.b1, (*acc)[13]);
    (*acc)[14] = fma(vec4<f32>(f.a1.w), f.b0, (*acc)[14]);
    (*acc)[15] = fma(vec4<f32>(f.a1.w), f.b1, (*acc)[15]);
}

// Rows ty*4 + i and hr + ty*4 + i, columns tx*4 and 64 + tx*4 of the tile at (row0, col0).
// Unrolled with constant indices: a loop indexing acc at run time put the whole accumulator
// array in local memory on the H200 (v4's first run: 2 TFLOP/s).
fn store_8x8(row0: u32, col0: u32, hr: u32, tx: u32, ty: u32,
             acc: ptr<function, array<vec4<f32>, 16>>) {
    let r = row0 + ty * 4u;
    let q = col0 + tx * 4u;
    store4(r, q, (*acc)[0]); store4(r, q + 64u, (*acc)[1]);
    store4(r + 1u, q, (*acc)[2]); store4(r + 1u, q + 64u, (*acc)[3]);
    store4(r + 2u, q, (*acc)[4]); store4(r + 2u, q + 64u, (*acc)[5]);
    store4(r + 3u, q, (*acc)[6]); store4(r + 3u, q + 64u, (*acc)[7]);
    store4(r + hr, q, (*acc)[8]); store4(r + hr, q + 64u, (*acc)[9]);
    store4(r + hr + 1u, q, (*acc)[10]); store4(r + hr + 1u, q + 64u, (*acc)[11]);
    store4(r + hr + 2u, q, (*acc)[12]); store4(r + hr + 2u, q + 64u, (*acc)[13]);
    store4(r + hr + 3u, q, (*acc)[14]); store4(r + hr + 3u, q + 64u, (*acc)[15]);
}

fn frag128(o: u32, tx: u32, ty: u32) -> Frag {
    return Frag(sa128[o + ty], sa128[o + 16u + ty], sb128[o + tx], sb128[o + 16u + tx]);
}

fn mm128p(group: vec2<u32>, t: u32, tx: u32, ty: u32, ta: bool, tb: bool) {
    let row0 = group.y * 128u;
    let col0 = group.x * 128u;
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    let steps = slice_steps(8u);
    var ra = fetch_a128(t, row0, k_lo(), ta);
    var rb = fetch_b128(t, col0, k_lo(), tb);
    put_a128(0u, t, ra, ta);
    put_b128(0u, t, rb, tb);
    workgroupBarrier();

    for (var s = 0u; s < steps; s++) {
        let cur = (s & 1u) * BUF128;
        let more = s + 1u < steps;
        if (more) {
            ra = fetch_a128(t, row0, k_lo() + (s + 1u) * 8u, ta);
            rb = fetch_b128(t, col0, k_lo() + (s + 1u) * 8u, tb);
        }
        let f0 = frag128(cur, tx, ty);
        let f1 = frag128(cur + S128, tx, ty);
        mac(&acc, f0);
        let f2 = frag128(cur + 2u * S128, tx, ty);
        mac(&acc, f1);
        let f3 = frag128(cur + 3u * S128, tx, ty);
        mac(&acc, f2);
        let f4 = frag128(cur + 4u * S128, tx, ty);
        mac(&acc, f3);
        let f5 = frag128(cur + 5u * S128, tx, ty);
        mac(&acc, f4);
        let f6 = frag128(cur + 6u * S128, tx, ty);
        mac(&acc, f5);
        let f7 = frag128(cur + 7u * S128, tx, ty);
        mac(&acc, f6);
        mac(&acc, f7);
        if (more) {
            let nxt = BUF128 - cur;
            put_a128(nxt, t, ra, ta);
            put_b128(nxt, t, rb, tb);
        }
        workgroupBarrier();
    }
    store_8x8(row0, col0, 64u, tx, ty, &acc);
}

@compute @workgroup_size(16, 16)
fn mm128p_nn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128p(g.xy, t, l.x, l.y, false, false);
}

@compute @workgroup_size(16, 16)
fn mm128p_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128p(g.xy, t, l.x, l.y, true, false);
}

@compute @workgroup_size(16, 16)
fn mm128p_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128p(g.xy, t, l.x, l.y, false, true);
}

@compute @workgroup_size(16, 16)
fn mm128p_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128p(g.xy, t, l.x, l.y, true, true);
}

const SBUF: u32 = 512u; // vec4s per swizzled buffer (16 k rows of 32)

var<workgroup> sas: array<vec4<f32>, 1024>;
var<workgroup> sbs: array<vec4<f32>, 1024>;

fn puts(is_a: bool, buf: u32, e: u32, v: f32, k_contig: bool) {
    let q = tile16_pos(e, k_contig);
    let i = buf + q.y * 32u + ((q.x >> 2u) ^ (q.y & 7u));
    if (is_a) {
        sas[i][q.x & 3u] = v;
    } else {
        sbs[i][q.x & 3u] = v;
    }
}

fn put_tiles(is_a: bool, buf: u32, t: u32, f: Fetch16, k_contig: bool) {
    puts(is_a, buf, t, f.lo.x, k_contig);
    puts(is_a, buf, t + 256u, f.lo.y, k_contig);
    puts(is_a, buf, t + 512u, f.lo.z, k_contig);
    puts(is_a, buf, t + 768u, f.lo.w, k_contig);
    puts(is_a, buf, t + 1024u, f.hi.x, k_contig);
    puts(is_a, buf, t + 1280u, f.hi.y, k_contig);
    puts(is_a, buf, t + 1536u, f.hi.z, k_contig);
    puts(is_a, buf, t + 1792u, f.hi.w, k_contig);
}

// Fragments of k row `k` (< 16) of buffer `buf`; 16 + c ^ s == (16 + c) ^ s for c < 16, s < 8.
fn frags(buf: u32, k: u32, tx: u32, ty: u32) -> Frag {
    let o = buf + k * 32u;
    let s = k & 7u;
    let ya = o + (ty ^ s);
    let xb = o + (tx ^ s);
    return Frag(sas[ya], sas[ya + 16u], sbs[xb], sbs[xb + 16u]);
}

fn mm128s(group: vec2<u32>, t: u32, tx: u32, ty: u32, ta: bool, tb: bool) {
    let row0 = group.y * 128u;
    let col0 = group.x * 128u;
    var acc: array<vec4<f32>, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    let steps = slice_steps(16u);
    var ra = fetch_a16(t, row0, k_lo(), ta);
    var rb = fetch_b16(t, col0, k_lo(), tb);
    put_tiles(true, 0u, t, ra, !ta);
    put_tiles(false, 0u, t, rb, tb);
    workgroupBarrier();

    for (var s = 0u; s < steps; s++) {
        let cur = (s & 1u) * SBUF;
        let more = s + 1u < steps;
        if (more) {
            ra = fetch_a16(t, row0, k_lo() + (s + 1u) * 16u, ta);
            rb = fetch_b16(t, col0, k_lo() + (s + 1u) * 16u, tb);
        }
        let f0 = frags(cur, 0u, tx, ty);
        let f1 = frags(cur, 1u, tx, ty);
        mac(&acc, f0);
        let f2 = frags(cur, 2u, tx, ty);
        mac(&acc, f1);
        let f3 = frags(cur, 3u, tx, ty);
        mac(&acc, f2);
        let f4 = frags(cur, 4u, tx, ty);
        mac(&acc, f3);
        let f5 = frags(cur, 5u, tx, ty);
        mac(&acc, f4);
        let f6 = frags(cur, 6u, tx, ty);
        mac(&acc, f5);
        let f7 = frags(cur, 7u, tx, ty);
        mac(&acc, f6);
        let f8 = frags(cur, 8u, tx, ty);
        mac(&acc, f7);
        let f9 = frags(cur, 9u, tx, ty);
        mac(&acc, f8);
        let f10 = frags(cur, 10u, tx, ty);
        mac(&acc, f9);
        let f11 = frags(cur, 11u, tx, ty);
        mac(&acc, f10);
        let f12 = frags(cur, 12u, tx, ty);
        mac(&acc, f11);
        let f13 = frags(cur, 13u, tx, ty);
        mac(&acc, f12);
        let f14 = frags(cur, 14u, tx, ty);
        mac(&acc, f13);
        let f15 = frags(cur, 15u, tx, ty);
        mac(&acc, f14);
        mac(&acc, f15);
        if (more) {
            let nxt = SBUF - cur;
            put_tiles(true, nxt, t, ra, !ta);
            put_tiles(false, nxt, t, rb, tb);
        }
        workgroupBarrier();
    }
    store_8x8(row0, col0, 64u, tx, ty, &acc);
}

@compute @workgroup_size(16, 16)
fn mm128s_nn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128s(g.xy, t, l.x, l.y, false, false);
}

@compute @workgroup_size(16, 16)
fn mm128s_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128s(g.xy, t, l.x, l.y, true, false);
}

@compute @workgroup_size(16, 16)
fn mm128s_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128s(g.xy, t, l.x, l.y, false, true);
}

@compute @workgroup_size(16, 16)
fn mm128s_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    begin_slice(g.z);
    mm128s(g.xy, t, l.x, l.y, true, true);
}
