//! Entry points of `shaders/reduce.wgsl`: full sum, mean and max reduced on the GPU into a
//! one-element buffer (column sums are in `colsum.rs`).
//!
//! Full reductions run in two passes through the [`Gpu`]'s scratch partials, so they create no
//! buffer; the result stays on the GPU until the caller reads it.

use super::validate::{distinct, elements};
use super::{Binding, Gpu, Kernel, SCRATCH_PARTIALS};
use crate::error::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    m: u32,
    scale: f32,
    _pad: u32,
}

const fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        shader: "reduce",
        entry,
    }
}

enum Full {
    Sum,
    Mean,
    Max,
    /// `out[0] += sum of squares`.
    AddSumSquares,
}

fn full(gpu: &Gpu, what: Full, x: &wgpu::Buffer, n: usize, out: &wgpu::Buffer) -> Result<()> {
    let op = match what {
        Full::Sum => "sum",
        Full::Mean => "mean",
        Full::Max => "max",
        Full::AddSumSquares => "add_sum_of_squares",
    };
    let n32 = elements(gpu, op, x, n)?;
    elements(gpu, op, out, 1)?;
    distinct(out, &[x])?;
    if n == 0 {
        return match what {
            Full::Sum => super::fill(gpu, out, 1, 0.0),
            Full::AddSumSquares => Ok(()),
            _ => Err(Error::invalid(
                "element count",
                format!("{op} of 0 elements is undefined"),
            )),
        };
    }
    // Each first-pass thread should get a few elements; at most SCRATCH_PARTIALS groups.
    let groups = n32.div_ceil(256 * 4).clamp(1, SCRATCH_PARTIALS);
    let (partial, last) = match what {
        Full::Max => ("partial_max", "final_max"),
        Full::AddSumSquares => ("partial_sum_squares", "final_sum_add"),
        _ => ("partial_sum", "final_sum"),
    };
    let (_guard, scratch) = gpu.scratch();
    gpu.dispatch(
        kernel(partial),
        &Params {
            n: n32,
            m: groups,
            scale: 1.0,
            _pad: 0,
        },
        &[Binding::f32s(scratch, groups as usize), Binding::f32s(x, n)],
        [groups, 1, 1],
    )?;
    let scale = match what {
        Full::Mean => (1.0 / n as f64) as f32,
        _ => 1.0,
    };
    gpu.dispatch(
        kernel(last),
        &Params {
            n: groups,
            m: 0,
            scale,
            _pad: 0,
        },
        &[
            Binding::f32s(out, 1),
            Binding::f32s(scratch, groups as usize),
        ],
        [1, 1, 1],
    )
}

/// `out[0] = x[0] + ... + x[n - 1]` (0 for `n = 0`).
pub fn sum(gpu: &Gpu, x: &wgpu::Buffer, n: usize, out: &wgpu::Buffer) -> Result<()> {
    full(gpu, Full::Sum, x, n, out)
}

/// `out[0] += x[0]² + ... + x[n - 1]²` (nothing for `n = 0`): one buffer's share of a squared
/// norm over several buffers (gradient clipping by global norm), kept on the GPU.
pub fn add_sum_of_squares(gpu: &Gpu, x: &wgpu::Buffer, n: usize, out: &wgpu::Buffer) -> Result<()> {
    full(gpu, Full::AddSumSquares, x, n, out)
}

/// `out[0]` = the mean of the first `n` values; `n = 0` is an error.
pub fn mean(gpu: &Gpu, x: &wgpu::Buffer, n: usize, out: &wgpu::Buffer) -> Result<()> {
    full(gpu, Full::Mean, x, n, out)
}

/// `out[0]` = the largest of the first `n` values (NaNs are not propagated reliably); `n = 0`
/// is an error.
pub fn max(gpu: &Gpu, x: &wgpu::Buffer, n: usize, out: &wgpu::Buffer) -> Result<()> {
    full(gpu, Full::Max, x, n, out)
}

/// Second pass of the softmax cross-entropy: mean loss into `loss[0]`, correct count into
/// `correct[0]` (u32), from `groups` partials in `scratch` (whose guard the caller holds).
pub(crate) fn finish_loss_count(
    gpu: &Gpu,
    scratch: &wgpu::Buffer,
    groups: u32,
    inv_batch: f32,
    loss: &wgpu::Buffer,
    correct: &wgpu::Buffer,
) -> Result<()> {
    gpu.dispatch(
        kernel("final_loss_count"),
        &Params {
            n: groups,
            m: 0,
            scale: inv_batch,
            _pad: 0,
        },
        &[
            Binding::f32s(loss, 1),
            Binding::f32s(scratch, SCRATCH_PARTIALS as usize * 2),
            Binding::f32s(correct, 1),
        ],
        [1, 1, 1],
    )
}
