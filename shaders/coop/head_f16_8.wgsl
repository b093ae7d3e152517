// Cooperative-matrix matmul, fragment size 8 x 8 x 8, f16 inputs, f32 accumulators: the
// simdgroup configuration of Metal (Apple7+). Joined with an output piece and
// body.wgsl by `compute::shaders`; the body's comment explains the kernel.
enable f16;
enable wgpu_cooperative_matrix;

alias In = f16;
alias FragA = coop_mat8x8<f16, A>;
alias FragB = coop_mat8x8<f16, B>;
alias FragC = coop_mat8x8<f32, C>;
const FRAG: u32 = 8u;
