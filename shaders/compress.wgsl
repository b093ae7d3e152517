// f32 <-> f16 packing of gradient buckets for a compressed exchange (distributed/compress.rs).
//
// `narrow` holds two IEEE half values per u32 (value 2i in the low half, 2i + 1 in the high
// half, as pack2x16float writes them), so the host sees a plain little-endian f16 array.
// pack2x16float needs no shader-f16 feature, so this runs on every backend. Values beyond the
// f16 range are clamped to +-65504 first (pack2x16float of them is indeterminate); with error
// feedback the clamped part stays in the residual.
//
// One thread per pair; dispatch is 2-D as in elementwise.wgsl: the pair index is
// (group.y * groups.x + group.x) * WG + local.x.

override WG: u32 = 256u;

const F16_MAX: f32 = 65504.0;

struct Params {
    // Values in the bucket (the last pair of an odd count has a zero high half).
    n: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> wide: array<f32>;
@group(0) @binding(2) var<storage, read_write> narrow: array<u32>;
@group(0) @binding(3) var<storage, read_write> residual: array<f32>;

fn pair_index(group: vec3<u32>, groups: vec3<u32>, local: vec3<u32>) -> u32 {
    return (group.y * groups.x + group.x) * WG + local.x;
}

fn load_pair(a: u32) -> vec2<f32> {
    var v = vec2<f32>(wide[a], 0.0);
    if (a + 1u < params.n) {
        v.y = wide[a + 1u];
    }
    return v;
}

fn to_half_pair(v: vec2<f32>) -> u32 {
    return pack2x16float(clamp(v, vec2<f32>(-F16_MAX), vec2<f32>(F16_MAX)));
}

// narrow[i] = f16(wide[2i], wide[2i + 1]).
@compute @workgroup_size(WG)
fn pack_f16(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let i = pair_index(group, groups, local);
    if (i >= (params.n + 1u) / 2u) {
        return;
    }
    narrow[i] = to_half_pair(load_pair(2u * i));
}

// Error feedback: sends f16(wide + residual) and keeps what rounding lost in the residual,
// so that it is sent with the next step's gradient instead of being dropped.
@compute @workgroup_size(WG)
fn pack_f16_feedback(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let i = pair_index(group, groups, local);
    if (i >= (params.n + 1u) / 2u) {
        return;
    }
    let a = 2u * i;
    let has_b = a + 1u < params.n;
    var v = load_pair(a);
    v.x += residual[a];
    if (has_b) {
        v.y += residual[a + 1u];
    }
    let h = to_half_pair(v);
    let sent = unpack2x16float(h);
    residual[a] = v.x - sent.x;
    if (has_b) {
        residual[a + 1u] = v.y - sent.y;
    }
    narrow[i] = h;
}

// wide[2i], wide[2i + 1] = f32(narrow[i]).
@compute @workgroup_size(WG)
fn unpack_f16(
    @builtin(workgroup_id) group: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_id) local: vec3<u32>,
) {
    let i = pair_index(group, groups, local);
    if (i >= (params.n + 1u) / 2u) {
        return;
    }
    let v = unpack2x16float(narrow[i]);
    let a = 2u * i;
    wide[a] = v.x;
    if (a + 1u < params.n) {
        wide[a + 1u] = v.y;
    }
}
