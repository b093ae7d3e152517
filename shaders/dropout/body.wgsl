// Dropout with a counter-based mask: element i of step `step` under seed `seed` is kept iff
// hash(seed, step, i) >= threshold, where threshold = p * 2^32. Kept elements are scaled by
// 1 / (1 - p). The mask is never stored: backward recomputes it from the same three numbers,
// so a checkpointed recompute and the plain pass drop the same elements.
//
// The hash is Wellons' lowbias32 applied to a chain of the three words (a strong 32-bit
// integer mixer, cheap on every GPU).
//
// Storage: x and y are `act` (f32 or f16, from the header piece shaders/dropout/f32.wgsl or
// f16.wgsl); the mask depends only on (seed, step, i), so both storage types drop the same
// elements.

override WG: u32 = 256u; // Unused: the workgroup sizes below are fixed.

struct Params {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    threshold: u32,
    scale: f32,
    groups_x: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> y: array<act>;
@group(0) @binding(2) var<storage, read> x: array<act>;

fn lowbias32(v: u32) -> u32 {
    var x = v;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

fn keep(i: u32) -> bool {
    let key = lowbias32(params.seed_lo ^ lowbias32(params.seed_hi ^ lowbias32(params.step)));
    return lowbias32(i ^ key) >= params.threshold;
}

// y = x * mask * scale (forward: x is the input; backward: x is the output gradient).
@compute @workgroup_size(256)
fn dropout_apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * params.groups_x * 256u;
    if (i >= params.n) {
        return;
    }
    y[i] = act(select(0.0, f32(x[i]) * params.scale, keep(i)));
}
