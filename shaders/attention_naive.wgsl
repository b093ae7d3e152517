// Naive causal self-attention: the reference the fused kernels (attention.wgsl) are tested
// against. It materialises the seq x seq probabilities p (and, in backward, the score
// gradients ds) per head, so its memory grows with the square of the context. Same layouts as
// attention.wgsl; one thread per query row (or key row) and head, plain loops.

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
// [batch * heads, seq, seq]: the probabilities (masked entries 0).
@group(0) @binding(1) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read> qkv: array<f32>;
// naive_forward: o. The backward kernels: dqkv.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
// naive_forward: lse [batch * heads, seq]. The backward kernels: ds [batch * heads, seq, seq].
@group(0) @binding(4) var<storage, read_write> aux: array<f32>;
@group(0) @binding(5) var<storage, read> dout: array<f32>;

fn qkv_at(b: u32, t: u32, part: u32, h: u32, d: u32) -> u32 {
    return (b * params.seq + t) * 3u * params.width + part * params.width + h * params.dim + d;
}

fn o_at(b: u32, t: u32, h: u32, d: u32) -> u32 {
    return (b * params.seq + t) * params.width + h * params.dim + d;
}

fn score(b: u32, h: u32, i: u32, j: u32) -> f32 {
    var s = 0.0;
    for (var d = 0u; d < params.dim; d++) {
        s += qkv[qkv_at(b, i, 0u, h, d)] * qkv[qkv_at(b, j, 1u, h, d)];
    }
    return s * params.scale;
}

// One thread per (b * heads + h, i): p[i, :], lse[i] and o[i].
@compute @workgroup_size(64)
fn naive_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let seq = params.seq;
    if (gid.x >= params.batch * params.heads * seq) {
        return;
    }
    let bh = gid.x / seq;
    let i = gid.x % seq;
    let b = bh / params.heads;
    let h = bh % params.heads;
    let row = (bh * seq + i) * seq;
    var m = -1e30;
    for (var j = 0u; j <= i; j++) {
        m = max(m, score(b, h, i, j));
    }
    var sum = 0.0;
    for (var j = 0u; j < seq; j++) {
        var e = 0.0;
        if (j <= i) {
            e = exp(score(b, h, i, j) - m);
        }
        p[row + j] = e;
        sum += e;
    }
    for (var j = 0u; j <= i; j++) {
        p[row + j] = p[row + j] / sum;
    }
    aux[bh * seq + i] = m + log(sum);
    for (var d = 0u; d < params.dim; d++) {
        var acc = 0.0;
        for (var j = 0u; j <= i; j++) {
            acc += p[row + j] * qkv[qkv_at(b, j, 2u, h, d)];
        }
        out[o_at(b, i, h, d)] = acc;
    }
}

// One thread per (bh, i): ds[i, j] = p_ij (dp_ij - sum_k p_ik dp_ik), dp_ij = do_i . v_j; then
// dq_i = scale * sum_j ds_ij k_j.
@compute @workgroup_size(64)
fn naive_backward_dq(@builtin(global_invocation_id) gid: vec3<u32>) {
    let seq = params.seq;
    if (gid.x >= params.batch * params.heads * seq) {
        return;
    }
    let bh = gid.x / seq;
    let i = gid.x % seq;
    let b = bh / params.heads;
    let h = bh % params.heads;
    let row = (bh * seq + i) * seq;
    var dot = 0.0;
    for (var j = 0u; j < seq; j++) {
        var dp = 0.0;
        for (var d = 0u; d < params.dim; d++) {
            dp += dout[o_at(b, i, h, d)] * qkv[qkv_at(b, j, 2u, h, d)];
        }
        aux[row + j] = dp;
        dot += p[row + j] * dp;
    }
    for (var j = 0u; j < seq; j++) {
        aux[row + j] = p[row + j] * (aux[row + j] - dot);
    }
    for (var d = 0u; d < params.dim; d++) {
        var acc = 0.0;
        for (var j = 0u; j < seq; j++) {
            acc += aux[row + j] * qkv[qkv_at(b, j, 1u, h, d)];
        }
        out[qkv_at(b, i, 0u, h, d)] = acc * params.scale;
    }
}

// One thread per (bh, j), after naive_backward_dq: dk_j = scale * sum_i ds_ij q_i and
// dv_j = sum_i p_ij do_i.
@compute @workgroup_size(64)
fn naive_backward_dkdv(@builtin(global_invocation_id) gid: vec3<u32>) {
    let seq = params.seq;
    if (gid.x >= params.batch * params.heads * seq) {
        return;
    }
    let bh = gid.x / seq;
    let j = gid.x % seq;
    let b = bh / params.heads;
    let h = bh % params.heads;
    for (var d = 0u; d < params.dim; d++) {
        var dk = 0.0;
        var dv = 0.0;
        for (var i = 0u; i < seq; i++) {
            let at = (bh * seq + i) * seq + j;
            dk += aux[at] * qkv[qkv_at(b, i, 0u, h, d)];
            dv += p[at] * dout[o_at(b, i, h, d)];
        }
        out[qkv_at(b, j, 1u, h, d)] = dk * params.scale;
        out[qkv_at(b, j, 2u, h, d)] = dv;
    }
}
