// Matrix product on f16 storage with f32 arithmetic: C = act(op(A) · op(B) + bias) (+ C), any
// M, N, K. The plain (non-cooperative) kernel for f16 tensors, on every adapter with SHADER_F16.
//
// A and B are f16; bias is f32 (the master copy: the epilogue adds it in f32); C is f16
// (mm64h_*: activations, input gradients) or f32 (mm64hf_*: weight gradients, accumulated
// in f32 so that many small f16 contributions are not rounded away one by one).
// Each f16 is widened to f32 when it is staged into workgroup memory (exact), every product and
// sum is f32, and only the final store rounds to f16 (to nearest even; overflow to infinity,
// which the loss scaler detects: see narrow()).
//
// Two tilings, as in shaders/matmul/: mm128p_*'s 128 x 128 tile (8 x 8 per thread) and mm64_*'s
// 64 x 64 tile (4 x 4 per thread), 256 threads as 16 x 16, double-buffered f32 tiles stored
// K-major with padded rows; global loads are scalar and bounds-checked, so no size or alignment
// is required.
//
// c16 and c32 share binding 1: each entry point uses exactly one of them.

enable f16;

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
@group(0) @binding(1) var<storage, read_write> c16: array<f16>;
@group(0) @binding(1) var<storage, read_write> c32: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f16>;
@group(0) @binding(3) var<storage, read> b: array<f16>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

fn activate(x: f32) -> f32 {
    if (p.act == 1u) {
        return max(x, 0.0);
    }
    if (p.act == 2u) {
        let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
        let e = exp(-2.0 * abs(u));
        let one_plus_t = select(2.0 * e, 2.0, u >= 0.0) / (1.0 + e);
        return 0.5 * x * one_plus_t;
    }
    return x;
}

// Rounds to the nearest f16, and to a signed infinity past f16's range (see elementwise_f16.wgsl:
// WGSL leaves out-of-range conversions indeterminate; the loss scaler needs the overflow seen).
fn narrow(v: f32) -> f16 {
    // A runtime f32 infinity of v's sign (converting an infinity is exact; a constant one
    // would not survive constant evaluation).
    let inf = bitcast<f32>(0x7f800000u | select(0u, 0x80000000u, v < 0.0));
    return select(f16(v), f16(inf), abs(v) >= 65520.0);
}

// The epilogue before the optional accumulation: bias, then activation.
fn epilogue(v: f32, col: u32) -> f32 {
    var x = v;
    if ((p.flags & 1u) != 0u) {
        x += bias[col];
    }
    return activate(x);
}

fn store4_f16(row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let cj = col + j;
        if (cj < p.n) {
            var x = epilogue(v[j], cj);
            let idx = row * p.n + cj;
            if ((p.flags & 2u) != 0u) {
                x += f32(c16[idx]);
            }
            c16[idx] = narrow(x);
        }
    }
}

fn store4_f32(row: u32, col: u32, v: vec4<f32>) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let cj = col + j;
        if (cj < p.n) {
            var x = epilogue(v[j], cj);
            let idx = row * p.n + cj;
            if ((p.flags & 2u) != 0u) {
                x += c32[idx];
            }
            c32[idx] = x;
        }
    }
}

// Element (r, kk) of op(A), widened to f32; zero outside.
fn load_a(r: u32, kk: u32, trans: bool) -> f32 {
    if (r >= p.m || kk >= p.k) {
        return 0.0;
    }
    if (trans) {
        return f32(a[kk * p.m + r]);
    }
    return f32(a[r * p.k + kk]);
}

// Element (kk, col) of op(B), widened to f32; zero outside.
fn load_b(kk: u32, col: u32, trans: bool) -> f32 {
    if (kk >= p.k || col >= p.n) {
        return 0.0;
    }
    if (trans) {
        return f32(b[col * p.k + kk]);
    }
    return f32(b[kk * p.n + col]);
}

// ---------------------------------------------------------------------------------------------
// 128 x 128 tile (mm128h_*, mm128hf_*): mm128p_* of matmul.wgsl (K step 8, the next k's
// fragments read before the current k's FMAs, explicit fma; 16,896 bytes of workgroup memory)
// over the f16 loads above, with the f16 or f32 stores of this file. For outputs with enough
// 128 tiles to fill the GPU; the 64 tile below for the rest.

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

// The four vec4s one k contributes to a thread's 8 x 8 block.
struct Frag {
    a0: vec4<f32>,
    a1: vec4<f32>,
    b0: vec4<f32>,
    b1: vec4<f32>,
}

// acc[2 i + h] += a_i * b_h, as in fma_8x8.
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

fn frag128(o: u32, tx: u32, ty: u32) -> Frag {
    return Frag(sa128[o + ty], sa128[o + 16u + ty], sb128[o + tx], sb128[o + 16u + tx]);
}

fn mm128p(group: vec2<u32>, t: u32, tx: u32, ty: u32, ta: bool, tb: bool) -> array<vec4<f32>, 16> {
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
    return acc;
}

// Rows ty*4 + i and 64 + ty*4 + i, columns tx*4 and 64 + tx*4 of the 128 tile at (row0, col0),
// unrolled with constant indices as store_8x8 in matmul.wgsl (a run-time index put the whole
// accumulator in local memory on the H200).
fn store128_f16(row0: u32, col0: u32, tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, 16>>) {
    let r = row0 + ty * 4u;
    let q = col0 + tx * 4u;
    store4_f16(r, q, (*acc)[0]); store4_f16(r, q + 64u, (*acc)[1]);
    store4_f16(r + 1u, q, (*acc)[2]); store4_f16(r + 1u, q + 64u, (*acc)[3]);
    store4_f16(r + 2u, q, (*acc)[4]); store4_f16(r + 2u, q + 64u, (*acc)[5]);
    store4_f16(r + 3u, q, (*acc)[6]); store4_f16(r + 3u, q + 64u, (*acc)[7]);
    store4_f16(r + 64u, q, (*acc)[8]); store4_f16(r + 64u, q + 64u, (*acc)[9]);
    store4_f16(r + 65u, q, (*acc)[10]); store4_f16(r + 65u, q + 64u, (*acc)[11]);
    store4_f16(r + 66u, q, (*acc)[12]); store4_f16(r + 66u, q + 64u, (*acc)[13]);
    store4_f16(r + 67u, q, (*acc)[14]); store4_f16(r + 67u, q + 64u, (*acc)[15]);
}

fn store128_f32(row0: u32, col0: u32, tx: u32, ty: u32, acc: ptr<function, array<vec4<f32>, 16>>) {
    let r = row0 + ty * 4u;
    let q = col0 + tx * 4u;
    store4_f32(r, q, (*acc)[0]); store4_f32(r, q + 64u, (*acc)[1]);
    store4_f32(r + 1u, q, (*acc)[2]); store4_f32(r + 1u, q + 64u, (*acc)[3]);
    store4_f32(r + 2u, q, (*acc)[4]); store4_f32(r + 2u, q + 64u, (*acc)[5]);
    store4_f32(r + 3u, q, (*acc)[6]); store4_f32(r + 3u, q + 64u, (*acc)[7]);
    store4_f32(r + 64u, q, (*acc)[8]); store4_f32(r + 64u, q + 64u, (*acc)[9]);
    store4_f32(r + 65u, q, (*acc)[10]); store4_f32(r + 65u, q + 64u, (*acc)[11]);
    store4_f32(r + 66u, q, (*acc)[12]); store4_f32(r + 66u, q + 64u, (*acc)[13]);
    store4_f32(r + 67u, q, (*acc)[14]); store4_f32(r + 67u, q + 64u, (*acc)[15]);
}

fn run128_f16(g: vec2<u32>, t: u32, l: vec2<u32>, ta: bool, tb: bool) {
    var acc = mm128p(g, t, l.x, l.y, ta, tb);
    store128_f16(g.y * 128u, g.x * 128u, l.x, l.y, &acc);
}

fn run128_f32(g: vec2<u32>, t: u32, l: vec2<u32>, ta: bool, tb: bool) {
    var acc = mm128p(g, t, l.x, l.y, ta, tb);
    store128_f32(g.y * 128u, g.x * 128u, l.x, l.y, &acc);
}

@compute @workgroup_size(16, 16)
fn mm128h_nn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    run128_f16(g.xy, t, l.xy, false, false);
}

@compute @workgroup_size(16, 16)
fn mm128h_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    run128_f16(g.xy, t, l.xy, true, false);
}

@compute @workgroup_size(16, 16)
fn mm128h_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    run128_f16(g.xy, t, l.xy, false, true);
}

@compute @workgroup_size(16, 16)
fn mm128h_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    run128_f16(g.xy, t, l.xy, true, true);
}

@compute @workgroup_size(16, 16)
fn mm128hf_nn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
              @builtin(local_invocation_id) l: vec3<u32>) {
    run128_f32(g.xy, t, l.xy, false, false);
}

@compute @workgroup_size(16, 16)
fn mm128hf_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
              @builtin(local_invocation_id) l: vec3<u32>) {
    run128_f32(g.xy, t, l.xy, true, false);
}

@compute @workgroup_size(16, 16)
fn mm128hf_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
              @builtin(local_invocation_id) l: vec3<u32>) {
    run128_f32(g.xy, t, l.xy, false, true);
}

@compute @workgroup_size(16, 16)
fn mm128hf_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
              @builtin(local_invocation_id) l: vec3<u32>) {
    run128_f32(g.xy, t, l.xy, true, true);
}

// ---------------------------------------------------------------------------------------------
// 64 x 64 tile (mm64h_*, mm64hf_*).

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

fn fma_4x4(acc: ptr<function, array<vec4<f32>, 4>>, o: u32, tx: u32, ty: u32) {
    let av = sa64[o + ty];
    let bv = sb64[o + tx];
    (*acc)[0] += av.x * bv;
    (*acc)[1] += av.y * bv;
    (*acc)[2] += av.z * bv;
    (*acc)[3] += av.w * bv;
}

// The thread's 4 x 4 block of the product (rows row0 + ty*4 + i, columns col0 + tx*4 ..).
fn mm64(group: vec2<u32>, t: u32, tx: u32, ty: u32, ta: bool, tb: bool) -> array<vec4<f32>, 4> {
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
        for (var kk = 0u; kk < 8u; kk++) {
            fma_4x4(&acc, cur + kk * S64, tx, ty);
        }
        if (more) {
            let nxt = BUF64 - cur;
            put_a64(nxt, t, ra, ta);
            put_b64(nxt, t, rb, tb);
        }
        workgroupBarrier();
    }
    return acc;
}

fn run_f16(g: vec2<u32>, t: u32, l: vec2<u32>, ta: bool, tb: bool) {
    let acc = mm64(g, t, l.x, l.y, ta, tb);
    let r = g.y * 64u + l.y * 4u;
    let q = g.x * 64u + l.x * 4u;
    for (var i = 0u; i < 4u; i++) {
        store4_f16(r + i, q, acc[i]);
    }
}

fn run_f32(g: vec2<u32>, t: u32, l: vec2<u32>, ta: bool, tb: bool) {
    let acc = mm64(g, t, l.x, l.y, ta, tb);
    let r = g.y * 64u + l.y * 4u;
    let q = g.x * 64u + l.x * 4u;
    for (var i = 0u; i < 4u; i++) {
        store4_f32(r + i, q, acc[i]);
    }
}

@compute @workgroup_size(16, 16)
fn mm64h_nn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
            @builtin(local_invocation_id) l: vec3<u32>) {
    run_f16(g.xy, t, l.xy, false, false);
}

@compute @workgroup_size(16, 16)
fn mm64h_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
            @builtin(local_invocation_id) l: vec3<u32>) {
    run_f16(g.xy, t, l.xy, true, false);
}

@compute @workgroup_size(16, 16)
fn mm64h_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
            @builtin(local_invocation_id) l: vec3<u32>) {
    run_f16(g.xy, t, l.xy, false, true);
}

@compute @workgroup_size(16, 16)
fn mm64h_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
            @builtin(local_invocation_id) l: vec3<u32>) {
    run_f16(g.xy, t, l.xy, true, true);
}

@compute @workgroup_size(16, 16)
fn mm64hf_nn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    run_f32(g.xy, t, l.xy, false, false);
}

@compute @workgroup_size(16, 16)
fn mm64hf_tn(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    run_f32(g.xy, t, l.xy, true, false);
}

@compute @workgroup_size(16, 16)
fn mm64hf_nt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    run_f32(g.xy, t, l.xy, false, true);
}

@compute @workgroup_size(16, 16)
fn mm64hf_tt(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) t: u32,
             @builtin(local_invocation_id) l: vec3<u32>) {
    run_f32(g.xy, t, l.xy, true, true);
}
