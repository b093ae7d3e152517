//! Entry points of `shaders/layernorm/`: layer normalisation over the last dimension, forward
//! (saving each row's mean and reciprocal standard deviation) and backward, on f32 activations
//! and (the `_f16` twins, for mixed precision) on f16 activations with f32 arithmetic. Both
//! run one WGSL body; its header piece names the activations' type.
//!
//! The gamma and beta gradients are column sums over rows, accumulated into the gradients by
//! [`super::column_sums_of`] (in chunks where the scratch allows), which sums each column in a
//! fixed order, so they are deterministic without float atomics.

use super::embedding::fold_groups;
use super::validate::{distinct, distinct_written, elements, elements_of, product};
use super::{Binding, Gpu, Kernel, column_sum_partials, column_sums_of};
use crate::DType;
use crate::error::Result;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    groups_x: u32,
}

/// `entry` of the layer-norm module whose activations are `act`; f16 needs `SHADER_F16`.
fn kernel(gpu: &Gpu, act: DType, entry: &'static str) -> Result<Kernel> {
    let shader = match act {
        DType::F32 => "layernorm",
        DType::F16 => {
            gpu.require_f16()?;
            "layernorm_f16"
        }
    };
    Ok(Kernel { shader, entry })
}

/// The parameters of a layer norm's kernels.
#[derive(Debug, Clone, Copy)]
pub struct LayerNormBuffers<'a> {
    /// `[width]` scale.
    pub gamma: &'a wgpu::Buffer,
    /// `[width]` shift.
    pub beta: &'a wgpu::Buffer,
    /// `[2 * rows]`: each row's mean, then each row's `1 / sqrt(var + eps)`.
    pub stats: &'a wgpu::Buffer,
}

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta` per row of `x` `[rows, width]`; writes the
/// row statistics into `bufs.stats` for [`layer_norm_backward`].
pub fn layer_norm_forward(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    shape: [usize; 2],
    eps: f32,
    bufs: &LayerNormBuffers<'_>,
) -> Result<()> {
    forward(gpu, DType::F32, x, y, shape, eps, bufs)
}

/// As [`layer_norm_forward`], with `x` and `y` f16 (f32 arithmetic, `y` rounded once); gamma,
/// beta and the statistics stay f32. Needs `SHADER_F16` ([`Gpu::supports_f16`]).
pub fn layer_norm_forward_f16(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    shape: [usize; 2],
    eps: f32,
    bufs: &LayerNormBuffers<'_>,
) -> Result<()> {
    forward(gpu, DType::F16, x, y, shape, eps, bufs)
}

fn forward(
    gpu: &Gpu,
    act: DType,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    [rows, width]: [usize; 2],
    eps: f32,
    bufs: &LayerNormBuffers<'_>,
) -> Result<()> {
    let kernel = kernel(gpu, act, "ln_forward")?;
    let n = product("layer_norm", rows, width)?;
    elements_of(gpu, "layer_norm x", x, n, act)?;
    elements_of(gpu, "layer_norm y", y, n, act)?;
    elements(gpu, "layer_norm gamma", bufs.gamma, width)?;
    elements(gpu, "layer_norm beta", bufs.beta, width)?;
    elements(gpu, "layer_norm stats", bufs.stats, 2 * rows)?;
    distinct_written(&[y, bufs.stats])?;
    distinct(y, &[x, bufs.gamma, bufs.beta])?;
    distinct(bufs.stats, &[x, bufs.gamma, bufs.beta])?;
    if n == 0 {
        return Ok(());
    }
    let groups = fold_groups(gpu, rows as u64)?;
    gpu.dispatch(
        kernel,
        &Params {
            rows: rows as u32,
            width: width as u32,
            eps,
            groups_x: groups[0],
        },
        &[
            Binding::of(y, n, act),
            Binding::of(x, n, act),
            Binding::f32s(bufs.gamma, width),
            Binding::f32s(bufs.beta, width),
            Binding::f32s(bufs.stats, 2 * rows),
        ],
        groups,
    )
}

/// Where [`layer_norm_backward`] writes.
#[derive(Debug, Clone, Copy)]
pub struct LayerNormGrads<'a> {
    /// `[rows, width]`: the input gradient (overwritten).
    pub dx: &'a wgpu::Buffer,
    /// `[width]`: the gamma gradient (accumulated).
    pub gamma: &'a wgpu::Buffer,
    /// `[width]`: the beta gradient (accumulated).
    pub beta: &'a wgpu::Buffer,
    /// `[rows, width]` scratch (`dy * xhat`), and scratch for the column sums: at least
    /// `width` f32s; with [`column_sum_partials`]`(rows, width)` of them (where that is more)
    /// the sums of a tall input run in chunks side by side.
    pub scratch: [&'a wgpu::Buffer; 2],
}

/// The backward pass of [`layer_norm_forward`] for output gradient `dy`.
pub fn layer_norm_backward(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    shape: [usize; 2],
    bufs: &LayerNormBuffers<'_>,
    grads: &LayerNormGrads<'_>,
) -> Result<()> {
    backward(gpu, DType::F32, x, dy, shape, bufs, grads)
}

/// As [`layer_norm_backward`], with `x`, `dy` and `grads.dx` f16 (f32 arithmetic); gamma, the
/// statistics, the gamma and beta gradients and both scratch buffers stay f32. Needs
/// `SHADER_F16`.
pub fn layer_norm_backward_f16(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    shape: [usize; 2],
    bufs: &LayerNormBuffers<'_>,
    grads: &LayerNormGrads<'_>,
) -> Result<()> {
    backward(gpu, DType::F16, x, dy, shape, bufs, grads)
}

fn backward(
    gpu: &Gpu,
    act: DType,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    [rows, width]: [usize; 2],
    bufs: &LayerNormBuffers<'_>,
    grads: &LayerNormGrads<'_>,
) -> Result<()> {
    let kernel = kernel(gpu, act, "ln_backward")?;
    let n = product("layer_norm_backward", rows, width)?;
    elements_of(gpu, "layer_norm_backward x", x, n, act)?;
    elements_of(gpu, "layer_norm_backward dy", dy, n, act)?;
    elements(gpu, "layer_norm_backward gamma", bufs.gamma, width)?;
    elements(gpu, "layer_norm_backward stats", bufs.stats, 2 * rows)?;
    elements_of(gpu, "layer_norm_backward dx", grads.dx, n, act)?;
    elements(gpu, "layer_norm_backward dgamma", grads.gamma, width)?;
    elements(gpu, "layer_norm_backward dbeta", grads.beta, width)?;
    elements(gpu, "layer_norm_backward scratch", grads.scratch[0], n)?;
    elements(gpu, "layer_norm_backward scratch", grads.scratch[1], width)?;
    let written = [
        grads.dx,
        grads.gamma,
        grads.beta,
        grads.scratch[0],
        grads.scratch[1],
    ];
    distinct_written(&written)?;
    for w in written {
        distinct(w, &[x, dy, bufs.gamma, bufs.stats])?;
    }
    if n == 0 {
        return Ok(());
    }
    let groups = fold_groups(gpu, rows as u64)?;
    // Slots of shaders/layernorm/body.wgsl: 4 (beta) is the forward's only.
    gpu.dispatch_slots(
        kernel,
        &Params {
            rows: rows as u32,
            width: width as u32,
            eps: 0.0,
            groups_x: groups[0],
        },
        &[
            (1, Binding::of(grads.dx, n, act)),
            (2, Binding::of(x, n, act)),
            (3, Binding::f32s(bufs.gamma, width)),
            (5, Binding::f32s(bufs.stats, 2 * rows)),
            (6, Binding::f32s(grads.scratch[0], n)),
            (7, Binding::of(dy, n, act)),
        ],
        groups,
    )?;
    let partials = column_sum_partials(rows, width)
        .filter(|&len| grads.scratch[1].size() >= len as u64 * 4)
        .map(|_| grads.scratch[1]);
    let shape = [rows, width];
    column_sums_of(
        gpu,
        grads.scratch[0],
        DType::F32,
        shape,
        grads.gamma,
        true,
        partials,
    )?;
    column_sums_of(gpu, dy, act, shape, grads.beta, true, partials)
}
