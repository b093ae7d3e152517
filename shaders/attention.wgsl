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
// workgroups: attn_dq gives each thread a query row (dq), attn_dkdv each thread a key row
// (dk, dv). Every sum runs in a fixed order, so results are bit-for-bit repeatable.
//
// Masking: key j is visible to query i iff j <= i. Tiles wholly above the diagonal are
// skipped; masked scores are -1e30, whose exp underflows to exactly 0 (no inf arithmetic).
// Head sizes up to DMAX = 64 (the per-thread arrays' length).

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
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
// Written by attn_forward, read by the backward kernels.
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<f32>;
// delta[i] = dot(do_i, o_i): written by attn_dq, read by attn_dkdv.
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read> o: array<f32>;

const DMAX: u32 = 64u;
// Rows per workgroup (one per thread), keys per tile in forward and attn_dq, queries per tile
// in attn_dkdv.
const ROWS: u32 = 64u;
const KEYS: u32 = 32u;
const QUERIES: u32 = 16u;
const MASKED: f32 = -1e30;

// K and V tiles of attn_forward and attn_dq: 2 x 8 KiB (WebGPU's 16 KiB default limit).
var<workgroup> tile_a: array<f32, 2048>;
var<workgroup> tile_b: array<f32, 2048>;
// Q and dO tiles of attn_dkdv.
var<workgroup> tile_q: array<f32, 1024>;
var<workgroup> tile_do: array<f32, 1024>;
var<workgroup> tile_lse: array<f32, 16>;
var<workgroup> tile_delta: array<f32, 16>;

// Index into qkv (and dqkv) of row (b, t), part 0/1/2 (q/k/v), head h, component d.
fn qkv_at(b: u32, t: u32, part: u32, h: u32, d: u32) -> u32 {
    return (b * params.seq + t) * 3u * params.width + part * params.width + h * params.dim + d;
}

// Index into o / do of row (b, t), head h, component d.
fn o_at(b: u32, t: u32, h: u32, d: u32) -> u32 {
    return (b * params.seq + t) * params.width + h * params.dim + d;
}

// Loads keys [k0, k0 + KEYS) of head (b, h) into tile_a (K) and tile_b (V); zeros past seq.
fn load_kv(l: u32, b: u32, h: u32, k0: u32) {
    let dim = params.dim;
    for (var e = l; e < KEYS * dim; e += ROWS) {
        let j = e / dim;
        let d = e % dim;
        let key = k0 + j;
        var kv = vec2<f32>(0.0, 0.0);
        if (key < params.seq) {
            kv = vec2<f32>(qkv[qkv_at(b, key, 1u, h, d)], qkv[qkv_at(b, key, 2u, h, d)]);
        }
        tile_a[j * DMAX + d] = kv.x;
        tile_b[j * DMAX + d] = kv.y;
    }
}

@compute @workgroup_size(64)
fn attn_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let dim = params.dim;
    let q0 = wg.x * ROWS;
    let i = q0 + l;
    let valid = i < params.seq;
    var q: array<f32, 64>;
    var acc: array<f32, 64>;
    for (var d = 0u; d < dim; d++) {
        acc[d] = 0.0;
        q[d] = 0.0;
        if (valid) {
            q[d] = qkv[qkv_at(b, i, 0u, h, d)] * params.scale;
        }
    }
    var m = MASKED;
    var sum = 0.0;
    // Key tiles up to the diagonal of this workgroup's last row.
    let last = min(params.seq, q0 + ROWS) - 1u;
    let tiles = last / KEYS + 1u;
    for (var kt = 0u; kt < tiles; kt++) {
        let k0 = kt * KEYS;
        workgroupBarrier();
        load_kv(l, b, h, k0);
        workgroupBarrier();
        if (valid && k0 <= i) {
            var s: array<f32, 32>;
            var tile_max = MASKED;
            for (var j = 0u; j < KEYS; j++) {
                var v = MASKED;
                if (k0 + j <= i) {
                    v = 0.0;
                    for (var d = 0u; d < dim; d++) {
                        v += q[d] * tile_a[j * DMAX + d];
                    }
                }
                s[j] = v;
                tile_max = max(tile_max, v);
            }
            let m_new = max(m, tile_max);
            let correction = exp(m - m_new);
            sum *= correction;
            for (var d = 0u; d < dim; d++) {
                acc[d] *= correction;
            }
            for (var j = 0u; j < KEYS; j++) {
                if (k0 + j <= i) {
                    let p = exp(s[j] - m_new);
                    sum += p;
                    for (var d = 0u; d < dim; d++) {
                        acc[d] += p * tile_b[j * DMAX + d];
                    }
                }
            }
            m = m_new;
        }
    }
    if (valid) {
        let inv = 1.0 / sum;
        for (var d = 0u; d < dim; d++) {
            out[o_at(b, i, h, d)] = acc[d] * inv;
        }
        lse[wg.y * params.seq + i] = m + log(sum);
    }
}

// dq_i = scale * sum_j p_ij (dp_ij - delta_i) k_j, with dp_ij = do_i . v_j.
@compute @workgroup_size(64)
fn attn_dq(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let dim = params.dim;
    let q0 = wg.x * ROWS;
    let i = q0 + l;
    let valid = i < params.seq;
    var q: array<f32, 64>;
    var g: array<f32, 64>;
    var dq: array<f32, 64>;
    var di = 0.0;
    var li = 0.0;
    for (var d = 0u; d < dim; d++) {
        dq[d] = 0.0;
        q[d] = 0.0;
        g[d] = 0.0;
        if (valid) {
            q[d] = qkv[qkv_at(b, i, 0u, h, d)] * params.scale;
            g[d] = dout[o_at(b, i, h, d)];
            di += g[d] * o[o_at(b, i, h, d)];
        }
    }
    if (valid) {
        li = lse[wg.y * params.seq + i];
        delta[wg.y * params.seq + i] = di;
    }
    let last = min(params.seq, q0 + ROWS) - 1u;
    let tiles = last / KEYS + 1u;
    for (var kt = 0u; kt < tiles; kt++) {
        let k0 = kt * KEYS;
        workgroupBarrier();
        load_kv(l, b, h, k0);
        workgroupBarrier();
        if (valid && k0 <= i) {
            for (var j = 0u; j < KEYS; j++) {
                if (k0 + j <= i) {
                    var s = 0.0;
                    var dp = 0.0;
                    for (var d = 0u; d < dim; d++) {
                        s += q[d] * tile_a[j * DMAX + d];
                        dp += g[d] * tile_b[j * DMAX + d];
                    }
                    let ds = exp(s - li) * (dp - di);
                    for (var d = 0u; d < dim; d++) {
                        dq[d] += ds * tile_a[j * DMAX + d];
                    }
                }
            }
        }
    }
    if (valid) {
        for (var d = 0u; d < dim; d++) {
            out[qkv_at(b, i, 0u, h, d)] = dq[d] * params.scale;
        }
    }
}

// dv_j = sum_i p_ij do_i and dk_j = scale * sum_i p_ij (dp_ij - delta_i) q_i over i >= j.
@compute @workgroup_size(64)
fn attn_dkdv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let dim = params.dim;
    let k0 = wg.x * ROWS;
    let j = k0 + l;
    let valid = j < params.seq;
    var k: array<f32, 64>;
    var v: array<f32, 64>;
    var dk: array<f32, 64>;
    var dv: array<f32, 64>;
    for (var d = 0u; d < dim; d++) {
        dk[d] = 0.0;
        dv[d] = 0.0;
        k[d] = 0.0;
        v[d] = 0.0;
        if (valid) {
            k[d] = qkv[qkv_at(b, j, 1u, h, d)] * params.scale;
            v[d] = qkv[qkv_at(b, j, 2u, h, d)];
        }
    }
    // Query tiles from the one holding this workgroup's first key to the end.
    let tiles = (params.seq + QUERIES - 1u) / QUERIES;
    for (var qt = k0 / QUERIES; qt < tiles; qt++) {
        let i0 = qt * QUERIES;
        workgroupBarrier();
        for (var e = l; e < QUERIES * dim; e += ROWS) {
            let r = e / dim;
            let d = e % dim;
            var qg = vec2<f32>(0.0, 0.0);
            if (i0 + r < params.seq) {
                qg = vec2<f32>(qkv[qkv_at(b, i0 + r, 0u, h, d)], dout[o_at(b, i0 + r, h, d)]);
            }
            tile_q[r * DMAX + d] = qg.x;
            tile_do[r * DMAX + d] = qg.y;
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
                    for (var d = 0u; d < dim; d++) {
                        s += k[d] * tile_q[r * DMAX + d];
                        dp += v[d] * tile_do[r * DMAX + d];
                    }
                    let p = exp(s - tile_lse[r]);
                    let ds = p * (dp - tile_delta[r]);
                    for (var d = 0u; d < dim; d++) {
                        dv[d] += p * tile_do[r * DMAX + d];
                        dk[d] += ds * tile_q[r * DMAX + d];
                    }
                }
            }
        }
    }
    if (valid) {
        for (var d = 0u; d < dim; d++) {
            out[qkv_at(b, j, 1u, h, d)] = dk[d] * params.scale;
            out[qkv_at(b, j, 2u, h, d)] = dv[d];
        }
    }
}
