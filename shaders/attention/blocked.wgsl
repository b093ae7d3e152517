// Register-blocked fused attention (shaders/attention/common.wgsl has the layout, bindings and
// helpers).
//
// Register blocking: a kernel that gives each thread one whole row (16 vec4 in registers)
// reads every K/V element it uses from workgroup memory once per 4 FMAs. All three kernels
// here run 64 threads on BR = 32 rows (queries; keys in attn_dkdv) with every operand tile
// in workgroup memory, and give each thread a 4-row block:
// 4 rows x 4 (or 2) keys of the score products, 4 rows x 8 vec4 columns (kg and kg + 8) of
// the outputs, so that one load feeds 6 to 16 FMAs (each kernel's comment counts them). Scores
// and probabilities pass between the two products through a [column][row % 8] block
// (component row / 8) in workgroup memory. Banks: a thread's rows are rg + 8 r (not 4 rg + r)
// and the tiles the score products read have rows padded to PAD = 17 vec4, so that in one
// load of a warp the 4 row groups (and the 8 column groups kg) read rows whose vec4s fall in
// different banks: each load is one pass through workgroup memory, as a broadcast is.
//
// The tiles are two-dimensional ([row][vec4 column]): naga clamps every runtime index (its
// bounds checks), and a flat index such as rg * PAD + c would need a clamp per load, where
// tile[rg + 8][c] clamps the row once per tile (loop-invariant) and the column not at all once
// the loop over c is unrolled (a constant).

// The blocked kernels: 64 threads own BR = 32 rows (queries, or keys in attn_dkdv), walk the
// other side in tiles of BK = 32 (attn_forward) or BN = 16 (attn_dq, attn_dkdv), with rows
// padded to PAD vec4 in the tiles the score products read and [column][row % 8] score blocks
// padded to PSTRIDE vec4 per column.
const THREADS: u32 = 64u;
const BR: u32 = 32u;
const BK: u32 = 32u;
const BN: u32 = 16u;
const PAD: u32 = 17u;
const PSTRIDE: u32 = 9u;
// Tiles of BR padded rows (2 x 8.5 KiB). attn_forward: Q and K. attn_dq: Q and dO.
// attn_dkdv: K and V.
var<workgroup> tile_wide_a: array<array<vec4<f32>, PAD>, BR>;
var<workgroup> tile_wide_b: array<array<vec4<f32>, PAD>, BR>;
// attn_forward: V (8 KiB) and the scores, then probabilities, [key][row % 8] (4.5 KiB).
var<workgroup> tile_fv: array<array<vec4<f32>, D4>, BK>;
var<workgroup> tile_p: array<array<vec4<f32>, PSTRIDE>, BK>;
// attn_forward: per key group kg and row group rg, the 4 rows' maximum score over the group's
// keys, and at the end their partial sums (1 KiB; the forward in all: 30.5 KiB).
var<workgroup> tile_part: array<array<vec4<f32>, 8>, 8>;
// Tiles of BN padded rows (2 x 4.25 KiB). attn_dq: K and V. attn_dkdv: Q and dO.
var<workgroup> tile_narrow_a: array<array<vec4<f32>, PAD>, BN>;
var<workgroup> tile_narrow_b: array<array<vec4<f32>, PAD>, BN>;
// Score blocks of BN columns (2.25 KiB each). attn_dq: ds [key][row % 8]. attn_dkdv: p and ds
// [query][key % 8].
var<workgroup> tile_blk_a: array<array<vec4<f32>, PSTRIDE>, BN>;
var<workgroup> tile_blk_b: array<array<vec4<f32>, PSTRIDE>, BN>;
// A value per row: attn_dq's lse and delta (with tile_row2); attn_dkdv's per query of the
// tile. attn_dq in all: 28 KiB; attn_dkdv 30.25 KiB.
var<workgroup> tile_row: array<f32, 32>;
var<workgroup> tile_row2: array<f32, 32>;

// o_i = sum_j softmax_j(s_ij) v_j, s_ij = scale q_i . k_j.
// Blocked: a workgroup of 64 threads owns BR = 32 query rows and walks the keys in tiles of
// BK = 32. Per tile, (1) every thread computes a 4 x 4 block of scores (rows rg + 8 r, keys
// kg + 8 n) from the Q and K tiles in workgroup memory: per vec4 column, 4 + 4 loads feed 16
// dot products (64 FMAs), where one row per thread needed one load per 4 FMAs; (2) every
// thread takes its rows' tile maximum from the 8 key groups' maxima (tile_part), rescales its
// output block and its partial row sums (online softmax) and leaves its 16 probabilities in
// tile_p; (3) every thread accumulates a 4 x 8 block of the output (rows rg + 8 r, vec4
// columns kg and kg + 8): per key, 1 + 2 loads feed 32 FMAs. The row sums are the 8 key
// groups' parts, added in order at the end: every sum runs in a fixed order (deterministic).
// tile_p's key rows are padded to 9 vec4, so that the stores spread over the banks.
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
        tile_wide_a[e / D4][e % D4] = v;
    }
    // acc[2 r + half]: row rg + 8 r, vec4 column kg + 8 half.
    var acc: array<vec4<f32>, 8>;
    for (var x = 0u; x < 8u; x++) {
        acc[x] = vec4<f32>(0.0);
    }
    // The softmax state of this thread's rows (component r: row rg + 8 r): the running maximum
    // and the running sum over this thread's keys (kg + 8 n of every tile).
    let rows = vec4<u32>(q0 + rg) + vec4<u32>(0u, 8u, 16u, 24u);
    var m = vec4<f32>(MASKED);
    var part_sum = vec4<f32>(0.0);
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
            tile_wide_b[e / D4][e % D4] = k;
            tile_fv[e / D4][e % D4] = v;
        }
        workgroupBarrier();
        // (1) s[n][r]: the score of row rg + 8 r against key kg + 8 n; MASKED where not visible.
        var s: array<vec4<f32>, 4>;
        for (var n = 0u; n < 4u; n++) {
            s[n] = vec4<f32>(0.0);
        }
        for (var c = 0u; c < D4; c++) {
            let qa = tile_wide_a[rg][c];
            let qb = tile_wide_a[rg + 8u][c];
            let qc = tile_wide_a[rg + 16u][c];
            let qd = tile_wide_a[rg + 24u][c];
            for (var n = 0u; n < 4u; n++) {
                let kk = tile_wide_b[kg + 8u * n][c];
                s[n] += vec4<f32>(dot(qa, kk), dot(qb, kk), dot(qc, kk), dot(qd, kk));
            }
        }
        var own_max = vec4<f32>(MASKED);
        for (var n = 0u; n < 4u; n++) {
            s[n] = select(vec4<f32>(MASKED), s[n], vec4<u32>(k0 + kg + 8u * n) <= rows);
            own_max = max(own_max, s[n]);
        }
        tile_part[kg][rg] = own_max;
        workgroupBarrier();
        // (2) The tile's maximum per row over the 8 key groups (each thread the same, in the
        // same order), the online-softmax rescale, and the probabilities (exactly 0 where
        // masked: every tile has a visible key for every row, so m_new is never MASKED).
        var tile_max = tile_part[0][rg];
        for (var g = 1u; g < 8u; g++) {
            tile_max = max(tile_max, tile_part[g][rg]);
        }
        let m_new = max(m, tile_max);
        let correction = exp(m - m_new);
        m = m_new;
        part_sum *= correction;
        for (var n = 0u; n < 4u; n++) {
            let p = exp(s[n] - m_new);
            part_sum += p;
            tile_p[kg + 8u * n][rg] = p;
        }
        for (var r = 0u; r < 4u; r++) {
            acc[2u * r] *= correction[r];
            acc[2u * r + 1u] *= correction[r];
        }
        workgroupBarrier();
        // (3) acc += p v over the tile's keys.
        for (var j = 0u; j < BK; j++) {
            let p = tile_p[j][rg];
            let va = tile_fv[j][kg];
            let vb = tile_fv[j][kg + 8u];
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
    // The row sums: the 8 key groups' parts, added in order.
    workgroupBarrier();
    tile_part[kg][rg] = part_sum;
    workgroupBarrier();
    var sum = tile_part[0][rg];
    for (var g = 1u; g < 8u; g++) {
        sum += tile_part[g][rg];
    }
    for (var r = 0u; r < 4u; r++) {
        let i = rows[r];
        if (i < params.seq) {
            let inv = 1.0 / sum[r];
            let base = o_row(b, i, h);
            store4(base, kg, acc[2u * r] * inv);
            store4(base, kg + 8u, acc[2u * r + 1u] * inv);
            if (kg == 0u) {
                lse[wg.y * params.seq + i] = m[r] + log(sum[r]);
            }
        }
    }
}

// dq_i = scale * sum_j p_ij (dp_ij - delta_i) k_j, with dp_ij = do_i . v_j.
// Blocked: 64 threads own BR = 32 query rows and walk the keys in tiles of BN = 16. Per tile,
// (1) every thread computes s and dp for rows rg + 8 r and keys kg, kg + 8 from the Q, dO, K
// and V tiles (per vec4 column, 4 + 4 + 2 + 2 loads feed 16 dot products, 64 FMAs) and leaves
// ds = p (dp - delta) in tile_blk_a (exactly 0 where masked); (2) accumulates a 4 x 8 block of
// dq (rows rg + 8 r, vec4 columns kg and kg + 8): per key, 1 + 2 loads feed 32 FMAs.
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
        tile_wide_a[e / D4][e % D4] = qe;
        tile_wide_b[e / D4][e % D4] = ge;
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
    let lse_r = vec4<f32>(tile_row[rg], tile_row[rg + 8u], tile_row[rg + 16u], tile_row[rg + 24u]);
    let delta_r = vec4<f32>(
        tile_row2[rg],
        tile_row2[rg + 8u],
        tile_row2[rg + 16u],
        tile_row2[rg + 24u],
    );
    let rows = vec4<u32>(q0 + rg) + vec4<u32>(0u, 8u, 16u, 24u);
    // dq[2 r + half]: row rg + 8 r, vec4 column kg + 8 half.
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
            tile_narrow_a[e / D4][e % D4] = k;
            tile_narrow_b[e / D4][e % D4] = v;
        }
        workgroupBarrier();
        // s[n][r], dp[n][r]: row rg + 8 r against key kg + 8 n.
        var s: array<vec4<f32>, 2>;
        var dp: array<vec4<f32>, 2>;
        for (var n = 0u; n < 2u; n++) {
            s[n] = vec4<f32>(0.0);
            dp[n] = vec4<f32>(0.0);
        }
        for (var c = 0u; c < D4; c++) {
            let qa = tile_wide_a[rg][c];
            let qb = tile_wide_a[rg + 8u][c];
            let qc = tile_wide_a[rg + 16u][c];
            let qd = tile_wide_a[rg + 24u][c];
            let ga = tile_wide_b[rg][c];
            let gb = tile_wide_b[rg + 8u][c];
            let gc = tile_wide_b[rg + 16u][c];
            let gd = tile_wide_b[rg + 24u][c];
            for (var n = 0u; n < 2u; n++) {
                let kk = tile_narrow_a[kg + 8u * n][c];
                let vv = tile_narrow_b[kg + 8u * n][c];
                s[n] += vec4<f32>(dot(qa, kk), dot(qb, kk), dot(qc, kk), dot(qd, kk));
                dp[n] += vec4<f32>(dot(ga, vv), dot(gb, vv), dot(gc, vv), dot(gd, vv));
            }
        }
        for (var n = 0u; n < 2u; n++) {
            let visible = vec4<u32>(k0 + kg + 8u * n) <= rows;
            let ds = exp(s[n] - lse_r) * (dp[n] - delta_r);
            tile_blk_a[kg + 8u * n][rg] = select(vec4<f32>(0.0), ds, visible);
        }
        workgroupBarrier();
        for (var j = 0u; j < BN; j++) {
            let ds = tile_blk_a[j][rg];
            let ka = tile_narrow_a[j][kg];
            let kb = tile_narrow_a[j][kg + 8u];
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
        let i = q0 + rg + 8u * r;
        if (i < params.seq) {
            let base = qkv_row(b, i, 0u, h);
            store4(base, kg, dq[2u * r] * params.scale);
            store4(base, kg + 8u, dq[2u * r + 1u] * params.scale);
        }
    }
}

// dv_j = sum_i p_ij do_i and dk_j = scale * sum_i p_ij (dp_ij - delta_i) q_i over i >= j.
// Blocked: 64 threads own BR = 32 key rows and walk the queries from the first of them in
// tiles of BN = 16. Per tile, (1) every thread computes s and dp for keys rg + 8 r and
// queries kg, kg + 8 from the K, V, Q and dO tiles (per vec4 column, 4 + 4 + 2 + 2 loads feed
// 16 dot products, 64 FMAs) and leaves p in tile_blk_a and ds = p (dp - delta) in tile_blk_b
// (exactly 0 where masked); (2) accumulates 4 x 8 blocks of dv and dk (keys rg + 8 r, vec4
// columns kg and kg + 8): per query, 2 + 4 loads feed 64 FMAs.
@compute @workgroup_size(64)
fn attn_dkdv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let k0 = wg.x * BR;
    let rg = l / 8u;
    let kg = l % 8u;
    for (var e = l; e < BR * D4; e += THREADS) {
        let j = k0 + e / D4;
        var ke = vec4<f32>(0.0);
        var ve = vec4<f32>(0.0);
        if (j < params.seq) {
            ke = qkv4(qkv_row(b, j, 1u, h), e % D4) * params.scale;
            ve = qkv4(qkv_row(b, j, 2u, h), e % D4);
        }
        tile_wide_a[e / D4][e % D4] = ke;
        tile_wide_b[e / D4][e % D4] = ve;
    }
    let keys = vec4<u32>(k0 + rg) + vec4<u32>(0u, 8u, 16u, 24u);
    // dk[2 r + half], dv[2 r + half]: key rg + 8 r, vec4 column kg + 8 half.
    var dk: array<vec4<f32>, 8>;
    var dv: array<vec4<f32>, 8>;
    for (var x = 0u; x < 8u; x++) {
        dk[x] = vec4<f32>(0.0);
        dv[x] = vec4<f32>(0.0);
    }
    let tiles = (params.seq + BN - 1u) / BN;
    for (var qt = k0 / BN; qt < tiles; qt++) {
        let i0 = qt * BN;
        workgroupBarrier();
        for (var e = l; e < BN * D4; e += THREADS) {
            let i = i0 + e / D4;
            var qe = vec4<f32>(0.0);
            var ge = vec4<f32>(0.0);
            if (i < params.seq) {
                qe = qkv4(qkv_row(b, i, 0u, h), e % D4);
                ge = dout4(o_row(b, i, h), e % D4);
            }
            tile_narrow_a[e / D4][e % D4] = qe;
            tile_narrow_b[e / D4][e % D4] = ge;
        }
        if (l < BN) {
            var ld = vec2<f32>(0.0, 0.0);
            if (i0 + l < params.seq) {
                ld = vec2<f32>(lse[wg.y * params.seq + i0 + l], delta[wg.y * params.seq + i0 + l]);
            }
            tile_row[l] = ld.x;
            tile_row2[l] = ld.y;
        }
        workgroupBarrier();
        // s[n][r], dp[n][r]: key rg + 8 r against query kg + 8 n.
        var s: array<vec4<f32>, 2>;
        var dp: array<vec4<f32>, 2>;
        for (var n = 0u; n < 2u; n++) {
            s[n] = vec4<f32>(0.0);
            dp[n] = vec4<f32>(0.0);
        }
        for (var c = 0u; c < D4; c++) {
            let ka = tile_wide_a[rg][c];
            let kb = tile_wide_a[rg + 8u][c];
            let kc = tile_wide_a[rg + 16u][c];
            let kd = tile_wide_a[rg + 24u][c];
            let va = tile_wide_b[rg][c];
            let vb = tile_wide_b[rg + 8u][c];
            let vc = tile_wide_b[rg + 16u][c];
            let vd = tile_wide_b[rg + 24u][c];
            for (var n = 0u; n < 2u; n++) {
                let qq = tile_narrow_a[kg + 8u * n][c];
                let gg = tile_narrow_b[kg + 8u * n][c];
                s[n] += vec4<f32>(dot(ka, qq), dot(kb, qq), dot(kc, qq), dot(kd, qq));
                dp[n] += vec4<f32>(dot(va, gg), dot(vb, gg), dot(vc, gg), dot(vd, gg));
            }
        }
        for (var n = 0u; n < 2u; n++) {
            let col = kg + 8u * n;
            let i = i0 + col;
            let visible = (keys <= vec4<u32>(i)) & vec4<bool>(i < params.seq);
            let p = select(vec4<f32>(0.0), exp(s[n] - tile_row[col]), visible);
            tile_blk_a[col][rg] = p;
            tile_blk_b[col][rg] = p * (dp[n] - tile_row2[col]);
        }
        workgroupBarrier();
        for (var j = 0u; j < BN; j++) {
            let p = tile_blk_a[j][rg];
            let ds = tile_blk_b[j][rg];
            let ga = tile_narrow_b[j][kg];
            let gb = tile_narrow_b[j][kg + 8u];
            let qa = tile_narrow_a[j][kg];
            let qb = tile_narrow_a[j][kg + 8u];
            for (var r = 0u; r < 4u; r++) {
                dv[2u * r] += p[r] * ga;
                dv[2u * r + 1u] += p[r] * gb;
                dk[2u * r] += ds[r] * qa;
                dk[2u * r + 1u] += ds[r] * qb;
            }
        }
    }
    for (var r = 0u; r < 4u; r++) {
        let j = k0 + rg + 8u * r;
        if (j < params.seq) {
            let kb = qkv_row(b, j, 1u, h);
            let vb = qkv_row(b, j, 2u, h);
            store4(kb, kg, dk[2u * r] * params.scale);
            store4(kb, kg + 8u, dk[2u * r + 1u] * params.scale);
            store4(vb, kg, dv[2u * r]);
            store4(vb, kg + 8u, dv[2u * r + 1u]);
        }
    }
}
