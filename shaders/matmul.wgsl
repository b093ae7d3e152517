// Matrix product C = act(op(A) · op(B) + bias) (+ C), row-major f32, any M, N, K.
//
// op(A) is [M, K]: A is stored [M, K], or [K, M] when transposed (entries *_t*).
// op(B) is [K, N]: B is stored [K, N], or [N, K] when transposed (entries *_*t).
//
// Four tilings, all 256 threads as a 16 x 16 grid, all double-buffered in workgroup memory with
// one barrier per K step (the v4 pair, mm128p_* and mm128s_*, is described further down):
// - mm128k16_*: 128 x 128 output tile, K step 16, each thread an 8 x 8 register block held as
//   sixteen vec4 accumulators (rows ty*4+i and 64+ty*4+i, columns tx*4.. and 64+tx*4..).
//   33,792 bytes of workgroup memory.
// - mm64_*: 64 x 64 output tile, K step 8, each thread a 4 x 4 block. 8,704 bytes; fits every
//   adapter that runs compute, so it is the path that is always present.
//
// Tiles are stored K-major in workgroup memory (tile[k][row]) so the inner loop reads a vec4 of
// op(A) rows and a vec4 of op(B) columns per k. Rows are padded by 4 floats (132 or 68): the
// stores from a k-contiguous source (A untransposed, B transposed) then hit 32 distinct banks
// per warp instead of 8-way conflicts. Global loads are scalar and bounds-checked (zero outside
// the matrix), so no size or alignment is required; consecutive threads read consecutive
// addresses in either layout.

override WG: u32 = 256u; // Unused: the pipeline cache sets WG on every shader.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // bit 0: add bias[col]; bit 1: accumulate into C.
    flags: u32,
    // 0 none, 1 ReLU, 2 GELU (tanh approximation).
    act: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

fn activate(x: f32) -> f32 {
    if (p.act == 1u) {
        return max(x, 0.0);
    }
    if (p.act == 2u) {
        // 1 + tanh(u) from e = exp(-2|u|), as in elementwise.wgsl: no cancellation, no overflow.
        let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
        let e = exp(-2.0 * abs(u));
        let one_plus_t = select(2.0 * e, 2.0, u >= 0.0) / (1.0 + e);
        return 0.5 * x * one_plus_t;
    }
    return x;
}

// Writes up to four consecutive outputs of one row, applying the epilogue.
fn store4(row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let cj = col + j;
        if (cj < p.n) {
            var x = v[j];
            if ((p.flags & 1u) != 0u) {
                x += bias[cj];
            }
            x = activate(x);
            let idx = row * p.n + cj;
            if ((p.flags & 2u) != 0u) {
                x += c[idx];
            }
            c[idx] = x;
        }
    }
}

// Element (r, kk) of op(A): r < M, kk < K; zero outside.
fn load_a(r: u32, kk: u32, trans: bool) -> f32 {
    if (r >= p.m || kk >= p.k) {
        return 0.0;
    }
    if (trans) {
        return a[kk * p.m + r];
    }
    return a[r * p.k + kk];
}

// Element (kk, col) of op(B): kk < K, col < N; zero outside.
fn load_b(kk: u32, col: u32, trans: bool) -> f32 {
    if (kk >= p.k || col >= p.n) {
        return 0.0;
    }
    if (trans) {
        return b[col * p.k + kk];
    }
    return b[kk * p.n + col];
}

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

    let steps = (p.k + 15u) / 16u;
    var ra = fetch_a16(t, row0, 0u, ta);
    var rb = fetch_b16(t, col0, 0u, tb);
    put_tile16(true, 0u, t, ra, !ta);
    put_tile16(false, 0u, t, rb, tb);
    workgroupBarrier();

    for (var s = 0u; s < steps; s++) {
        let cur = (s & 1u) * BUF16;
        let more = s + 1u < steps;
        if (more) {
            ra = fetch_a16(t, row0, (s + 1u) * 16u, ta);
            rb = fetch_b16(t, col0, (s + 1u) * 16u, tb);
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
    mm128k16(g.xy, t, l.x, l.y, false, false);
}

@compute @workgroup_size(16, 16)
fn mm128k16_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
               @builtin(local_invocation_id) l: vec3<u32>) {
    mm128k16(g.xy, t, l.x, l.y, true, false);
}

@compute @workgroup_size(16, 16)
fn mm128k16_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
               @builtin(local_invocation_id) l: vec3<u32>) {
    mm128k16(g.xy, t, l.x, l.y, false, true);
}

@compute @workgroup_size(16, 16)
fn mm128k16_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
               @builtin(local_invocation_id) l: vec3<u32>) {
    mm128k16(g.xy, t, l.x, l.y, true, true);
}

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

    let steps = (p.k + 7u) / 8u;
    var ra = fetch_a64(t, row0, 0u, ta);
    var rb = fetch_b64(t, col0, 0u, tb);
    put_a64(0u, t, ra, ta);
    put_b64(0u, t, rb, tb);
    workgroupBarrier();

    for (var s = 0u; s < steps; s++) {
        let cur = (s & 1u) * BUF64;
        let more = s + 1u < steps;
        if (more) {
            ra = fetch_a64(t, row0, (s + 1u) * 8u, ta);
            rb = fetch_b64(t, col0, (s + 1u) * 8u, tb);
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
    mm64(g.xy, t, l.x, l.y, false, false);
}

@compute @workgroup_size(16, 16)
fn mm64_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
           @builtin(local_invocation_id) l: vec3<u32>) {
    mm64(g.xy, t, l.x, l.y, true, false);
}

@compute @workgroup_size(16, 16)
fn mm64_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
           @builtin(local_invocation_id) l: vec3<u32>) {
    mm64(g.xy, t, l.x, l.y, false, true);
}

@compute @workgroup_size(16, 16)
fn mm64_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
           @builtin(local_invocation_id) l: vec3<u32>) {
    mm64(g.xy, t, l.x, l.y, true, true);
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

    let steps = (p.k + 7u) / 8u;
    var ra = fetch_a128(t, row0, 0u, ta);
    var rb = fetch_b128(t, col0, 0u, tb);
    put_a128(0u, t, ra, ta);
    put_b128(0u, t, rb, tb);
    workgroupBarrier();

    for (var s = 0u; s < steps; s++) {
        let cur = (s & 1u) * BUF128;
        let more = s + 1u < steps;
        if (more) {
            ra = fetch_a128(t, row0, (s + 1u) * 8u, ta);
            rb = fetch_b128(t, col0, (s + 1u) * 8u, tb);
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
    mm128p(g.xy, t, l.x, l.y, false, false);
}

@compute @workgroup_size(16, 16)
fn mm128p_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    mm128p(g.xy, t, l.x, l.y, true, false);
}

@compute @workgroup_size(16, 16)
fn mm128p_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    mm128p(g.xy, t, l.x, l.y, false, true);
}

@compute @workgroup_size(16, 16)
fn mm128p_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
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

    let steps = (p.k + 15u) / 16u;
    var ra = fetch_a16(t, row0, 0u, ta);
    var rb = fetch_b16(t, col0, 0u, tb);
    put_tiles(true, 0u, t, ra, !ta);
    put_tiles(false, 0u, t, rb, tb);
    workgroupBarrier();

    for (var s = 0u; s < steps; s++) {
        let cur = (s & 1u) * SBUF;
        let more = s + 1u < steps;
        if (more) {
            ra = fetch_a16(t, row0, (s + 1u) * 16u, ta);
            rb = fetch_b16(t, col0, (s + 1u) * 16u, tb);
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
    mm128s(g.xy, t, l.x, l.y, false, false);
}

@compute @workgroup_size(16, 16)
fn mm128s_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    mm128s(g.xy, t, l.x, l.y, true, false);
}

@compute @workgroup_size(16, 16)
fn mm128s_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    mm128s(g.xy, t, l.x, l.y, false, true);
}

@compute @workgroup_size(16, 16)
fn mm128s_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    mm128s(g.xy, t, l.x, l.y, true, true);
}
