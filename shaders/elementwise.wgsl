// Elementwise kernels over flat f32 arrays.
//
// Dispatch is 2-D so that arrays longer than 65535 workgroups still fit the per-dimension
// limit: the flat index is (group.y * groups.x + group.x) * WG + local.x. WG is chosen on the
// host from the adapter's limits and set as a pipeline override constant.

override WG: u32 = 256u;

struct Params {
    n: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;

fn flat_index(group: vec3<u32>, groups: vec3<u32>, local: vec3<u32>) -> u32 {
    return (group.y * groups.x + group.x) * WG + local.x;
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
