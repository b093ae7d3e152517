// The bandwidth-bound elementwise kernels over vec4s: each thread moves four vec4s (64 bytes)
// per array, issuing its loads before its stores so that 4 x 16 bytes per thread are in flight
// (a store to y may alias a load from x as far as the compiler knows, so it would not reorder
// them itself). The host runs the n % 4 tail through `elementwise.wgsl` with `base` set.
//
// A workgroup covers WG * 4 consecutive vec4s; thread l takes vec4s l, l + WG, l + 2 WG,
// l + 3 WG of it, so each load instruction of a warp reads one contiguous span.

override WG: u32 = 256u;

struct Params {
    // Number of vec4s.
    n4: u32,
    a: f32,
    b: f32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> y: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> z: array<vec4<f32>>;

fn first(group: vec3<u32>, groups: vec3<u32>, local: vec3<u32>) -> u32 {
    return (group.y * groups.x + group.x) * WG * 4u + local.x;
}

// y = x
@compute @workgroup_size(WG)
fn copy4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_id) local: vec3<u32>) {
    let i = first(group, groups, local);
    if (i + 3u * WG < params.n4) {
        let v0 = x[i];
        let v1 = x[i + WG];
        let v2 = x[i + 2u * WG];
        let v3 = x[i + 3u * WG];
        y[i] = v0;
        y[i + WG] = v1;
        y[i + 2u * WG] = v2;
        y[i + 3u * WG] = v3;
    } else {
        for (var u = 0u; u < 4u; u++) {
            let j = i + u * WG;
            if (j < params.n4) {
                y[j] = x[j];
            }
        }
    }
}

// y = a x + b y
@compute @workgroup_size(WG)
fn axpby4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_id) local: vec3<u32>) {
    let i = first(group, groups, local);
    let a = params.a;
    let b = params.b;
    if (i + 3u * WG < params.n4) {
        let x0 = x[i];
        let x1 = x[i + WG];
        let x2 = x[i + 2u * WG];
        let x3 = x[i + 3u * WG];
        let y0 = y[i];
        let y1 = y[i + WG];
        let y2 = y[i + 2u * WG];
        let y3 = y[i + 3u * WG];
        y[i] = a * x0 + b * y0;
        y[i + WG] = a * x1 + b * y1;
        y[i + 2u * WG] = a * x2 + b * y2;
        y[i + 3u * WG] = a * x3 + b * y3;
    } else {
        for (var u = 0u; u < 4u; u++) {
            let j = i + u * WG;
            if (j < params.n4) {
                y[j] = a * x[j] + b * y[j];
            }
        }
    }
}

// y = a x
@compute @workgroup_size(WG)
fn scale4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_id) local: vec3<u32>) {
    let i = first(group, groups, local);
    let a = params.a;
    if (i + 3u * WG < params.n4) {
        let x0 = x[i];
        let x1 = x[i + WG];
        let x2 = x[i + 2u * WG];
        let x3 = x[i + 3u * WG];
        y[i] = a * x0;
        y[i + WG] = a * x1;
        y[i + 2u * WG] = a * x2;
        y[i + 3u * WG] = a * x3;
    } else {
        for (var u = 0u; u < 4u; u++) {
            let j = i + u * WG;
            if (j < params.n4) {
                y[j] = a * x[j];
            }
        }
    }
}

// y = a x + b z (add: a = b = 1; sub: a = 1, b = -1; both exact in f32)
@compute @workgroup_size(WG)
fn lincomb4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
            @builtin(local_invocation_id) local: vec3<u32>) {
    let i = first(group, groups, local);
    let a = params.a;
    let b = params.b;
    if (i + 3u * WG < params.n4) {
        let x0 = x[i];
        let x1 = x[i + WG];
        let x2 = x[i + 2u * WG];
        let x3 = x[i + 3u * WG];
        let z0 = z[i];
        let z1 = z[i + WG];
        let z2 = z[i + 2u * WG];
        let z3 = z[i + 3u * WG];
        y[i] = a * x0 + b * z0;
        y[i + WG] = a * x1 + b * z1;
        y[i + 2u * WG] = a * x2 + b * z2;
        y[i + 3u * WG] = a * x3 + b * z3;
    } else {
        for (var u = 0u; u < 4u; u++) {
            let j = i + u * WG;
            if (j < params.n4) {
                y[j] = a * x[j] + b * z[j];
            }
        }
    }
}

// y = x * z
@compute @workgroup_size(WG)
fn mul4(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
        @builtin(local_invocation_id) local: vec3<u32>) {
    let i = first(group, groups, local);
    if (i + 3u * WG < params.n4) {
        let x0 = x[i];
        let x1 = x[i + WG];
        let x2 = x[i + 2u * WG];
        let x3 = x[i + 3u * WG];
        let z0 = z[i];
        let z1 = z[i + WG];
        let z2 = z[i + 2u * WG];
        let z3 = z[i + 3u * WG];
        y[i] = x0 * z0;
        y[i + WG] = x1 * z1;
        y[i + 2u * WG] = x2 * z2;
        y[i + 3u * WG] = x3 * z3;
    } else {
        for (var u = 0u; u < 4u; u++) {
            let j = i + u * WG;
            if (j < params.n4) {
                y[j] = x[j] * z[j];
            }
        }
    }
}

// The same as copy4 and axpby4 with eight vec4s per thread (a workgroup covers WG * 8 vec4s):
// twice the bytes in flight per thread, half the workgroups. Which is faster depends on the GPU;
// `Gpu::set_vec4_per_thread` picks.
fn first8(group: vec3<u32>, groups: vec3<u32>, local: vec3<u32>) -> u32 {
    return (group.y * groups.x + group.x) * WG * 8u + local.x;
}

@compute @workgroup_size(WG)
fn copy8(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
         @builtin(local_invocation_id) local: vec3<u32>) {
    let i = first8(group, groups, local);
    if (i + 7u * WG < params.n4) {
        let v0 = x[i];
        let v1 = x[i + WG];
        let v2 = x[i + 2u * WG];
        let v3 = x[i + 3u * WG];
        let v4 = x[i + 4u * WG];
        let v5 = x[i + 5u * WG];
        let v6 = x[i + 6u * WG];
        let v7 = x[i + 7u * WG];
        y[i] = v0;
        y[i + WG] = v1;
        y[i + 2u * WG] = v2;
        y[i + 3u * WG] = v3;
        y[i + 4u * WG] = v4;
        y[i + 5u * WG] = v5;
        y[i + 6u * WG] = v6;
        y[i + 7u * WG] = v7;
    } else {
        for (var u = 0u; u < 8u; u++) {
            let j = i + u * WG;
            if (j < params.n4) {
                y[j] = x[j];
            }
        }
    }
}

@compute @workgroup_size(WG)
fn axpby8(@builtin(workgroup_id) group: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>,
          @builtin(local_invocation_id) local: vec3<u32>) {
    let i = first8(group, groups, local);
    let a = params.a;
    let b = params.b;
    if (i + 7u * WG < params.n4) {
        let x0 = x[i];
        let x1 = x[i + WG];
        let x2 = x[i + 2u * WG];
        let x3 = x[i + 3u * WG];
        let x4 = x[i + 4u * WG];
        let x5 = x[i + 5u * WG];
        let x6 = x[i + 6u * WG];
        let x7 = x[i + 7u * WG];
        let y0 = y[i];
        let y1 = y[i + WG];
        let y2 = y[i + 2u * WG];
        let y3 = y[i + 3u * WG];
        let y4 = y[i + 4u * WG];
        let y5 = y[i + 5u * WG];
        let y6 = y[i + 6u * WG];
        let y7 = y[i + 7u * WG];
        y[i] = a * x0 + b * y0;
        y[i + WG] = a * x1 + b * y1;
        y[i + 2u * WG] = a * x2 + b * y2;
        y[i + 3u * WG] = a * x3 + b * y3;
        y[i + 4u * WG] = a * x4 + b * y4;
        y[i + 5u * WG] = a * x5 + b * y5;
        y[i + 6u * WG] = a * x6 + b * y6;
        y[i + 7u * WG] = a * x7 + b * y7;
    } else {
        for (var u = 0u; u < 8u; u++) {
            let j = i + u * WG;
            if (j < params.n4) {
                y[j] = a * x[j] + b * y[j];
            }
        }
    }
}
