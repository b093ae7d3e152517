// Fused causal self-attention, FlashAttention-2 style, forward and backward.
//
// Layout. qkv: [batch * seq, 3 * width], row b * seq + t; columns [0, width) are the queries,
// [width, 2 width) the keys, [2 width, 3 width) the values; head h owns columns
// [h * dim, (h + 1) * dim) of each part. o and do: [batch * seq, width], same head columns.
// lse and delta: [batch * heads, seq]. The grid is (tiles along seq, batch * heads).
//
// Nothing of size seq x seq is ever written: the forward pass keeps, per query row, a running
// maximum m, a running sum l and an output accumulator, and folds in one tile of keys at a
// time from workgroup memory (online softmax); it saves only lse = m + log(l) per row. The
// backward pass recomputes the probabilities p = exp(s - lse) tile by tile. With no float
// atomics in WGSL, the gradients are split by owner instead of accumulated across
// workgroups: attn_dq owns query rows (dq), attn_dkdv key rows (dk, dv). Every sum runs in a
// fixed order, so results are bit-for-bit repeatable.
//
// Two variants of each kernel, joined with this piece into separate modules, which the host
// chooses between per pass (src/compute/attention_kernels.rs): shaders/attention/rows.wgsl
// (modules attention_rows*) gives each thread one whole row (`attn_*_rows`);
// shaders/attention/blocked.wgsl (modules attention*) gives each thread a block of rows and
// columns from tiles in workgroup memory (`attn_*`). Both compute the same sums (in different
// orders).
//
// Masking: key j is visible to query i iff j <= i. Tiles wholly above the diagonal are
// skipped; masked entries get probability exactly 0.
//
// Head sizes up to DMAX = 64. Every row is 16 vec4s, components past the head size zero, and
// every loop over them has the constant trip count D4, so that a compiler unrolls them and
// keeps the per-thread rows or blocks in registers (a loop bounded by the runtime head size would
// force them into local memory). A head of 64 wastes nothing; smaller heads compute on zeros.
//
// Storage: qkv, o, do and dqkv are `act` (f32 or f16, from the header piece
// shaders/attention/f32.wgsl or f16.wgsl), converted to f32 as they are loaded; lse, delta,
// the workgroup tiles and all arithmetic are f32 in both.

override WG: u32 = 256u; // Unused: the workgroup sizes below are fixed.

struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    dim: u32,
    width: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
// attn_forward: o. attn_dq, attn_dkdv: dqkv (each writes its own part).
@group(0) @binding(1) var<storage, read_write> out: array<act>;
@group(0) @binding(2) var<storage, read> qkv: array<act>;
// Written by attn_forward, read by the backward kernels.
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<storage, read> dout: array<act>;
// delta[i] = dot(do_i, o_i): written by attn_dq, read by attn_dkdv.
@group(0) @binding(5) var<storage, read_write> delta: array<f32>;
@group(0) @binding(6) var<storage, read> o: array<act>;

const DMAX: u32 = 64u;
const D4: u32 = 16u;
const MASKED: f32 = -1e30;

// Index into qkv (and dqkv) of component 0 of row (b, t), part 0/1/2 (q/k/v), head h.
fn qkv_row(b: u32, t: u32, part: u32, h: u32) -> u32 {
    return (b * params.seq + t) * 3u * params.width + part * params.width + h * params.dim;
}

// Index into o / do of component 0 of row (b, t), head h.
fn o_row(b: u32, t: u32, h: u32) -> u32 {
    return (b * params.seq + t) * params.width + h * params.dim;
}

// Components 4c .. 4c + 3 of the row at `base` of qkv, zero past the head size.
fn qkv4(base: u32, c: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if (4u * c + k < params.dim) {
            v[k] = f32(qkv[base + 4u * c + k]);
        }
    }
    return v;
}

fn dout4(base: u32, c: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if (4u * c + k < params.dim) {
            v[k] = f32(dout[base + 4u * c + k]);
        }
    }
    return v;
}

fn o4(base: u32, c: u32) -> vec4<f32> {
    var v = vec4<f32>(0.0);
    for (var k = 0u; k < 4u; k++) {
        if (4u * c + k < params.dim) {
            v[k] = f32(o[base + 4u * c + k]);
        }
    }
    return v;
}

// Stores components 4c .. 4c + 3 that lie within the head size into `out` at `base`.
fn store4(base: u32, c: u32, v: vec4<f32>) {
    for (var k = 0u; k < 4u; k++) {
        if (4u * c + k < params.dim) {
            out[base + 4u * c + k] = act(v[k]);
        }
    }
}
