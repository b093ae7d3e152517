// The second pass of a split-K product (compute/matmul_split.rs): C = act(sum over slices of the
// partial products + bias) (+ C). The slices are added in order, so the result is deterministic.
// Joined after matmul/activate.wgsl.

override WG: u32 = 256u; // Unused: 256 threads are fixed.

struct SplitParams {
    m: u32,
    n: u32,
    slices: u32,
    // bit 0: add bias[col]; bit 1: accumulate into C.
    flags: u32,
    act: u32,
    // Workgroups along x (the grid folds into y past the per-dimension limit).
    groups_x: u32,
    _p0: u32,
    _p1: u32,
}

@group(0) @binding(0) var<uniform> sp: SplitParams;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> partials: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;

@compute @workgroup_size(256)
fn splitk_sum(@builtin(workgroup_id) g: vec3<u32>, @builtin(local_invocation_index) l: u32) {
    let mn = sp.m * sp.n;
    let i = (g.y * sp.groups_x + g.x) * 256u + l;
    if (i >= mn) {
        return;
    }
    var x = 0.0;
    for (var z = 0u; z < sp.slices; z++) {
        x += partials[z * mn + i];
    }
    if ((sp.flags & 1u) != 0u) {
        x += bias[i % sp.n];
    }
    x = activate(x, sp.act);
    if ((sp.flags & 2u) != 0u) {
        x += c[i];
    }
    c[i] = x;
}
