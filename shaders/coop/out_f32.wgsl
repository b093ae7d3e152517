
// Output: f32.
@group(0) @binding(1) var<storage, read_write> c: array<f32>;

fn out_load(i: u32) -> f32 {
    return c[i];
}

fn out_store(i: u32, x: f32) {
    c[i] = x;
}
