// Cooperative-matrix matmul, fragment size 8 x 8 x 8, f32 inputs and accumulators: Metal's
// simdgroup_float8x8 (Apple7+), which serves fp32 models. Joined with out_f32.wgsl and
// body.wgsl by `compute::shaders`; the body's comment explains the kernel.
enable wgpu_cooperative_matrix;

alias In = f32;
alias FragA = coop_mat8x8<f32, A>;
alias FragB = coop_mat8x8<f32, B>;
alias FragC = coop_mat8x8<f32, C>;
const FRAG: u32 = 8u;
