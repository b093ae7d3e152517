// Layer normalisation over the last dimension, forward and backward.
//
// x: [rows, width]. A workgroup of 64 threads owns one row (rows fold into a 2-D grid) and
// reduces in workgroup memory; mean and variance are two passes over the row (no
// E[x^2] - E[x]^2 cancellation).
//   ln_forward:  y = (x - mean) * rstd * gamma + beta; saves mean and rstd per row.
//   ln_backward: with xhat = (x - mean) * rstd and g = gamma * dy,
//                dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),
//                and writes dy * xhat so that column sums give the gamma gradient
//                (deterministically, through reduce.wgsl's col_sums).
//
// Storage: the activations x, y, dx and dy are `act` (f32 or f16, from the header piece
// shaders/layernorm/f32.wgsl or f16.wgsl); gamma, beta, the statistics and dy * xhat are f32.
// Arithmetic and workgroup memory are f32 in both.

override WG: u32 = 256u; // Unused: the workgroup sizes below are fixed.

struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    groups_x: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// ln_forward: y. ln_backward: dx.
@group(0) @binding(1) var<storage, read_write> out: array<act>;
@group(0) @binding(2) var<storage, read> x: array<act>;
@group(0) @binding(3) var<storage, read> gamma: array<f32>;
// ln_forward only.
@group(0) @binding(4) var<storage, read> beta: array<f32>;
// [0, rows): mean; [rows, 2 rows): rstd. Written by ln_forward, read by ln_backward.
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;
// ln_backward only: dy * xhat, and dy.
@group(0) @binding(6) var<storage, read_write> dy_xhat: array<f32>;
@group(0) @binding(7) var<storage, read> dy: array<act>;

var<workgroup> red: array<f32, 64>;

// The sum over the workgroup of each thread's `v` (every thread gets it).
fn workgroup_sum(l: u32, v: f32) -> f32 {
    red[l] = v;
    for (var w = 32u; w > 0u; w >>= 1u) {
        workgroupBarrier();
        if (l < w) {
            red[l] = red[l] + red[l + w];
        }
    }
    workgroupBarrier();
    let total = red[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64)
fn ln_forward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let r = wg.x + wg.y * params.groups_x;
    if (r >= params.rows) {
        return;
    }
    let n = params.width;
    let base = r * n;
    var s = 0.0;
    for (var c = l; c < n; c += 64u) {
        s += f32(x[base + c]);
    }
    let mean = workgroup_sum(l, s) / f32(n);
    var q = 0.0;
    for (var c = l; c < n; c += 64u) {
        let d = f32(x[base + c]) - mean;
        q += d * d;
    }
    let rstd = inverseSqrt(workgroup_sum(l, q) / f32(n) + params.eps);
    for (var c = l; c < n; c += 64u) {
        out[base + c] = act((f32(x[base + c]) - mean) * rstd * gamma[c] + beta[c]);
    }
    if (l == 0u) {
        stats[r] = mean;
        stats[params.rows + r] = rstd;
    }
}

@compute @workgroup_size(64)
fn ln_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let r = wg.x + wg.y * params.groups_x;
    if (r >= params.rows) {
        return;
    }
    let n = params.width;
    let base = r * n;
    let mean = stats[r];
    let rstd = stats[params.rows + r];
    var sg = 0.0;
    var sgx = 0.0;
    for (var c = l; c < n; c += 64u) {
        let xhat = (f32(x[base + c]) - mean) * rstd;
        let dyc = f32(dy[base + c]);
        let g = gamma[c] * dyc;
        sg += g;
        sgx += g * xhat;
        dy_xhat[base + c] = dyc * xhat;
    }
    let mg = workgroup_sum(l, sg) / f32(n);
    let mgx = workgroup_sum(l, sgx) / f32(n);
    for (var c = l; c < n; c += 64u) {
        let xhat = (f32(x[base + c]) - mean) * rstd;
        let g = gamma[c] * f32(dy[base + c]);
        out[base + c] = act(rstd * (g - mg - xhat * mgx));
    }
}
