// Cooperative-matrix matmul, fragment size 16 x 16 x 16, f16 inputs, f32 accumulators: the
// configuration NVIDIA (and AMD) Vulkan drivers offer. Joined with an output piece and
// body.wgsl by `compute::shaders`; the body's comment explains the kernel.
enable f16;
enable wgpu_cooperative_matrix;

alias In = f16;
alias FragA = coop_mat16x16<f16, A>;
alias FragB = coop_mat16x16<f16, B>;
alias FragC = coop_mat16x16<f32, C>;
const FRAG: u32 = 16u;
