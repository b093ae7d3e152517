//! Entry points of `shaders/elementwise.wgsl`.

use super::{Binding, Gpu, Kernel};
use crate::error::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

const FILL: Kernel = Kernel {
    shader: "elementwise",
    entry: "fill",
};
const AXPBY: Kernel = Kernel {
    shader: "elementwise",
    entry: "axpby",
};

fn check_len(op: &'static str, buffer: &wgpu::Buffer, n: usize) -> Result<u32> {
    let needed = n as u64 * 4;
    if needed > buffer.size() {
        return Err(Error::OutOfBounds {
            op,
            offset: 0,
            len: needed,
            size: buffer.size(),
        });
    }
    u32::try_from(n).map_err(|_| Error::invalid("element count", format!("{n} exceeds u32::MAX")))
}

/// Sets the first `n` f32 values of `y` to `value`.
pub fn fill(gpu: &Gpu, y: &wgpu::Buffer, n: usize, value: f32) -> Result<()> {
    let count = check_len("fill", y, n)?;
    if n == 0 {
        return Ok(());
    }
    let params = Params {
        n: count,
        a: value,
        b: 0.0,
        _pad: 0,
    };
    // `x` is unused by `fill` but the shared layout wants binding 2 only where an entry uses it.
    gpu.dispatch(
        FILL,
        &params,
        &[Binding::f32s(y, n)],
        gpu.groups_for(n as u64)?,
    )
}

/// `y = a * x + b * y` over the first `n` values.
pub fn axpby(
    gpu: &Gpu,
    a: f32,
    x: &wgpu::Buffer,
    b: f32,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    let count = check_len("axpby y", y, n)?;
    check_len("axpby x", x, n)?;
    if x == y {
        return Err(Error::SameBuffer);
    }
    if n == 0 {
        return Ok(());
    }
    let params = Params {
        n: count,
        a,
        b,
        _pad: 0,
    };
    gpu.dispatch(
        AXPBY,
        &params,
        &[Binding::f32s(y, n), Binding::f32s(x, n)],
        gpu.groups_for(n as u64)?,
    )
}
