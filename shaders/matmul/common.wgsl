// Matrix product C = act(op(A) · op(B) + bias) (+ C), row-major f32, any M, N, K.
// One module joined by `compute::shaders` from this file (parameters, bindings, epilogue and
// bounds-checked loads, shared by every tiling) and one file per tiling in shaders/matmul/.
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
    // Split K: workgroup z takes k in [z * k_split, (z + 1) * k_split) and writes its partial
    // product at z * m * n (matmul/splitk.wgsl sums them). Unsplit: k_split = k, one slice.
    k_split: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

// This workgroup's slice of K, [k_lo(), k_hi()), and where its output starts in c
// (c_base()): matmul/whole.wgsl (all of K) or matmul/sliced.wgsl (split K) defines them.

// Steps of `step` k's over this slice.
fn slice_steps(step: u32) -> u32 {
    return (k_hi() - k_lo() + step - 1u) / step;
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
            x = activate(x, p.act);
            let idx = c_base() + row * p.n + cj;
            if ((p.flags & 2u) != 0u) {
                x += c[idx];
            }
            c[idx] = x;
        }
    }
}

// Element (r, kk) of op(A): r < M, kk < the slice's end; zero outside.
fn load_a(r: u32, kk: u32, trans: bool) -> f32 {
    if (r >= p.m || kk >= k_hi()) {
        return 0.0;
    }
    if (trans) {
        return a[kk * p.m + r];
    }
    return a[r * p.k + kk];
}

// Element (kk, col) of op(B): kk < the slice's end, col < N; zero outside.
fn load_b(kk: u32, col: u32, trans: bool) -> f32 {
    if (kk >= k_hi() || col >= p.n) {
        return 0.0;
    }
    if (trans) {
        return b[col * p.k + kk];
    }
    return b[kk * p.n + col];
}

