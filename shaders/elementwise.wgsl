// Elementwise kernels over flat f32 arrays.
//
// Dispatch is 2-D so that arrays longer than 65535 workgroups still fit the per-dimension
// limit: the flat index is base + (group.y * groups.x + group.x) * WG + local.x. WG is chosen on
// the host from the adapter's limits and set as a pipeline override constant. `base` lets the
// host run only the tail that `elementwise_vec4.wgsl` leaves (n not a multiple of 4).
//
// Bindings: y (written) at 1, x at 2, z at 3; each entry uses the ones it names.

override WG: u32 = 256u;

struct Params {
    n: u32,
    a: f32,
    b: f32,
    // Row length of bias_* entries (bias[i % cols]).
    cols: u32,
    base: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> z: array<f32>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_C: f32 = 0.044715;

fn flat_index(group: vec3<u32>, groups: vec3<u32>, local: vec3<u32>) -> u32 {
    return params.base + (group.y * groups.x + group.x) * WG + local.x;
}

fn relu(v: f32) -> f32 {
    return max(v, 0.0);
}

fn relu_grad(v: f32) -> f32 {
    return select(0.0, 1.0, v > 0.0);
}

// For the GELU argument u = sqrt(2/pi) (v + c v^3) and t = tanh(u): (1 + t, 1 - t^2), from
// e = exp(-2|u|) so that neither cancels where t is near -1 or 1 (and nothing overflows).
fn gelu_parts(v: f32) -> vec2<f32> {
    let u = SQRT_2_OVER_PI * (v + GELU_C * v * v * v);
    let e = exp(-2.0 * abs(u));
    let inv = 1.0 / (1.0 + e);
    let one_plus_t = select(2.0 * e * inv, 2.0 * inv, u >= 0.0);
    return vec2<f32>(one_plus_t, 4.0 * e * inv * inv);
}

fn gelu(v: f32) -> f32 {
    return 0.5 * v * gelu_parts(v).x;
}

// d gelu / dv = 0.5 (1 + t) + 0.5 v (1 - t^2) sqrt(2/pi) (1 + 3 c v^2)
fn gelu_grad(v: f32) -> f32 {
    let q = gelu_parts(v);
    return 0.5 * q.x + 0.5 * v * q.y * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * v * v);
}

// y[i] = a
@compute @workgroup_size(WG)
fn fill(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = params.a;
    }
}

// y[i] = a * x[i] + b * y[i]
@compute @workgroup_size(WG)
fn axpby(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = params.a * x[i] + params.b * y[i];
    }
}

// y[i] = x[i]
@compute @workgroup_size(WG)
fn copy(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = x[i];
    }
}

// y[i] = x[i] + z[i]
@compute @workgroup_size(WG)
fn add(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
       @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = x[i] + z[i];
    }
}

// y[i] = x[i] - z[i]
@compute @workgroup_size(WG)
fn sub(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
       @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = x[i] - z[i];
    }
}

// y[i] = x[i] * z[i]
@compute @workgroup_size(WG)
fn mul(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
       @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = x[i] * z[i];
    }
}

// y[i] -= x[i]
@compute @workgroup_size(WG)
fn sub_in_place(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = y[i] - x[i];
    }
}

// y[i] *= x[i]
@compute @workgroup_size(WG)
fn mul_in_place(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = y[i] * x[i];
    }
}

// y[i] = a * x[i]
@compute @workgroup_size(WG)
fn scale(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = params.a * x[i];
    }
}

// y[i] *= a
@compute @workgroup_size(WG)
fn scale_in_place(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                  @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = params.a * y[i];
    }
}

// y[i] = relu(x[i])
@compute @workgroup_size(WG)
fn relu_forward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = relu(x[i]);
    }
}

// y[i] = gelu(x[i])
@compute @workgroup_size(WG)
fn gelu_forward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = gelu(x[i]);
    }
}

// y[i] = relu(y[i])
@compute @workgroup_size(WG)
fn relu_in_place(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                 @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = relu(y[i]);
    }
}

// y[i] = gelu(y[i])
@compute @workgroup_size(WG)
fn gelu_in_place(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                 @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = gelu(y[i]);
    }
}

// y[i] = x[i] * relu'(z[i]): x the gradient of the output, z the activation's input.
@compute @workgroup_size(WG)
fn relu_backward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                 @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = x[i] * relu_grad(z[i]);
    }
}

// y[i] = x[i] * gelu'(z[i])
@compute @workgroup_size(WG)
fn gelu_backward(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                 @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = x[i] * gelu_grad(z[i]);
    }
}

// y[i] *= relu'(x[i]): y the gradient of the output, x the activation's input.
@compute @workgroup_size(WG)
fn relu_backward_in_place(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                          @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = y[i] * relu_grad(x[i]);
    }
}

// y[i] *= gelu'(x[i])
@compute @workgroup_size(WG)
fn gelu_backward_in_place(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                          @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = y[i] * gelu_grad(x[i]);
    }
}

// y[i] = y[i] + x[i % cols] (bias over the rows of a [rows, cols] matrix)
@compute @workgroup_size(WG)
fn bias_none(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = y[i] + x[i % params.cols];
    }
}

// y[i] = relu(y[i] + x[i % cols])
@compute @workgroup_size(WG)
fn bias_relu(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = relu(y[i] + x[i % params.cols]);
    }
}

// y[i] = gelu(y[i] + x[i % cols])
@compute @workgroup_size(WG)
fn bias_gelu(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
             @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y[i] = gelu(y[i] + x[i % params.cols]);
    }
}
