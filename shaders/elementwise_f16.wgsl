// Elementwise kernels on f16 storage, f32 arithmetic: conversions between f32 and f16,
// activations forward and backward, bias + activation, and the few arithmetic ops the f16 paths
// of training use. Every value is widened to f32, computed on, and narrowed once when stored.
//
// narrow() rounds to nearest even and sends magnitudes past f16's range (|x| >= 65520, which
// would round beyond 65504) to a signed infinity explicitly, because WGSL leaves the conversion
// of an out-of-range value indeterminate and the loss scaler relies on overflow showing as inf.
//
// Dispatch as elementwise.wgsl: flat index (group.y * groups.x + group.x) * WG + local.x.
// Bindings: y (written) at 1, x at 2, z at 3, as f16 or f32 per entry point (each entry uses one
// type per binding).

enable f16;

override WG: u32 = 256u;

struct Params {
    n: u32,
    a: f32,
    // Row length of bias_* entries (bias[i % cols]).
    cols: u32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> y16: array<f16>;
@group(0) @binding(1) var<storage, read_write> y32: array<f32>;
@group(0) @binding(2) var<storage, read> x16: array<f16>;
@group(0) @binding(2) var<storage, read> x32: array<f32>;
@group(0) @binding(3) var<storage, read> z16: array<f16>;

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_C: f32 = 0.044715;

fn flat_index(group: vec3<u32>, groups: vec3<u32>, local: vec3<u32>) -> u32 {
    return (group.y * groups.x + group.x) * WG + local.x;
}

fn narrow(v: f32) -> f16 {
    // A runtime f32 infinity of v's sign (converting an infinity is exact; a constant one
    // would not survive constant evaluation).
    let inf = bitcast<f32>(0x7f800000u | select(0u, 0x80000000u, v < 0.0));
    return select(f16(v), f16(inf), abs(v) >= 65520.0);
}

fn relu(v: f32) -> f32 {
    return max(v, 0.0);
}

fn relu_grad(v: f32) -> f32 {
    return select(0.0, 1.0, v > 0.0);
}

// As in elementwise.wgsl: (1 + tanh u, 1 - tanh^2 u) without cancellation or overflow.
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

fn gelu_grad(v: f32) -> f32 {
    let q = gelu_parts(v);
    return 0.5 * q.x + 0.5 * v * q.y * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * v * v);
}

// y16[i] = f16(x32[i])
@compute @workgroup_size(WG)
fn to_f16(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(x32[i]);
    }
}

// y32[i] = f32(x16[i]) (exact)
@compute @workgroup_size(WG)
fn to_f32(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y32[i] = f32(x16[i]);
    }
}

// y[i] = relu(x[i])
@compute @workgroup_size(WG)
fn relu_forward_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                  @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(relu(f32(x16[i])));
    }
}

// y[i] = gelu(x[i])
@compute @workgroup_size(WG)
fn gelu_forward_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                  @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(gelu(f32(x16[i])));
    }
}

// y[i] *= relu'(x[i]): y the gradient of the output, x the activation's input.
@compute @workgroup_size(WG)
fn relu_backward_in_place_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                            @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(f32(y16[i]) * relu_grad(f32(x16[i])));
    }
}

// y[i] *= gelu'(x[i])
@compute @workgroup_size(WG)
fn gelu_backward_in_place_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                            @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(f32(y16[i]) * gelu_grad(f32(x16[i])));
    }
}

// y[i] = x[i] * relu'(z[i])
@compute @workgroup_size(WG)
fn relu_backward_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                   @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(f32(x16[i]) * relu_grad(f32(z16[i])));
    }
}

// y[i] = x[i] * gelu'(z[i])
@compute @workgroup_size(WG)
fn gelu_backward_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                   @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(f32(x16[i]) * gelu_grad(f32(z16[i])));
    }
}

// y[i] = y[i] + bias32[i % cols] (the f32 bias over the rows of an f16 [rows, cols] matrix)
@compute @workgroup_size(WG)
fn bias_none_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(f32(y16[i]) + x32[i % params.cols]);
    }
}

// y[i] = relu(y[i] + bias32[i % cols])
@compute @workgroup_size(WG)
fn bias_relu_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(relu(f32(y16[i]) + x32[i % params.cols]));
    }
}

// y[i] = gelu(y[i] + bias32[i % cols])
@compute @workgroup_size(WG)
fn bias_gelu_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
               @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(gelu(f32(y16[i]) + x32[i % params.cols]));
    }
}

// y[i] += x[i] (activation-gradient accumulation, e.g. at a residual join)
@compute @workgroup_size(WG)
fn accumulate_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(f32(y16[i]) + f32(x16[i]));
    }
}

// y[i] = x[i] + z[i]
@compute @workgroup_size(WG)
fn add_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(f32(x16[i]) + f32(z16[i]));
    }
}

// y[i] *= a
@compute @workgroup_size(WG)
fn scale_in_place_h(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
                    @builtin(local_invocation_id) local: vec3<u32>) {
    let i = flat_index(group, groups, local);
    if (i < params.n) {
        y16[i] = narrow(params.a * f32(y16[i]));
    }
}
