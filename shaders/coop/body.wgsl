
// ---------------------------------------------------------------------------------------------
// C = act(op(A) · op(B) + bias) (+ C) on cooperative matrices (tensor cores on NVIDIA/AMD,
// simdgroup matrices on Metal), row-major, any M, N, K. The head piece before this one names the
// fragment (FRAG x FRAG x FRAG), the input type `In` and the fragment types; the output piece
// names `c`, `out_load` and `out_store`.
//
// One workgroup of 256 threads, meant as 8 subgroups of 32 (the host picks this kernel only on
// adapters whose subgroup size is fixed at 32), computes a BM x BN = 8 FRAG x 8 FRAG output
// tile. The subgroups form a 2 x 4 grid; each holds 4 x 2 accumulator fragments (4 FRAG rows by
// 2 FRAG columns), so each fragment of A loaded from workgroup memory feeds two products and
// each fragment of B four.
//
// Per K step of BK = 2 FRAG: the threads stage op(A)'s BM x BK tile and op(B)'s BK x BN tile in
// workgroup memory in one canonical layout (A row-major [BM][SA], B row-major [BK][SB]); a
// transposed operand is transposed on the way in, so the fragment loads are the same row-major
// `coopLoadT` for every transpose. Rows are padded by 8 elements, keeping every row 16-byte
// aligned while spreading consecutive rows over the banks. The next step's tiles are fetched
// from storage into registers before the current step's products (a register double buffer):
// the loads are in flight while the matrix units work, at the cost of one tile set of
// registers instead of a second workgroup tile.
//
// Global loads: where the operand's contiguous dimension is a multiple of 4 (checked on the
// host: flags bits 4 and 5) and the run of 4 lies inside the matrix, one vec4 load through the
// vec4 view of the same buffer; otherwise element by element with bounds checks, zero
// outside the matrix, so edge tiles are padded with zeros in workgroup memory and any M, N, K
// works.
//
// Epilogue: each subgroup stores one accumulator fragment at a time into its own FRAG x FRAG
// slice of `scratch` and then applies bias, activation and accumulation element by element,
// writing only the elements inside C.
//
// Measured on the H200 (BENCHMARKS.md, coop round 1): 40 TFLOP/s at 4096^3 with naga's checks
// on; register loops written as loops ran at 18 (the driver kept them in local memory), so they
// are unrolled in the source; tiles declared as vec4 arrays (8-byte stores, aligned fragment
// loads) were no faster (34).
//
// naga 30's SPIR-V writer panics ("Expression [..] is not cached") when the pointer of a
// coopLoad/coopStore indexes with an expression computed inline; every offset is a `let` first.

override WG: u32 = 256u; // Unused: the pipeline cache sets WG on every shader.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    // bit 0: add bias[col]; bit 1: accumulate into C; bit 2: A stored [K, M]; bit 3: B stored
    // [N, K]; bit 4: A's contiguous dimension is a multiple of 4; bit 5: likewise for B.
    flags: u32,
    // 0 none, 1 ReLU, 2 GELU (tanh approximation).
    act: u32,
    // Split K: workgroup z takes k in [z * k_split, (z + 1) * k_split) (k_split a multiple of
    // BK) and writes its f32 partial product at z * m * n; unsplit, k_split = k.
    k_split: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(2) var<storage, read> a_s: array<In>;
@group(0) @binding(3) var<storage, read> b_s: array<In>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;
// The same buffers as a_s and b_s, seen as vectors of 4.
@group(0) @binding(5) var<storage, read> a_v: array<vec4<In>>;
@group(0) @binding(6) var<storage, read> b_v: array<vec4<In>>;

alias V4 = vec4<In>;
const VEC: u32 = 4u;

const THREADS: u32 = 256u;
const SUB_M: u32 = 4u;
const SUB_N: u32 = 2u;
const BM: u32 = 2u * SUB_M * FRAG;
const BN: u32 = 4u * SUB_N * FRAG;
const BK: u32 = 2u * FRAG;
const SA: u32 = BK + 8u;
const SB: u32 = BN + 8u;
// Vectors per tile: at most 4 per thread (`Staged`).
const NVA: u32 = BM * BK / VEC;
const NVB: u32 = BK * BN / VEC;
const_assert NVA <= 4u * THREADS && NVB <= 4u * THREADS;

var<workgroup> tile_a: array<In, BM * SA>;
var<workgroup> tile_b: array<In, BK * SB>;
var<workgroup> scratch: array<f32, 8u * FRAG * FRAG>;

// This workgroup's slice of K, [k_lo(), k_hi()), and where its output starts in C
// (c_base()): matmul/whole.wgsl (all of K) or matmul/sliced.wgsl (split K) defines them.

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

fn elem_a(e: u32, ok: bool) -> In {
    if (ok) {
        return a_s[e];
    }
    return In(0);
}

fn elem_b(e: u32, ok: bool) -> In {
    if (ok) {
        return b_s[e];
    }
    return In(0);
}

// `count` (<= 4) elements of A from element e, zeros after them.
fn gather_a(e: u32, count: u32) -> V4 {
    return V4(
        elem_a(e, count > 0u),
        elem_a(e + 1u, count > 1u),
        elem_a(e + 2u, count > 2u),
        elem_a(e + 3u, count > 3u),
    );
}

fn gather_b(e: u32, count: u32) -> V4 {
    return V4(
        elem_b(e, count > 0u),
        elem_b(e + 1u, count > 1u),
        elem_b(e + 2u, count > 2u),
        elem_b(e + 3u, count > 3u),
    );
}

// Elements of a run of VEC starting at `start` that lie before `limit`.
fn run_len(start: u32, limit: u32) -> u32 {
    return select(0u, min(limit - start, VEC), start < limit);
}

// Tile position of vector v of op(A)'s tile: (row, k) of its first element.
fn pos_a(v: u32, trans: bool) -> vec2<u32> {
    if (trans) {
        return vec2<u32>((v % (BM / VEC)) * VEC, v / (BM / VEC));
    }
    return vec2<u32>(v / (BK / VEC), (v % (BK / VEC)) * VEC);
}

// Tile position of vector v of op(B)'s tile: (k, col) of its first element.
fn pos_b(v: u32, trans: bool) -> vec2<u32> {
    if (trans) {
        return vec2<u32>((v % (BK / VEC)) * VEC, v / (BK / VEC));
    }
    return vec2<u32>(v / (BN / VEC), (v % (BN / VEC)) * VEC);
}

fn fetch_a(v: u32, row0: u32, k0: u32) -> V4 {
    let trans = (p.flags & 4u) != 0u;
    let vec_ok = (p.flags & 16u) != 0u;
    let at = pos_a(v, trans);
    let r = row0 + at.x;
    let kk = k0 + at.y;
    if (trans) {
        // Stored [K, M]: the run goes along M.
        let e = kk * p.m + r;
        if (vec_ok && kk < k_hi() && r + VEC <= p.m) {
            return a_v[e / VEC];
        }
        return gather_a(e, select(0u, run_len(r, p.m), kk < k_hi()));
    }
    let e = r * p.k + kk;
    if (vec_ok && r < p.m && kk + VEC <= k_hi()) {
        return a_v[e / VEC];
    }
    return gather_a(e, select(0u, run_len(kk, k_hi()), r < p.m));
}

fn fetch_b(v: u32, k0: u32, col0: u32) -> V4 {
    let trans = (p.flags & 8u) != 0u;
    let vec_ok = (p.flags & 32u) != 0u;
    let at = pos_b(v, trans);
    let kk = k0 + at.x;
    let col = col0 + at.y;
    if (trans) {
        // Stored [N, K]: the run goes along K.
        let e = col * p.k + kk;
        if (vec_ok && col < p.n && kk + VEC <= k_hi()) {
            return b_v[e / VEC];
        }
        return gather_b(e, select(0u, run_len(kk, k_hi()), col < p.n));
    }
    let e = kk * p.n + col;
    if (vec_ok && kk < k_hi() && col + VEC <= p.n) {
        return b_v[e / VEC];
    }
    return gather_b(e, select(0u, run_len(col, p.n), kk < k_hi()));
}

// Writes vector v of op(A)'s tile. Unrolled in the source, like every loop over registers
// here: the H200's driver keeps a loop that indexes registers at run time in local memory.
fn put_a(v: u32, w: V4) {
    let at = pos_a(v, (p.flags & 4u) != 0u);
    if ((p.flags & 4u) != 0u) {
        let i = at.x * SA + at.y;
        tile_a[i] = w.x;
        tile_a[i + SA] = w.y;
        tile_a[i + 2u * SA] = w.z;
        tile_a[i + 3u * SA] = w.w;
    } else {
        let i = at.x * SA + at.y;
        tile_a[i] = w.x;
        tile_a[i + 1u] = w.y;
        tile_a[i + 2u] = w.z;
        tile_a[i + 3u] = w.w;
    }
}

fn put_b(v: u32, w: V4) {
    let at = pos_b(v, (p.flags & 8u) != 0u);
    if ((p.flags & 8u) != 0u) {
        let i = at.x * SB + at.y;
        tile_b[i] = w.x;
        tile_b[i + SB] = w.y;
        tile_b[i + 2u * SB] = w.z;
        tile_b[i + 3u * SB] = w.w;
    } else {
        let i = at.x * SB + at.y;
        tile_b[i] = w.x;
        tile_b[i + 1u] = w.y;
        tile_b[i + 2u] = w.z;
        tile_b[i + 3u] = w.w;
    }
}

// One thread's share of a K step's two tiles: vectors t + 256 i (i < 4) of each, where the
// tile has them (the 8 x 8 kernels' tiles have fewer than 1024).
struct Staged {
    a0: V4,
    a1: V4,
    a2: V4,
    a3: V4,
    b0: V4,
    b1: V4,
    b2: V4,
    b3: V4,
}

fn fetch_step(t: u32, row0: u32, col0: u32, k0: u32) -> Staged {
    var s: Staged;
    if (t < NVA) { s.a0 = fetch_a(t, row0, k0); }
    if (t + THREADS < NVA) { s.a1 = fetch_a(t + THREADS, row0, k0); }
    if (t + 2u * THREADS < NVA) { s.a2 = fetch_a(t + 2u * THREADS, row0, k0); }
    if (t + 3u * THREADS < NVA) { s.a3 = fetch_a(t + 3u * THREADS, row0, k0); }
    if (t < NVB) { s.b0 = fetch_b(t, k0, col0); }
    if (t + THREADS < NVB) { s.b1 = fetch_b(t + THREADS, k0, col0); }
    if (t + 2u * THREADS < NVB) { s.b2 = fetch_b(t + 2u * THREADS, k0, col0); }
    if (t + 3u * THREADS < NVB) { s.b3 = fetch_b(t + 3u * THREADS, k0, col0); }
    return s;
}

fn put_step(t: u32, s: Staged) {
    if (t < NVA) { put_a(t, s.a0); }
    if (t + THREADS < NVA) { put_a(t + THREADS, s.a1); }
    if (t + 2u * THREADS < NVA) { put_a(t + 2u * THREADS, s.a2); }
    if (t + 3u * THREADS < NVA) { put_a(t + 3u * THREADS, s.a3); }
    if (t < NVB) { put_b(t, s.b0); }
    if (t + THREADS < NVB) { put_b(t + THREADS, s.b1); }
    if (t + 2u * THREADS < NVB) { put_b(t + 2u * THREADS, s.b2); }
    if (t + 3u * THREADS < NVB) { put_b(t + 3u * THREADS, s.b3); }
}

// Applies the epilogue to the fragment a subgroup left in scratch[base..], whose element (0, 0)
// is C's (r0, c0).
fn emit(base: u32, r0: u32, c0: u32, lane: u32, lanes: u32) {
    for (var i = lane; i < FRAG * FRAG; i += lanes) {
        let r = r0 + i / FRAG;
        let col = c0 + i % FRAG;
        if (r < p.m && col < p.n) {
            var x = scratch[base + i];
            if ((p.flags & 1u) != 0u) {
                x += bias[col];
            }
            x = activate(x);
            let idx = c_base() + r * p.n + col;
            if ((p.flags & 2u) != 0u) {
                x += out_load(idx);
            }
            out_store(idx, x);
        }
    }
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) g: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_id) subgroup: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_size) lanes: u32,
) {
    begin_slice(g.z);
    let row0 = g.y * BM;
    let col0 = g.x * BN;
    // This subgroup's block inside the tile.
    // Subgroups of 32 make 8 (the host checks the size); the clamp keeps every fragment and
    // scratch slice inside its array even on a device that broke that promise.
    let sg = min(subgroup, 7u);
    let sr = (sg / 4u) * SUB_M * FRAG;
    let sc = (sg % 4u) * SUB_N * FRAG;

    var staged = fetch_step(t, row0, col0, k_lo());
    // Zero accumulators, loaded from a zeroed fragment of scratch.
    for (var i = t; i < FRAG * FRAG; i += THREADS) {
        scratch[i] = 0.0;
    }
    workgroupBarrier();
    let zero = 0u;
    var c00 = coopLoadT<FragC>(&scratch[zero], FRAG);
    var c01 = c00;
    var c10 = c00;
    var c11 = c00;
    var c20 = c00;
    var c21 = c00;
    var c30 = c00;
    var c31 = c00;

    let steps = (k_hi() - k_lo() + BK - 1u) / BK;
    for (var s = 0u; s < steps; s++) {
        // Everyone is done reading the previous step's tiles (and the zero fragment).
        workgroupBarrier();
        put_step(t, staged);
        workgroupBarrier();
        if (s + 1u < steps) {
            staged = fetch_step(t, row0, col0, k_lo() + (s + 1u) * BK);
        }
        // The two FRAG-deep halves of the step, unrolled.
        {
            let oa0 = sr * SA;
            let oa1 = oa0 + FRAG * SA;
            let oa2 = oa1 + FRAG * SA;
            let oa3 = oa2 + FRAG * SA;
            let ob0 = sc;
            let ob1 = ob0 + FRAG;
            let a0 = coopLoadT<FragA>(&tile_a[oa0], SA);
            let a1 = coopLoadT<FragA>(&tile_a[oa1], SA);
            let a2 = coopLoadT<FragA>(&tile_a[oa2], SA);
            let a3 = coopLoadT<FragA>(&tile_a[oa3], SA);
            let b0 = coopLoadT<FragB>(&tile_b[ob0], SB);
            let b1 = coopLoadT<FragB>(&tile_b[ob1], SB);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
            c20 = coopMultiplyAdd(a2, b0, c20);
            c21 = coopMultiplyAdd(a2, b1, c21);
            c30 = coopMultiplyAdd(a3, b0, c30);
            c31 = coopMultiplyAdd(a3, b1, c31);
        }
        {
            let oa0 = sr * SA + FRAG;
            let oa1 = oa0 + FRAG * SA;
            let oa2 = oa1 + FRAG * SA;
            let oa3 = oa2 + FRAG * SA;
            let ob0 = FRAG * SB + sc;
            let ob1 = ob0 + FRAG;
            let a0 = coopLoadT<FragA>(&tile_a[oa0], SA);
            let a1 = coopLoadT<FragA>(&tile_a[oa1], SA);
            let a2 = coopLoadT<FragA>(&tile_a[oa2], SA);
            let a3 = coopLoadT<FragA>(&tile_a[oa3], SA);
            let b0 = coopLoadT<FragB>(&tile_b[ob0], SB);
            let b1 = coopLoadT<FragB>(&tile_b[ob1], SB);
            c00 = coopMultiplyAdd(a0, b0, c00);
            c01 = coopMultiplyAdd(a0, b1, c01);
            c10 = coopMultiplyAdd(a1, b0, c10);
            c11 = coopMultiplyAdd(a1, b1, c11);
            c20 = coopMultiplyAdd(a2, b0, c20);
            c21 = coopMultiplyAdd(a2, b1, c21);
            c30 = coopMultiplyAdd(a3, b0, c30);
            c31 = coopMultiplyAdd(a3, b1, c31);
        }
    }

    // Epilogue, one fragment at a time through this subgroup's slice of scratch.
    workgroupBarrier();
    let base = sg * FRAG * FRAG;
    let r0 = row0 + sr;
    let c0 = col0 + sc;
    coopStoreT(c00, &scratch[base], FRAG);
    workgroupBarrier();
    emit(base, r0, c0, lane, lanes);
    workgroupBarrier();
    coopStoreT(c01, &scratch[base], FRAG);
    workgroupBarrier();
    emit(base, r0, c0 + FRAG, lane, lanes);
    workgroupBarrier();
    coopStoreT(c10, &scratch[base], FRAG);
    workgroupBarrier();
    emit(base, r0 + FRAG, c0, lane, lanes);
    workgroupBarrier();
    coopStoreT(c11, &scratch[base], FRAG);
    workgroupBarrier();
    emit(base, r0 + FRAG, c0 + FRAG, lane, lanes);
    workgroupBarrier();
    coopStoreT(c20, &scratch[base], FRAG);
    workgroupBarrier();
    emit(base, r0 + 2u * FRAG, c0, lane, lanes);
    workgroupBarrier();
    coopStoreT(c21, &scratch[base], FRAG);
    workgroupBarrier();
    emit(base, r0 + 2u * FRAG, c0 + FRAG, lane, lanes);
    workgroupBarrier();
    coopStoreT(c30, &scratch[base], FRAG);
    workgroupBarrier();
    emit(base, r0 + 3u * FRAG, c0, lane, lanes);
    workgroupBarrier();
    coopStoreT(c31, &scratch[base], FRAG);
    workgroupBarrier();
    emit(base, r0 + 3u * FRAG, c0 + FRAG, lane, lanes);
}
