// Fused causal self-attention, FlashAttention-2 style, forward and backward.
//
// Layout. qkv: [batch * seq, 3 * width], row b * seq + t; columns [0, width) are the queries,
// [width, 2 width) the keys, [2 width, 3 width) the values; head h owns columns
// [h * dim, (h + 1) * dim) of each part. o and do: [batch * seq, width], same head columns.
// lse and delta: [batch * heads, seq]. The grid is (tiles along seq, batch * heads).
//
// Nothing of size seq x seq is ever written: the forward pass keeps, per query row, a running
// maximum m, a running sum l and an output accumulator, and folds in one tile of keys at a
// time from workgroup memory (online softmax); it saves only lse = m + log(l) per row. The
// backward pass recomputes the probabilities p = exp(s - lse) tile by tile. With no float
// atomics in WGSL, the gradients are split by owner instead of accumulated across
// workgroups: attn_dq owns query rows (dq), attn_dkdv key rows (dk, dv). Every sum runs in a
// fixed order, so results are bit-for-bit repeatable.
//
// Register blocking: a kernel that gives each thread one whole row reads every K/V element it
// uses from workgroup memory once per 4 FMAs, and is bound by that bandwidth. The blocked
// kernels (see each one's comment) give each thread a small block of rows x keys for the
// scores and of rows x columns for the outputs, so that one load feeds 8 to 16 FMAs, with
// the tiles' rows padded against bank conflicts.
//
// Masking: key j is visible to query i iff j <= i. Tiles wholly above the diagonal are
// skipped; masked scores are -1e30, whose exp underflows to exactly 0 (no inf arithmetic).
//
// Head sizes up to DMAX = 64. Every row is held as 16 vec4s, components past the head size
// zero, and every loop over them has the constant trip count D4: a compiler can unroll them and
// keep the per-thread arrays in registers (a loop bounded by the runtime head size would force
// them into local memory). A head of 64 wastes nothing; smaller heads compute on zeros.
//
// Storage: qkv, o, do and dqkv are `act` (f32 or f16, from the header piece
// shaders/attention/f32.wgsl or f16.wgsl), converted to f32 as they are loaded; lse, delta,
// the workgroup tiles and all arithmetic are f32 in both.

override WG: u32 = 256u; // Unused: the workgroup sizes below are fixed.

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    dim: u32,
    width: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// attn_forward: o. attn_dq, attn_dkdv: dqkv (each writes its own part).
@group(0) @binding(1) var<storage, read_write> out: array<act>;
@group(0) @binding(2) var<storage, read> qkv: array<act>;
// Written by attn_forward, read by the backward kernels.
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<act>;
// delta[i] = dot(do_i, o_i): written by attn_dq, read by attn_dkdv.
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read> o: array<act>;

const DMAX: u32 = 64u;
const D4: u32 = 16u;
// attn_dkdv: one key row per thread, 64 per workgroup, query tiles of 16.
const ROWS: u32 = 64u;
const QUERIES: u32 = 16u;
const MASKED: f32 = -1e30;
// The blocked kernels: 64 threads own BR = 32 rows (queries, or keys in attn_dkdv), walk the
// other side in tiles of BK = 32 (attn_forward) or BN = 16 (attn_dq, attn_dkdv), with rows
// padded to PAD vec4 in the tiles the score products read and [column][row / 4] score blocks
// padded to PSTRIDE vec4 per column.
const THREADS: u32 = 64u;
const BR: u32 = 32u;
const BK: u32 = 32u;
const BN: u32 = 16u;
const PAD: u32 = 17u;
const PSTRIDE: u32 = 9u;
// Tiles of BR padded rows (2 x 8.5 KiB). attn_forward: Q and K. attn_dq: Q and dO.
var<workgroup> tile_wide_a: array<vec4<f32>, 544>;
var<workgroup> tile_wide_b: array<vec4<f32>, 544>;
// attn_forward: V (8 KiB) and the scores, then probabilities, [key][row / 4] (4.5 KiB).
// With the wide tiles and tile_row: 29.6 KiB.
var<workgroup> tile_fv: array<vec4<f32>, 512>;
var<workgroup> tile_p: array<vec4<f32>, 288>;
// Tiles of BN padded rows (2 x 4.25 KiB). attn_dq: K and V.
var<workgroup> tile_narrow_a: array<vec4<f32>, 272>;
var<workgroup> tile_narrow_b: array<vec4<f32>, 272>;
// Score blocks of BN columns (2.25 KiB). attn_dq: ds [key][row / 4].
var<workgroup> tile_blk_a: array<vec4<f32>, 144>;
// Q and dO tiles of attn_dkdv: 2 x 4 KiB.
var<workgroup> tile_q: array<vec4<f32>, 256>;
var<workgroup> tile_do: array<vec4<f32>, 256>;
var<workgroup> tile_lse: array<f32, 16>;
var<workgroup> tile_delta: array<f32, 16>;
// A value per row: attn_forward's rescale factors and 1 / l; attn_dq's lse and delta (with
// tile_row2). attn_dq in all: 28 KiB.
var<workgroup> tile_row: array<f32, 32>;
var<workgroup> tile_row2: array<f32, 32>;

// Index into qkv (and dqkv) of component 0 of row (b, t), part 0/1/2 (q/k/v), head h.
fn qkv_row(b: u32, t: u32, part: u32, h: u32) -> u32 {
    return (b * params.seq + t) * 3u * params.width + part * params.width + h * params.dim;
}

// Index into o / do of component 0 of row (b, t), head h.
fn o_row(b: u32, t: u32, h: u32) -> u32 {
    return (b * params.seq + t) * params.width + h * params.dim;
}

// Components 4c .. 4c + 3 of the row at `base` of qkv, zero past the head size.
fn qkv4(base: u32, c: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if (4u * c + k < params.dim) {
            v[k] = f32(qkv[base + 4u * c + k]);
        }
    }
    return v;
}

fn dout4(base: u32, c: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if (4u * c + k < params.dim) {
            v[k] = f32(dout[base + 4u * c + k]);
        }
    }
    return v;
}

fn o4(base: u32, c: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if (4u * c + k < params.dim) {
            v[k] = f32(o[base + 4u * c + k]);
        }
    }
    return v;
}

// Stores components 4c .. 4c + 3 that lie within the head size into `out` at `base`.
fn store4(base: u32, c: u32, v: vec4<f32>) {
    for (var k = 0u; k < 4u; k++) {
        if (4u * c + k < params.dim) {
            out[base + 4u * c + k] = act(v[k]);
        }
    }
}

// attn_forward is register-blocked: a workgroup of 64 threads owns BR = 32 query rows and walks
// the keys in tiles of BK = 32. Per tile, (1) every thread computes a 4 x 4 block of scores
// (rows 4 rg + r, keys kg + 8 n) from the Q and K tiles in workgroup memory: per vec4 column,
// 4 + 4 loads feed 16 dot products (64 FMAs), where one row per thread needed one load per 4
// FMAs; (2) thread l < BR runs the online softmax of row l over the tile's scores, leaving the
// probabilities in tile_p and the rescale factor in tile_row; (3) every thread accumulates a
// 4 x 8 block of the output (rows 4 rg + r, vec4 columns kg and kg + 8): per key, 1 + 2 loads
// feed 32 FMAs. Every sum runs in a fixed order (deterministic). Q and K rows are padded to
// PAD = 17 vec4 so that the 8 threads of a quarter-warp, reading 8 rows at one column, hit 8
// different banks; tile_p's key rows likewise to 9 vec4.
@compute @workgroup_size(64)
fn attn_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let q0 = wg.x * BR;
    let rg = l / 8u;
    let kg = l % 8u;
    for (var e = l; e < BR * D4; e += THREADS) {
        let i = q0 + e / D4;
        var v = vec4<f32>(0.0);
        if (i < params.seq) {
            v = qkv4(qkv_row(b, i, 0u, h), e % D4) * params.scale;
        }
        tile_wide_a[(e / D4) * PAD + e % D4] = v;
    }
    // acc[2 r + half]: row 4 rg + r, vec4 column kg + 8 half.
    var acc: array<vec4<f32>, 8>;
    for (var x = 0u; x < 8u; x++) {
        acc[x] = vec4<f32>(0.0);
    }
    // The softmax state of row q0 + l (threads l < BR).
    let i_own = q0 + l;
    var m = MASKED;
    var sum = 0.0;
    // Key tiles up to the diagonal of this workgroup's last row.
    let last = min(params.seq, q0 + BR) - 1u;
    let tiles = last / BK + 1u;
    for (var kt = 0u; kt < tiles; kt++) {
        let k0 = kt * BK;
        workgroupBarrier();
        for (var e = l; e < BK * D4; e += THREADS) {
            let key = k0 + e / D4;
            var k = vec4<f32>(0.0);
            var v = vec4<f32>(0.0);
            if (key < params.seq) {
                k = qkv4(qkv_row(b, key, 1u, h), e % D4);
                v = qkv4(qkv_row(b, key, 2u, h), e % D4);
            }
            tile_wide_b[(e / D4) * PAD + e % D4] = k;
            tile_fv[e] = v;
        }
        workgroupBarrier();
        // (1) s[n][r]: the score of row 4 rg + r against key kg + 8 n.
        var s: array<vec4<f32>, 4>;
        for (var n = 0u; n < 4u; n++) {
            s[n] = vec4<f32>(0.0);
        }
        for (var c = 0u; c < D4; c++) {
            let qa = tile_wide_a[(4u * rg) * PAD + c];
            let qb = tile_wide_a[(4u * rg + 1u) * PAD + c];
            let qc = tile_wide_a[(4u * rg + 2u) * PAD + c];
            let qd = tile_wide_a[(4u * rg + 3u) * PAD + c];
            for (var n = 0u; n < 4u; n++) {
                let kk = tile_wide_b[(kg + 8u * n) * PAD + c];
                s[n] += vec4<f32>(dot(qa, kk), dot(qb, kk), dot(qc, kk), dot(qd, kk));
            }
        }
        for (var n = 0u; n < 4u; n++) {
            tile_p[(kg + 8u * n) * PSTRIDE + rg] = s[n];
        }
        workgroupBarrier();
        // (2) Online softmax of row i_own; masked keys get probability exactly 0.
        if (l < BR) {
            let col = l / 4u;
            let comp = l % 4u;
            var tile_max = MASKED;
            for (var j = 0u; j < BK; j++) {
                if (k0 + j <= i_own) {
                    tile_max = max(tile_max, tile_p[j * PSTRIDE + col][comp]);
                }
            }
            let m_new = max(m, tile_max);
            let correction = exp(m - m_new);
            sum *= correction;
            for (var j = 0u; j < BK; j++) {
                var p = 0.0;
                if (k0 + j <= i_own) {
                    p = exp(tile_p[j * PSTRIDE + col][comp] - m_new);
                }
                sum += p;
                tile_p[j * PSTRIDE + col][comp] = p;
            }
            m = m_new;
            tile_row[l] = correction;
        }
        workgroupBarrier();
        // (3) acc = acc * correction + p v over the tile's keys.
        for (var r = 0u; r < 4u; r++) {
            let correction = tile_row[4u * rg + r];
            acc[2u * r] *= correction;
            acc[2u * r + 1u] *= correction;
        }
        for (var j = 0u; j < BK; j++) {
            let p = tile_p[j * PSTRIDE + rg];
            let va = tile_fv[j * D4 + kg];
            let vb = tile_fv[j * D4 + kg + 8u];
            acc[0] += p.x * va;
            acc[1] += p.x * vb;
            acc[2] += p.y * va;
            acc[3] += p.y * vb;
            acc[4] += p.z * va;
            acc[5] += p.z * vb;
            acc[6] += p.w * va;
            acc[7] += p.w * vb;
        }
    }
    workgroupBarrier();
    if (l < BR && i_own < params.seq) {
        tile_row[l] = 1.0 / sum;
        lse[wg.y * params.seq + i_own] = m + log(sum);
    }
    workgroupBarrier();
    for (var r = 0u; r < 4u; r++) {
        let i = q0 + 4u * rg + r;
        if (i < params.seq) {
            let inv = tile_row[4u * rg + r];
            let base = o_row(b, i, h);
            store4(base, kg, acc[2u * r] * inv);
            store4(base, kg + 8u, acc[2u * r + 1u] * inv);
        }
    }
}

// dq_i = scale * sum_j p_ij (dp_ij - delta_i) k_j, with dp_ij = do_i . v_j.
// Blocked: 64 threads own BR = 32 query rows and walk the keys in tiles of BN = 16. Per tile,
// (1) every thread computes s and dp for rows 4 rg + r and keys kg, kg + 8 from the Q, dO, K
// and V tiles (per vec4 column, 4 + 4 + 2 + 2 loads feed 16 dot products, 64 FMAs) and leaves
// ds = p (dp - delta) in tile_blk_a (exactly 0 where masked); (2) accumulates a 4 x 8 block of
// dq (rows 4 rg + r, vec4 columns kg and kg + 8): per key, 1 + 2 loads feed 32 FMAs.
@compute @workgroup_size(64)
fn attn_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let q0 = wg.x * BR;
    let rg = l / 8u;
    let kg = l % 8u;
    for (var e = l; e < BR * D4; e += THREADS) {
        let i = q0 + e / D4;
        var qe = vec4<f32>(0.0);
        var ge = vec4<f32>(0.0);
        if (i < params.seq) {
            qe = qkv4(qkv_row(b, i, 0u, h), e % D4) * params.scale;
            ge = dout4(o_row(b, i, h), e % D4);
        }
        tile_wide_a[(e / D4) * PAD + e % D4] = qe;
        tile_wide_b[(e / D4) * PAD + e % D4] = ge;
    }
    if (l < BR) {
        let i = q0 + l;
        var li = 0.0;
        var di = 0.0;
        if (i < params.seq) {
            for (var c = 0u; c < D4; c++) {
                di += dot(dout4(o_row(b, i, h), c), o4(o_row(b, i, h), c));
            }
            li = lse[wg.y * params.seq + i];
            delta[wg.y * params.seq + i] = di;
        }
        tile_row[l] = li;
        tile_row2[l] = di;
    }
    workgroupBarrier();
    let r0 = 4u * rg;
    let lse_r = vec4<f32>(tile_row[r0], tile_row[r0 + 1u], tile_row[r0 + 2u], tile_row[r0 + 3u]);
    let delta_r = vec4<f32>(
        tile_row2[r0],
        tile_row2[r0 + 1u],
        tile_row2[r0 + 2u],
        tile_row2[r0 + 3u],
    );
    let rows = vec4<u32>(q0 + r0) + vec4<u32>(0u, 1u, 2u, 3u);
    // dq[2 r + half]: row 4 rg + r, vec4 column kg + 8 half.
    var dq: array<vec4<f32>, 8>;
    for (var x = 0u; x < 8u; x++) {
        dq[x] = vec4<f32>(0.0);
    }
    let last = min(params.seq, q0 + BR) - 1u;
    let tiles = last / BN + 1u;
    for (var kt = 0u; kt < tiles; kt++) {
        let k0 = kt * BN;
        workgroupBarrier();
        for (var e = l; e < BN * D4; e += THREADS) {
            let key = k0 + e / D4;
            var k = vec4<f32>(0.0);
            var v = vec4<f32>(0.0);
            if (key < params.seq) {
                k = qkv4(qkv_row(b, key, 1u, h), e % D4);
                v = qkv4(qkv_row(b, key, 2u, h), e % D4);
            }
            tile_narrow_a[(e / D4) * PAD + e % D4] = k;
            tile_narrow_b[(e / D4) * PAD + e % D4] = v;
        }
        workgroupBarrier();
        // s[n][r], dp[n][r]: row 4 rg + r against key kg + 8 n.
        var s: array<vec4<f32>, 2>;
        var dp: array<vec4<f32>, 2>;
        for (var n = 0u; n < 2u; n++) {
            s[n] = vec4<f32>(0.0);
            dp[n] = vec4<f32>(0.0);
        }
        for (var c = 0u; c < D4; c++) {
            let qa = tile_wide_a[r0 * PAD + c];
            let qb = tile_wide_a[(r0 + 1u) * PAD + c];
            let qc = tile_wide_a[(r0 + 2u) * PAD + c];
            let qd = tile_wide_a[(r0 + 3u) * PAD + c];
            let ga = tile_wide_b[r0 * PAD + c];
            let gb = tile_wide_b[(r0 + 1u) * PAD + c];
            let gc = tile_wide_b[(r0 + 2u) * PAD + c];
            let gd = tile_wide_b[(r0 + 3u) * PAD + c];
            for (var n = 0u; n < 2u; n++) {
                let kk = tile_narrow_a[(kg + 8u * n) * PAD + c];
                let vv = tile_narrow_b[(kg + 8u * n) * PAD + c];
                s[n] += vec4<f32>(dot(qa, kk), dot(qb, kk), dot(qc, kk), dot(qd, kk));
                dp[n] += vec4<f32>(dot(ga, vv), dot(gb, vv), dot(gc, vv), dot(gd, vv));
            }
        }
        for (var n = 0u; n < 2u; n++) {
            let visible = vec4<u32>(k0 + kg + 8u * n) <= rows;
            let ds = exp(s[n] - lse_r) * (dp[n] - delta_r);
            tile_blk_a[(kg + 8u * n) * PSTRIDE + rg] = select(vec4<f32>(0.0), ds, visible);
        }
        workgroupBarrier();
        for (var j = 0u; j < BN; j++) {
            let ds = tile_blk_a[j * PSTRIDE + rg];
            let ka = tile_narrow_a[j * PAD + kg];
            let kb = tile_narrow_a[j * PAD + kg + 8u];
            dq[0] += ds.x * ka;
            dq[1] += ds.x * kb;
            dq[2] += ds.y * ka;
            dq[3] += ds.y * kb;
            dq[4] += ds.z * ka;
            dq[5] += ds.z * kb;
            dq[6] += ds.w * ka;
            dq[7] += ds.w * kb;
        }
    }
    for (var r = 0u; r < 4u; r++) {
        let i = q0 + r0 + r;
        if (i < params.seq) {
            let base = qkv_row(b, i, 0u, h);
            store4(base, kg, dq[2u * r] * params.scale);
            store4(base, kg + 8u, dq[2u * r + 1u] * params.scale);
        }
    }
}

// dv_j = sum_i p_ij do_i and dk_j = scale * sum_i p_ij (dp_ij - delta_i) q_i over i >= j.
@compute @workgroup_size(64)
fn attn_dkdv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let k0 = wg.x * ROWS;
    let j = k0 + l;
    let valid = j < params.seq;
    var k: array<vec4<f32>, 16>;
    var v: array<vec4<f32>, 16>;
    var dk: array<vec4<f32>, 16>;
    var dv: array<vec4<f32>, 16>;
    for (var c = 0u; c < D4; c++) {
        dk[c] = vec4<f32>(0.0);
        dv[c] = vec4<f32>(0.0);
        k[c] = vec4<f32>(0.0);
        v[c] = vec4<f32>(0.0);
        if (valid) {
            k[c] = qkv4(qkv_row(b, j, 1u, h), c) * params.scale;
            v[c] = qkv4(qkv_row(b, j, 2u, h), c);
        }
    }
    // Query tiles from the one holding this workgroup's first key to the end.
    let tiles = (params.seq + QUERIES - 1u) / QUERIES;
    for (var qt = k0 / QUERIES; qt < tiles; qt++) {
        let i0 = qt * QUERIES;
        workgroupBarrier();
        for (var e = l; e < QUERIES * D4; e += ROWS) {
            let i = i0 + e / D4;
            var qe = vec4<f32>(0.0);
            var ge = vec4<f32>(0.0);
            if (i < params.seq) {
                qe = qkv4(qkv_row(b, i, 0u, h), e % D4);
                ge = dout4(o_row(b, i, h), e % D4);
            }
            tile_q[e] = qe;
            tile_do[e] = ge;
        }
        if (l < QUERIES) {
            var ld = vec2<f32>(0.0, 0.0);
            if (i0 + l < params.seq) {
                ld = vec2<f32>(lse[wg.y * params.seq + i0 + l], delta[wg.y * params.seq + i0 + l]);
            }
            tile_lse[l] = ld.x;
            tile_delta[l] = ld.y;
        }
        workgroupBarrier();
        if (valid && i0 + QUERIES > j) {
            for (var r = 0u; r < QUERIES; r++) {
                let i = i0 + r;
                if (i >= j && i < params.seq) {
                    var s = 0.0;
                    var dp = 0.0;
                    for (var c = 0u; c < D4; c++) {
                        s += dot(k[c], tile_q[r * D4 + c]);
                        dp += dot(v[c], tile_do[r * D4 + c]);
                    }
                    let p = exp(s - tile_lse[r]);
                    let ds = p * (dp - tile_delta[r]);
                    for (var c = 0u; c < D4; c++) {
                        dv[c] += p * tile_do[r * D4 + c];
                        dk[c] += ds * tile_q[r * D4 + c];
                    }
                }
            }
        }
    }
    if (valid) {
        let kb = qkv_row(b, j, 1u, h);
        let vb = qkv_row(b, j, 2u, h);
        for (var c = 0u; c < D4; c++) {
            store4(kb, c, dk[c] * params.scale);
            store4(vb, c, dv[c]);
        }
    }
}
