//! Entry points of `shaders/elementwise_f16.wgsl`: the elementwise kernels of training on f16
//! storage (f32 arithmetic inside), and the conversions between f32 and f16.
//!
//! Same contracts as the f32 functions of the same names (see `elementwise.rs`), with every
//! f16 buffer holding `n` f16 values (two per word) and the bias of [`bias_activation_f16`] in
//! f32. Results are rounded to f16 once, on store; values past f16's range become infinities.

use super::elementwise::Activation;
use super::validate::{distinct, elements, elements_of, product};
use super::{Binding, Gpu, Kernel};
use crate::DType;
use crate::error::Result;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    a: f32,
    cols: u32,
    _pad: u32,
}

/// Validates `y` (written, of `y_type`) and `inputs` (each with its type), then records one
/// dispatch of `entry` over `n` elements.
fn run(
    gpu: &Gpu,
    op: &'static str,
    entry: &'static str,
    y: (&wgpu::Buffer, DType),
    inputs: &[(&wgpu::Buffer, DType)],
    n: usize,
    a: f32,
) -> Result<()> {
    gpu.require_f16()?;
    let n32 = elements_of(gpu, op, y.0, n, y.1)?;
    for (x, t) in inputs {
        elements_of(gpu, op, x, n, *t)?;
    }
    let reads: Vec<&wgpu::Buffer> = inputs.iter().map(|(x, _)| *x).collect();
    distinct(y.0, &reads)?;
    if n == 0 {
        return Ok(());
    }
    let mut bindings = vec![Binding::of(y.0, n, y.1)];
    bindings.extend(inputs.iter().map(|(x, t)| Binding::of(x, n, *t)));
    gpu.dispatch(
        Kernel {
            shader: "elementwise_f16",
            entry,
        },
        &Params {
            n: n32,
            a,
            cols: 0,
            _pad: 0,
        },
        &bindings,
        gpu.groups_for(n as u64)?,
    )
}

const H: DType = DType::F16;

/// Converts `n` values of `src` (of type `from`) into `dst` (of type `to`). f32 to f16 rounds
/// to nearest even and overflows to infinity; f16 to f32 is exact; the same type is a copy.
pub fn convert(
    gpu: &Gpu,
    src: &wgpu::Buffer,
    from: DType,
    dst: &wgpu::Buffer,
    to: DType,
    n: usize,
) -> Result<()> {
    match (from, to) {
        (DType::F32, DType::F32) => super::copy(gpu, src, dst, n),
        (DType::F32, DType::F16) => run(
            gpu,
            "convert",
            "to_f16",
            (dst, H),
            &[(src, DType::F32)],
            n,
            0.0,
        ),
        (DType::F16, DType::F32) => run(
            gpu,
            "convert",
            "to_f32",
            (dst, DType::F32),
            &[(src, H)],
            n,
            0.0,
        ),
        (DType::F16, DType::F16) => {
            // A bit copy: an f32 kernel could canonicalise pairs of f16s that read as NaNs.
            elements_of(gpu, "convert", src, n, H)?;
            elements_of(gpu, "convert", dst, n, H)?;
            distinct(dst, &[src])?;
            if n == 0 {
                return Ok(());
            }
            let bytes = (n * 2).next_multiple_of(4) as u64;
            crate::backend::Backend::copy(&**gpu.backend(), src, 0, dst, 0, bytes)
        }
    }
}

/// `y = act(x)` on f16.
pub fn activation_forward_f16(
    gpu: &Gpu,
    act: Activation,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    let entry = match act {
        Activation::None => return convert(gpu, x, H, y, H, n),
        Activation::Relu => "relu_forward_h",
        Activation::Gelu => "gelu_forward_h",
    };
    run(
        gpu,
        "activation_forward_f16",
        entry,
        (y, H),
        &[(x, H)],
        n,
        0.0,
    )
}

/// `grad_input = grad_output * act'(input)` on f16.
pub fn activation_backward_f16(
    gpu: &Gpu,
    act: Activation,
    grad_output: &wgpu::Buffer,
    input: &wgpu::Buffer,
    grad_input: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    let entry = match act {
        Activation::None => return convert(gpu, grad_output, H, grad_input, H, n),
        Activation::Relu => "relu_backward_h",
        Activation::Gelu => "gelu_backward_h",
    };
    let inputs = [(grad_output, H), (input, H)];
    run(
        gpu,
        "activation_backward_f16",
        entry,
        (grad_input, H),
        &inputs,
        n,
        0.0,
    )
}

/// `grad *= act'(input)` on f16.
pub fn activation_backward_in_place_f16(
    gpu: &Gpu,
    act: Activation,
    grad: &wgpu::Buffer,
    input: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    let entry = match act {
        Activation::None => {
            gpu.require_f16()?;
            elements_of(gpu, "activation_backward_in_place_f16", grad, n, H)?;
            elements_of(gpu, "activation_backward_in_place_f16", input, n, H)?;
            return Ok(());
        }
        Activation::Relu => "relu_backward_in_place_h",
        Activation::Gelu => "gelu_backward_in_place_h",
    };
    run(
        gpu,
        "activation_backward_in_place_f16",
        entry,
        (grad, H),
        &[(input, H)],
        n,
        0.0,
    )
}

/// `y[r, c] = act(y[r, c] + bias[c])` in place over an f16 `[rows, cols]` matrix, `bias` f32.
pub fn bias_activation_f16(
    gpu: &Gpu,
    y: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    act: Activation,
) -> Result<()> {
    gpu.require_f16()?;
    let n = product("bias_activation_f16", rows, cols)?;
    let cols32 = elements(gpu, "bias_activation_f16 bias", bias, cols)?;
    let n32 = elements_of(gpu, "bias_activation_f16 y", y, n, H)?;
    distinct(y, &[bias])?;
    if n == 0 {
        return Ok(());
    }
    let entry = match act {
        Activation::None => "bias_none_h",
        Activation::Relu => "bias_relu_h",
        Activation::Gelu => "bias_gelu_h",
    };
    gpu.dispatch(
        Kernel {
            shader: "elementwise_f16",
            entry,
        },
        &Params {
            n: n32,
            a: 0.0,
            cols: cols32,
            _pad: 0,
        },
        &[Binding::of(y, n, H), Binding::f32s(bias, cols)],
        gpu.groups_for(n as u64)?,
    )
}

/// `y += x` on f16 (activation gradients meeting at a join).
pub fn accumulate_f16(gpu: &Gpu, x: &wgpu::Buffer, y: &wgpu::Buffer, n: usize) -> Result<()> {
    run(
        gpu,
        "accumulate_f16",
        "accumulate_h",
        (y, H),
        &[(x, H)],
        n,
        0.0,
    )
}

/// `y = x + z` on f16.
pub fn add_f16(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    z: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    run(gpu, "add_f16", "add_h", (y, H), &[(x, H), (z, H)], n, 0.0)
}

/// `y *= a` on f16.
pub fn scale_in_place_f16(gpu: &Gpu, a: f32, y: &wgpu::Buffer, n: usize) -> Result<()> {
    run(
        gpu,
        "scale_in_place_f16",
        "scale_in_place_h",
        (y, H),
        &[],
        n,
        a,
    )
}
