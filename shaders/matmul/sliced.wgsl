// The slice of a split-K product (compute/matmul_split.rs): workgroup z takes k in
// [z * k_split, (z + 1) * k_split) and writes its partial product at z * m * n of the scratch
// (matmul/splitk.wgsl sums the slices); an unsplit product is slice 0 with k_split = k. The f32
// split products and every cooperative-matrix module use it (the coop kernel ran faster this way
// than with matmul/whole.wgsl's uniform bounds on the H200: 50 vs 28 TFLOP/s).

var<private> slice_lo: u32;
var<private> slice_hi: u32;
var<private> slice_base: u32;

fn begin_slice(z: u32) {
    slice_lo = min(z * p.k_split, p.k);
    slice_hi = min(p.k, slice_lo + p.k_split);
    slice_base = z * p.m * p.n;
}

fn k_lo() -> u32 {
    return slice_lo;
}

fn k_hi() -> u32 {
    return slice_hi;
}

fn c_base() -> u32 {
    return slice_base;
}
