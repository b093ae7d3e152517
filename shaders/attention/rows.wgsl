// Fused attention, one row per thread (shaders/attention/common.wgsl has the layout, bindings
// and helpers): attn_forward_rows and attn_dq_rows give each thread a query row, 64 per
// workgroup, attn_dkdv_rows a key row; rows are 16 vec4 in registers, K/V (or Q/dO) tiles in
// workgroup memory, every element of which a thread uses is one load per 4 FMAs (a broadcast:
// all threads read the same address).

// Rows per workgroup (one per thread), keys per tile in attn_forward_rows and attn_dq_rows,
// queries per tile in attn_dkdv_rows.
const ROWS: u32 = 64u;
const KEYS: u32 = 32u;
const QUERIES: u32 = 16u;

// K and V tiles of attn_forward_rows and attn_dq_rows: 2 x 8 KiB (WebGPU's 16 KiB default
// limit).
var<workgroup> tile_a: array<vec4<f32>, 512>;
var<workgroup> tile_b: array<vec4<f32>, 512>;
// Q and dO tiles of attn_dkdv_rows: 2 x 4 KiB.
var<workgroup> tile_q: array<vec4<f32>, 256>;
var<workgroup> tile_do: array<vec4<f32>, 256>;
var<workgroup> tile_lse: array<f32, 16>;
var<workgroup> tile_delta: array<f32, 16>;

// Loads keys [k0, k0 + KEYS) of head (b, h) into tile_a (K) and tile_b (V); zeros past seq.
fn load_kv(l: u32, b: u32, h: u32, k0: u32) {
    for (var e = l; e < KEYS * D4; e += ROWS) {
        let key = k0 + e / D4;
        var k = vec4<f32>(0.0);
        var v = vec4<f32>(0.0);
        if (key < params.seq) {
            k = qkv4(qkv_row(b, key, 1u, h), e % D4);
            v = qkv4(qkv_row(b, key, 2u, h), e % D4);
        }
        tile_a[e] = k;
        tile_b[e] = v;
    }
}

@compute @workgroup_size(64)
fn attn_forward_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) l: u32,
) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let q0 = wg.x * ROWS;
    let i = q0 + l;
    let valid = i < params.seq;
    var q: array<vec4<f32>, 16>;
    var acc: array<vec4<f32>, 16>;
    for (var c = 0u; c < D4; c++) {
        acc[c] = vec4<f32>(0.0);
        q[c] = vec4<f32>(0.0);
        if (valid) {
            q[c] = qkv4(qkv_row(b, i, 0u, h), c) * params.scale;
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
                    for (var c = 0u; c < D4; c++) {
                        v += dot(q[c], tile_a[j * D4 + c]);
                    }
                }
                s[j] = v;
                tile_max = max(tile_max, v);
            }
            let m_new = max(m, tile_max);
            let correction = exp(m - m_new);
            sum *= correction;
            for (var c = 0u; c < D4; c++) {
                acc[c] *= correction;
            }
            for (var j = 0u; j < KEYS; j++) {
                if (k0 + j <= i) {
                    let p = exp(s[j] - m_new);
                    sum += p;
                    for (var c = 0u; c < D4; c++) {
                        acc[c] += p * tile_b[j * D4 + c];
                    }
                }
            }
            m = m_new;
        }
    }
    if (valid) {
        let inv = 1.0 / sum;
        let base = o_row(b, i, h);
        for (var c = 0u; c < D4; c++) {
            store4(base, c, acc[c] * inv);
        }
        lse[wg.y * params.seq + i] = m + log(sum);
    }
}

// dq_i = scale * sum_j p_ij (dp_ij - delta_i) k_j, with dp_ij = do_i . v_j.
@compute @workgroup_size(64)
fn attn_dq_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let b = wg.y / params.heads;
    let h = wg.y % params.heads;
    let q0 = wg.x * ROWS;
    let i = q0 + l;
    let valid = i < params.seq;
    var q: array<vec4<f32>, 16>;
    var g: array<vec4<f32>, 16>;
    var dq: array<vec4<f32>, 16>;
    var di = 0.0;
    var li = 0.0;
    for (var c = 0u; c < D4; c++) {
        dq[c] = vec4<f32>(0.0);
        q[c] = vec4<f32>(0.0);
        g[c] = vec4<f32>(0.0);
        if (valid) {
            q[c] = qkv4(qkv_row(b, i, 0u, h), c) * params.scale;
            g[c] = dout4(o_row(b, i, h), c);
            di += dot(g[c], o4(o_row(b, i, h), c));
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
                    for (var c = 0u; c < D4; c++) {
                        s += dot(q[c], tile_a[j * D4 + c]);
                        dp += dot(g[c], tile_b[j * D4 + c]);
                    }
                    let ds = exp(s - li) * (dp - di);
                    for (var c = 0u; c < D4; c++) {
                        dq[c] += ds * tile_a[j * D4 + c];
                    }
                }
            }
        }
    }
    if (valid) {
        let base = qkv_row(b, i, 0u, h);
        for (var c = 0u; c < D4; c++) {
            store4(base, c, dq[c] * params.scale);
        }
    }
}

// dv_j = sum_i p_ij do_i and dk_j = scale * sum_i p_ij (dp_ij - delta_i) q_i over i >= j.
@compute @workgroup_size(64)
fn attn_dkdv_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
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
