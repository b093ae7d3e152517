
// Output: f16 (rounded from the f32 accumulator after the epilogue).
@group(0) @binding(1) var<storage, read_write> c: array<f16>;

fn out_load(i: u32) -> f32 {
    return f32(c[i]);
}

fn out_store(i: u32, x: f32) {
    c[i] = f16(x);
}
