//! Entry points of `shaders/layernorm.wgsl`: layer normalisation over the last dimension,
//! forward (saving each row's mean and reciprocal standard deviation) and backward.
//!
//! The gamma and beta gradients are column sums over rows; they go through
//! [`super::column_sums`], which sums each column in a fixed order, so they are deterministic
//! without float atomics.

use super::embedding::fold_groups;
use super::validate::{distinct, distinct_written, elements, product};
use super::{Binding, Gpu, Kernel, accumulate, column_sums};
use crate::error::Result;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    width: u32,
    eps: f32,
    groups_x: u32,
}

const fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        shader: "layernorm",
        entry,
    }
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
    [rows, width]: [usize; 2],
    eps: f32,
    bufs: &LayerNormBuffers<'_>,
) -> Result<()> {
    let n = product("layer_norm", rows, width)?;
    elements(gpu, "layer_norm x", x, n)?;
    elements(gpu, "layer_norm y", y, n)?;
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
        kernel("ln_forward"),
        &Params {
            rows: rows as u32,
            width: width as u32,
            eps,
            groups_x: groups[0],
        },
        &[
            Binding::f32s(y, n),
            Binding::f32s(x, n),
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
    /// `[rows, width]` scratch (`dy * xhat`), and `[width]` scratch for one column sum.
    pub scratch: [&'a wgpu::Buffer; 2],
}

/// The backward pass of [`layer_norm_forward`] for output gradient `dy`.
pub fn layer_norm_backward(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    [rows, width]: [usize; 2],
    bufs: &LayerNormBuffers<'_>,
    grads: &LayerNormGrads<'_>,
) -> Result<()> {
    let n = product("layer_norm_backward", rows, width)?;
    elements(gpu, "layer_norm_backward x", x, n)?;
    elements(gpu, "layer_norm_backward dy", dy, n)?;
    elements(gpu, "layer_norm_backward gamma", bufs.gamma, width)?;
    elements(gpu, "layer_norm_backward stats", bufs.stats, 2 * rows)?;
    elements(gpu, "layer_norm_backward dx", grads.dx, n)?;
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
    gpu.dispatch(
        kernel("ln_backward"),
        &Params {
            rows: rows as u32,
            width: width as u32,
            eps: 0.0,
            groups_x: groups[0],
        },
        &[
            Binding::f32s(grads.dx, n),
            Binding::f32s(x, n),
            Binding::f32s(bufs.gamma, width),
            Binding::f32s(dy, n),
            Binding::f32s(bufs.stats, 2 * rows),
            Binding::f32s(grads.scratch[0], n),
        ],
        groups,
    )?;
    column_sums(gpu, grads.scratch[0], rows, width, grads.scratch[1])?;
    accumulate(gpu, grads.scratch[1], grads.gamma, width)?;
    column_sums(gpu, dy, rows, width, grads.scratch[1])?;
    accumulate(gpu, grads.scratch[1], grads.beta, width)
}
