// The matmul epilogue's activation, shared by the tiles (matmul/common.wgsl) and the split-K sum
// (matmul/splitk.wgsl): 0 none, 1 ReLU, 2 GELU (tanh approximation).

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;

fn activate(x: f32, act: u32) -> f32 {
    if (act == 1u) {
        return max(x, 0.0);
    }
    if (act == 2u) {
        // 1 + tanh(u) from e = exp(-2|u|), as in elementwise.wgsl: no cancellation, no overflow.
        let u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
        let e = exp(-2.0 * abs(u));
        let one_plus_t = select(2.0 * e, 2.0, u >= 0.0) / (1.0 + e);
        return 0.5 * x * one_plus_t;
    }
    return x;
}

