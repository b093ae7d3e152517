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
// Layout and tiling follow mm64_* in shaders/matmul/tile64.wgsl: 64 x 64 output tile, K step 8, 256 threads
// as 16 x 16, each a 4 x 4 block, double-buffered f32 tiles stored K-major with rows padded to
// 68 floats; global loads are scalar and bounds-checked, so no size or alignment is required.
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
