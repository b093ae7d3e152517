// Reductions: full sums and maxima in two passes (each workgroup of the first pass reduces a
// strided share of the input into one partial; one workgroup of the second pass reduces the
// partials; column sums are in colsum/). Deterministic: no atomics,
// fixed reduction trees, so the same input gives the same bits on every run.

override WG: u32 = 256u; // Unused: these kernels fix 256 threads (every adapter allows it).

struct Params {
    // partial_*: n and the number of first-pass workgroups.
    // final_*: the number of partials in n, scale of the result in scale.
    n: u32,
    m: u32,
    scale: f32,
    _p0: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> count_out: array<u32>;

// Offset of the second set of partials (counts) in the scratch buffer; see compute::mod.
const PARTIALS: u32 = 1024u;

var<workgroup> shared_vals: array<f32, 256>;

// Tree-reduces shared_vals[0..256] into shared_vals[0], by sum (is_max false) or max.
fn reduce_shared(l: u32, is_max: bool) {
    for (var width = 128u; width > 0u; width >>= 1u) {
        workgroupBarrier();
        if (l < width) {
            let o = shared_vals[l + width];
            if (is_max) {
                shared_vals[l] = max(shared_vals[l], o);
            } else {
                shared_vals[l] = shared_vals[l] + o;
            }
        }
    }
    workgroupBarrier();
}

// out[g] = sum of x[i] for i = g * 256 + l + k * (groups * 256); n = params.n.
@compute @workgroup_size(256)
fn partial_sum(@builtin(workgroup_id) g: vec3<u32>, @builtin(num_workgroups) gs: vec3<u32>,
               @builtin(local_invocation_index) l: u32) {
    var acc = 0.0;
    for (var i = g.x * 256u + l; i < params.n; i += gs.x * 256u) {
        acc += x[i];
    }
    shared_vals[l] = acc;
    reduce_shared(l, false);
    if (l == 0u) {
        out[g.x] = shared_vals[0];
    }
}

// As partial_sum, of the squares: the squared norm (gradient clipping by global norm).
@compute @workgroup_size(256)
fn partial_sum_squares(@builtin(workgroup_id) g: vec3<u32>, @builtin(num_workgroups) gs: vec3<u32>,
                       @builtin(local_invocation_index) l: u32) {
    var acc = 0.0;
    for (var i = g.x * 256u + l; i < params.n; i += gs.x * 256u) {
        acc += x[i] * x[i];
    }
    shared_vals[l] = acc;
    reduce_shared(l, false);
    if (l == 0u) {
        out[g.x] = shared_vals[0];
    }
}

// As partial_sum, with max. Threads past the end contribute x[0] (n >= 1 is checked on the host).
@compute @workgroup_size(256)
fn partial_max(@builtin(workgroup_id) g: vec3<u32>, @builtin(num_workgroups) gs: vec3<u32>,
               @builtin(local_invocation_index) l: u32) {
    var acc = x[0];
    for (var i = g.x * 256u + l; i < params.n; i += gs.x * 256u) {
        acc = max(acc, x[i]);
    }
    shared_vals[l] = acc;
    reduce_shared(l, true);
    if (l == 0u) {
        out[g.x] = shared_vals[0];
    }
}

// out[0] = scale * sum of x[0..n] (one workgroup).
@compute @workgroup_size(256)
fn final_sum(@builtin(local_invocation_index) l: u32) {
    var acc = 0.0;
    for (var i = l; i < params.n; i += 256u) {
        acc += x[i];
    }
    shared_vals[l] = acc;
    reduce_shared(l, false);
    if (l == 0u) {
        out[0] = shared_vals[0] * params.scale;
    }
}

// out[0] += scale * sum of x[0..n] (one workgroup): one buffer's share of a running total.
@compute @workgroup_size(256)
fn final_sum_add(@builtin(local_invocation_index) l: u32) {
    var acc = 0.0;
    for (var i = l; i < params.n; i += 256u) {
        acc += x[i];
    }
    shared_vals[l] = acc;
    reduce_shared(l, false);
    if (l == 0u) {
        out[0] = out[0] + shared_vals[0] * params.scale;
    }
}

// out[0] = max of x[0..n] (one workgroup).
@compute @workgroup_size(256)
fn final_max(@builtin(local_invocation_index) l: u32) {
    var acc = x[0];
    for (var i = l; i < params.n; i += 256u) {
        acc = max(acc, x[i]);
    }
    shared_vals[l] = acc;
    reduce_shared(l, true);
    if (l == 0u) {
        out[0] = shared_vals[0];
    }
}

// The second pass of softmax_xent: out[0] = scale * sum of x[0..n] (the mean loss) and
// count_out[0] = sum of x[PARTIALS..PARTIALS + n] (correct predictions, exact in f32 below 2^24).
@compute @workgroup_size(256)
fn final_loss_count(@builtin(local_invocation_index) l: u32) {
    var loss = 0.0;
    var count = 0.0;
    for (var i = l; i < params.n; i += 256u) {
        loss += x[i];
        count += x[PARTIALS + i];
    }
    shared_vals[l] = loss;
    reduce_shared(l, false);
    let total = shared_vals[0];
    workgroupBarrier();
    shared_vals[l] = count;
    reduce_shared(l, false);
    if (l == 0u) {
        out[0] = total * params.scale;
        count_out[0] = u32(shared_vals[0]);
    }
}
