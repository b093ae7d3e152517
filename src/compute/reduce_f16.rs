//! Entry point of `shaders/reduce_f16.wgsl`: column sums of an f16 matrix into f32, the bias
//! gradient of a layer whose output gradient is f16, optionally added to what `out` holds (so
//! the bias gradient accumulates without a scratch buffer and a second pass).

use super::validate::{distinct, elements, elements_of, product};
use super::{Binding, Gpu, Kernel};
use crate::DType;
use crate::error::Result;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    accumulate: u32,
    _pad: u32,
}

/// `out[c] (+)= sum over r of x[r, c]` for an f16 row-major `[rows, cols]` matrix; `out` holds
/// `cols` f32 values, added to when `accumulate`.
pub fn column_sums_f16(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    out: &wgpu::Buffer,
    accumulate: bool,
) -> Result<()> {
    gpu.require_f16()?;
    let n = product("column_sums_f16", rows, cols)?;
    let rows32 = elements_of(gpu, "column_sums_f16 x", x, n, DType::F16).map(|_| rows as u32)?;
    let cols32 = elements(gpu, "column_sums_f16 out", out, cols)?;
    distinct(out, &[x])?;
    if cols == 0 {
        return Ok(());
    }
    let blocks = cols32.div_ceil(32);
    let x_groups = blocks.min(gpu.max_groups_per_dim());
    gpu.dispatch(
        Kernel {
            shader: "reduce_f16",
            entry: "col_sums_h",
        },
        &Params {
            rows: rows32,
            cols: cols32,
            accumulate: u32::from(accumulate),
            _pad: 0,
        },
        &[Binding::f32s(out, cols), Binding::of(x, n, DType::F16)],
        [x_groups, blocks.div_ceil(x_groups), 1],
    )
}
