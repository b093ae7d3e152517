//! Entry points of `shaders/compress.wgsl`: f32 values packed two per `u32` as IEEE half
//! precision and back, for exchanging gradients in half the bytes (`distributed::compress`).
//!
//! The packed layout is a little-endian `f16` array (value `2i` in the low half of word `i`),
//! so the host reads it as `u16` bits. The conversion works on the bits, rounding to nearest
//! even (as the `half` crate does), identically on every backend; values past ±65504 (and
//! infinities) are clamped to it, NaN stays NaN.

use super::validate::{distinct_written, elements};
use super::{Binding, Gpu, Kernel};
use crate::error::Result;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    _pad: [u32; 3],
}

/// `u32` words that hold `n` half values.
pub fn f16_words(n: usize) -> usize {
    n.div_ceil(2)
}

fn run(gpu: &Gpu, entry: &'static str, n: usize, bindings: &[Binding<'_>]) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let params = Params {
        n: n as u32,
        _pad: [0; 3],
    };
    gpu.dispatch(
        Kernel {
            shader: "compress",
            entry,
        },
        &params,
        bindings,
        gpu.groups_for(f16_words(n) as u64)?,
    )
}

/// `narrow = f16(wide)` over the first `n` values of `wide` (`narrow` holds
/// [`f16_words`]`(n)` words). With `residual` (`n` values), error feedback: sends
/// `f16(wide + residual)` and leaves `residual = (wide + residual) - sent`.
pub fn pack_f16(
    gpu: &Gpu,
    wide: &wgpu::Buffer,
    narrow: &wgpu::Buffer,
    residual: Option<&wgpu::Buffer>,
    n: usize,
) -> Result<()> {
    elements(gpu, "pack_f16", wide, n)?;
    elements(gpu, "pack_f16", narrow, f16_words(n))?;
    let mut bindings = vec![Binding::f32s(wide, n), Binding::f32s(narrow, f16_words(n))];
    let entry = match residual {
        Some(r) => {
            elements(gpu, "pack_f16", r, n)?;
            distinct_written(&[wide, narrow, r])?;
            bindings.push(Binding::f32s(r, n));
            "pack_f16_feedback"
        }
        None => {
            distinct_written(&[wide, narrow])?;
            "pack_f16"
        }
    };
    run(gpu, entry, n, &bindings)
}

/// `wide = f32(narrow)` over `n` values: the inverse of [`pack_f16`].
pub fn unpack_f16(gpu: &Gpu, narrow: &wgpu::Buffer, wide: &wgpu::Buffer, n: usize) -> Result<()> {
    elements(gpu, "unpack_f16", wide, n)?;
    elements(gpu, "unpack_f16", narrow, f16_words(n))?;
    distinct_written(&[wide, narrow])?;
    run(
        gpu,
        "unpack_f16",
        n,
        &[Binding::f32s(wide, n), Binding::f32s(narrow, f16_words(n))],
    )
}
