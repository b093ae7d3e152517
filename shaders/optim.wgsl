// Optimizer updates, one pass over a parameter buffer (one element per thread, 2-D dispatch as
// in elementwise.wgsl). Semantics follow PyTorch's SGD and Adam/AdamW.

override WG: u32 = 256u;

struct Params {
    n: u32,
    lr: f32,
    // SGD: momentum; Adam: beta1.
    beta1: f32,
    // Adam: beta2.
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    // Adam: lr / (1 - beta1^step).
    step_size: f32,
    // Adam: 1 / sqrt(1 - beta2^step).
    inv_sqrt_bc2: f32,
    // SGD: 1 for Nesterov momentum. Adam: 1 for decoupled weight decay (AdamW).
    flag: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

fn flat_index(group: vec3<u32>, groups: vec3<u32>, local: vec3<u32>) -> u32 {
    return (group.y * groups.x + group.x) * WG + local.x;
}

// p -= lr * (g + wd p)
@compute @workgroup_size(WG)
fn sgd_plain(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        let p = param[i];
        param[i] = p - params.lr * (grad[i] + params.weight_decay * p);
    }
}

// g = grad + wd p; buf = momentum buf + g; p -= lr (g + momentum buf if Nesterov, else buf)
@compute @workgroup_size(WG)
fn sgd_momentum(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        let p = param[i];
        let g = grad[i] + params.weight_decay * p;
        let buf = params.beta1 * m[i] + g;
        m[i] = buf;
        var step = buf;
        if (params.flag == 1u) {
            step = g + params.beta1 * buf;
        }
        param[i] = p - params.lr * step;
    }
}

// Adam (L2 weight decay added to the gradient) or AdamW (decoupled: p *= 1 - lr wd).
@compute @workgroup_size(WG)
fn adam(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        var p = param[i];
        var g = grad[i];
        if (params.flag == 1u) {
            p = p * (1.0 - params.lr * params.weight_decay);
        } else {
            g = g + params.weight_decay * p;
        }
        let m1 = params.beta1 * m[i] + (1.0 - params.beta1) * g;
        let v1 = params.beta2 * v[i] + (1.0 - params.beta2) * g * g;
        m[i] = m1;
        v[i] = v1;
        let denom = sqrt(v1) * params.inv_sqrt_bc2 + params.eps;
        param[i] = p - params.step_size * m1 / denom;
    }
}
