// Optimizer updates for mixed-precision training, and the overflow check that comes before them.
//
// The gradients are f32 (accumulated from f16 products) and carry the loss scale S. Each update
// reads g = grad * inv_scale (inv_scale = 1 / S), updates the f32 master weight and the f32
// optimizer state exactly as optim.wgsl does, zeroes the gradient for the next accumulation,
// and (entries *_h) writes the f16 working copy of the weight that forward and backward read:
// unscaling, the update, zeroing and the f32 -> f16 conversion in one pass.
//
// check_finite sets flag[0] to 1 when any gradient is inf or NaN. It tests the exponent bits
// rather than comparing, so no compiler's fast-math can fold the test away.

enable f16;

override WG: u32 = 256u;

struct Params {
    n: u32,
    lr: f32,
    // SGD: momentum; Adam: beta1.
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    // Adam: lr / (1 - beta1^step).
    step_size: f32,
    // Adam: 1 / sqrt(1 - beta2^step).
    inv_sqrt_bc2: f32,
    // SGD: 1 for Nesterov momentum. Adam: 1 for decoupled weight decay (AdamW).
    flag: u32,
    // 1 / loss scale.
    inv_scale: f32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(1) var<storage, read_write> flag: array<atomic<u32>>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> half_param: array<f16>;
@group(0) @binding(3) var<storage, read_write> half_param3: array<f16>;
@group(0) @binding(4) var<storage, read_write> half_param4: array<f16>;

fn flat_index(group: vec3<u32>, groups: vec3<u32>, local: vec3<u32>) -> u32 {
    return (group.y * groups.x + group.x) * WG + local.x;
}

fn narrow(x: f32) -> f16 {
    // A runtime f32 infinity of v's sign (converting an infinity is exact; a constant one
    // would not survive constant evaluation).
    let inf = bitcast<f32>(0x7f800000u | select(0u, 0x80000000u, x < 0.0));
    return select(f16(x), f16(inf), abs(x) >= 65520.0);
}

// The unscaled gradient, and the stored one zeroed for the next step.
fn take_grad(i: u32) -> f32 {
    let g = grad[i] * params.inv_scale;
    grad[i] = 0.0;
    return g;
}

// flag[0] = 1 if any grad[i] is inf or NaN (all exponent bits set).
@compute @workgroup_size(WG)
fn check_finite(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        if ((bitcast<u32>(grad[i]) & 0x7f800000u) == 0x7f800000u) {
            atomicOr(&flag[0], 1u);
        }
    }
}

fn adam_update(i: u32) -> f32 {
    var p = param[i];
    var g = take_grad(i);
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
    let next = p - params.step_size * m1 / denom;
    param[i] = next;
    return next;
}

fn sgd_plain_update(i: u32) -> f32 {
    let p = param[i];
    let next = p - params.lr * (take_grad(i) + params.weight_decay * p);
    param[i] = next;
    return next;
}

fn sgd_momentum_update(i: u32) -> f32 {
    let p = param[i];
    let g = take_grad(i) + params.weight_decay * p;
    let buf = params.beta1 * m[i] + g;
    m[i] = buf;
    var step = buf;
    if (params.flag == 1u) {
        step = g + params.beta1 * buf;
    }
    let next = p - params.lr * step;
    param[i] = next;
    return next;
}

@compute @workgroup_size(WG)
fn adam_mixed(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
              @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        adam_update(i);
    }
}

@compute @workgroup_size(WG)
fn adam_mixed_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        half_param[i] = narrow(adam_update(i));
    }
}

@compute @workgroup_size(WG)
fn sgd_plain_mixed(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                   @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        sgd_plain_update(i);
    }
}

// The f16 copy at binding 3 (plain SGD has no state buffers).
@compute @workgroup_size(WG)
fn sgd_plain_mixed_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                     @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        half_param3[i] = narrow(sgd_plain_update(i));
    }
}

@compute @workgroup_size(WG)
fn sgd_momentum_mixed(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                      @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        sgd_momentum_update(i);
    }
}

// The f16 copy at binding 4 (momentum SGD has one state buffer, at 3).
@compute @workgroup_size(WG)
fn sgd_momentum_mixed_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                        @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        half_param4[i] = narrow(sgd_momentum_update(i));
    }
}
