// f32 <-> f16 packing of gradient buckets for a compressed exchange (distributed/compress.rs).
//
// `narrow` holds two IEEE half values per u32 (value 2i in the low half, 2i + 1 in the high
// half), so the host sees a plain little-endian f16 array. The conversion is done on the bits,
// with round to nearest even (what the `half` crate and F16C do), so it is the same on every
// backend and needs neither shader-f16 nor pack2x16float (which naga gates behind a downlevel
// capability, and whose rounding WGSL leaves to the implementation). Finite values beyond the
// f16 range, and infinities, are clamped to +-65504; NaN stays NaN. With error feedback the
// clamped part stays in the residual.
//
// One thread per pair; dispatch is 2-D as in elementwise.wgsl: the pair index is
// (group.y * groups.x + group.x) * WG + local.x.

override WG: u32 = 256u;

// 2^-24, the f16 subnormal step (exact in f32).
const F16_STEP: f32 = 5.9604644775390625e-8;

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

// The f16 bits of `v`, rounded to nearest even; beyond +-65504 (from 65520 on, which would
// round to infinity) clamped to it.
fn f16_bits(v: f32) -> u32 {
    let x = bitcast<u32>(v);
    let sign = (x >> 16u) & 0x8000u;
    let a = x & 0x7fffffffu;
    if (a > 0x7f800000u) {
        return sign | 0x7e00u;
    }
    if (a >= 0x477ff000u) {
        return sign | 0x7bffu;
    }
    if (a >= 0x38800000u) {
        // Normal: rebias the exponent (127 -> 15), drop 13 mantissa bits rounding to even; a
        // carry out of the mantissa moves into the exponent, as it should.
        let m = a - 0x38000000u;
        return sign | ((m + 0xfffu + ((m >> 13u) & 1u)) >> 13u);
    }
    if (a <= 0x33000000u) {
        // At most 2^-25: rounds to zero (2^-25 itself ties to the even zero).
        return sign;
    }
    // Subnormal: k 2^-24 with k = mantissa (implicit bit set) >> (126 - exponent), rounded
    // to even on the dropped bits (14 to 24 of them).
    let shift = 126u - (a >> 23u);
    let mant = (a & 0x7fffffu) | 0x800000u;
    let k = mant >> shift;
    let rest = mant & ((1u << shift) - 1u);
    let halfway = 1u << (shift - 1u);
    let up = rest > halfway || (rest == halfway && (k & 1u) == 1u);
    return sign | (k + select(0u, 1u, up));
}

// The f32 value of the f16 bits `h` (exact).
fn f16_value(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        let v = f32(m) * F16_STEP;
        return select(v, -v, sign != 0u);
    }
    if (e == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

fn to_half_pair(v: vec2<f32>) -> u32 {
    return f16_bits(v.x) | (f16_bits(v.y) << 16u);
}

fn from_half_pair(w: u32) -> vec2<f32> {
    return vec2<f32>(f16_value(w & 0xffffu), f16_value(w >> 16u));
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
    let sent = from_half_pair(h);
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
    let v = from_half_pair(narrow[i]);
    let a = 2u * i;
    wide[a] = v.x;
    if (a + 1u < params.n) {
        wide[a + 1u] = v.y;
    }
}
