//! Entry points of `shaders/elementwise.wgsl` and `shaders/elementwise_vec4.wgsl`: fills,
//! copies, arithmetic, activations forward and backward, and the fused bias + activation.
//!
//! Every function takes the element count `n` and checks each buffer holds at least that many
//! f32s. Bandwidth-bound operations (copy, axpby, add, sub, mul, scale, accumulate) run the
//! vec4 kernel over `n / 4 * 4` values and the scalar kernel over the remaining 0-3; the rest run
//! the scalar kernel. Output buffers must differ from input buffers ([`crate::Error::SameBuffer`]);
//! the `*_in_place` forms update their first buffer.

use super::validate::{distinct, elements, product};
use super::{Binding, Gpu, Kernel};
use crate::error::Result;

/// An activation function, for the fused matmul epilogue and the elementwise kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// The identity.
    #[default]
    None,
    /// `max(x, 0)`; its derivative is taken as 0 at 0.
    Relu,
    /// GELU, tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
    Gelu,
}

impl Activation {
    /// The code the shaders switch on.
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::None => 0,
            Activation::Relu => 1,
            Activation::Gelu => 2,
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    a: f32,
    b: f32,
    cols: u32,
    base: u32,
    _pad: [u32; 3],
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params4 {
    n4: u32,
    a: f32,
    b: f32,
    _pad: u32,
}

/// One elementwise operation: its scalar entry, its vec4 entry if it has one, and scalars.
struct Op {
    name: &'static str,
    scalar: &'static str,
    vec4: Option<&'static str>,
    a: f32,
    b: f32,
}

impl Op {
    fn new(name: &'static str, scalar: &'static str) -> Self {
        Self {
            name,
            scalar,
            vec4: None,
            a: 0.0,
            b: 0.0,
        }
    }

    fn vec4(mut self, entry: &'static str) -> Self {
        self.vec4 = Some(entry);
        self
    }

    fn ab(mut self, a: f32, b: f32) -> Self {
        self.a = a;
        self.b = b;
        self
    }

    /// Validates the buffers and records the dispatches. `y` is written; `inputs` are bound
    /// after it, at bindings 2, 3.
    fn run(&self, gpu: &Gpu, y: &wgpu::Buffer, inputs: &[&wgpu::Buffer], n: usize) -> Result<()> {
        let n32 = elements(gpu, self.name, y, n)?;
        for x in inputs {
            elements(gpu, self.name, x, n)?;
        }
        distinct(y, inputs)?;
        if n == 0 {
            return Ok(());
        }
        let mut done = 0u32;
        if let Some(entry) = self.vec4.filter(|_| n >= 4) {
            let n4 = n32 / 4;
            // copy and axpby have eight-per-thread forms too.
            let per_thread = match (entry, gpu.vec4_per_thread()) {
                ("copy4", 8) => 8,
                ("axpby4", 8) => 8,
                _ => 4,
            };
            let entry = match per_thread {
                8 if entry == "copy4" => "copy8",
                8 => "axpby8",
                _ => entry,
            };
            let mut bindings = vec![Binding::f32s(y, n4 as usize * 4)];
            bindings.extend(inputs.iter().map(|x| Binding::f32s(x, n4 as usize * 4)));
            let params = Params4 {
                n4,
                a: self.a,
                b: self.b,
                _pad: 0,
            };
            let threads = u64::from(n4).div_ceil(per_thread);
            gpu.dispatch(
                Kernel {
                    shader: "elementwise_vec4",
                    entry,
                },
                &params,
                &bindings,
                gpu.groups_for(threads)?,
            )?;
            done = n4 * 4;
        }
        if done == n32 {
            return Ok(());
        }
        let mut bindings = vec![Binding::f32s(y, n)];
        bindings.extend(inputs.iter().map(|x| Binding::f32s(x, n)));
        let params = Params {
            n: n32,
            a: self.a,
            b: self.b,
            cols: 0,
            base: done,
            _pad: [0; 3],
        };
        gpu.dispatch(
            Kernel {
                shader: "elementwise",
                entry: self.scalar,
            },
            &params,
            &bindings,
            gpu.groups_for(u64::from(n32 - done))?,
        )
    }
}

/// Sets the first `n` f32 values of `y` to `value`.
pub fn fill(gpu: &Gpu, y: &wgpu::Buffer, n: usize, value: f32) -> Result<()> {
    Op::new("fill", "fill").ab(value, 0.0).run(gpu, y, &[], n)
}

/// `y = x` over the first `n` values.
pub fn copy(gpu: &Gpu, x: &wgpu::Buffer, y: &wgpu::Buffer, n: usize) -> Result<()> {
    Op::new("copy", "copy").vec4("copy4").run(gpu, y, &[x], n)
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
    Op::new("axpby", "axpby")
        .vec4("axpby4")
        .ab(a, b)
        .run(gpu, y, &[x], n)
}

/// Gradient accumulation: `y += x` over the first `n` values.
pub fn accumulate(gpu: &Gpu, x: &wgpu::Buffer, y: &wgpu::Buffer, n: usize) -> Result<()> {
    Op::new("accumulate", "axpby")
        .vec4("axpby4")
        .ab(1.0, 1.0)
        .run(gpu, y, &[x], n)
}

/// `y = x + z`.
pub fn add(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    z: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    Op::new("add", "add")
        .vec4("lincomb4")
        .ab(1.0, 1.0)
        .run(gpu, y, &[x, z], n)
}

/// `y = x - z`.
pub fn sub(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    z: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    Op::new("sub", "sub")
        .vec4("lincomb4")
        .ab(1.0, -1.0)
        .run(gpu, y, &[x, z], n)
}

/// `y = x * z`, elementwise.
pub fn mul(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    z: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    Op::new("mul", "mul").vec4("mul4").run(gpu, y, &[x, z], n)
}

/// `y += x`.
pub fn add_in_place(gpu: &Gpu, y: &wgpu::Buffer, x: &wgpu::Buffer, n: usize) -> Result<()> {
    accumulate(gpu, x, y, n)
}

/// `y -= x`.
pub fn sub_in_place(gpu: &Gpu, y: &wgpu::Buffer, x: &wgpu::Buffer, n: usize) -> Result<()> {
    Op::new("sub_in_place", "sub_in_place")
        .vec4("axpby4")
        .ab(-1.0, 1.0)
        .run(gpu, y, &[x], n)
}

/// `y *= x`, elementwise.
pub fn mul_in_place(gpu: &Gpu, y: &wgpu::Buffer, x: &wgpu::Buffer, n: usize) -> Result<()> {
    Op::new("mul_in_place", "mul_in_place").run(gpu, y, &[x], n)
}

/// `y = a * x`.
pub fn scale(gpu: &Gpu, a: f32, x: &wgpu::Buffer, y: &wgpu::Buffer, n: usize) -> Result<()> {
    Op::new("scale", "scale")
        .vec4("scale4")
        .ab(a, 0.0)
        .run(gpu, y, &[x], n)
}

/// `y *= a`.
pub fn scale_in_place(gpu: &Gpu, a: f32, y: &wgpu::Buffer, n: usize) -> Result<()> {
    Op::new("scale_in_place", "scale_in_place")
        .ab(a, 0.0)
        .run(gpu, y, &[], n)
}

/// `y = act(x)`.
pub fn activation_forward(
    gpu: &Gpu,
    act: Activation,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    let entry = match act {
        Activation::None => return copy(gpu, x, y, n),
        Activation::Relu => "relu_forward",
        Activation::Gelu => "gelu_forward",
    };
    Op::new("activation_forward", entry).run(gpu, y, &[x], n)
}

/// `y = act(y)`.
pub fn activation_in_place(gpu: &Gpu, act: Activation, y: &wgpu::Buffer, n: usize) -> Result<()> {
    let entry = match act {
        Activation::None => {
            elements(gpu, "activation_in_place", y, n)?;
            return Ok(());
        }
        Activation::Relu => "relu_in_place",
        Activation::Gelu => "gelu_in_place",
    };
    Op::new("activation_in_place", entry).run(gpu, y, &[], n)
}

/// `grad_input = grad_output * act'(input)`: the backward pass of [`activation_forward`],
/// where `input` is what the activation was applied to.
pub fn activation_backward(
    gpu: &Gpu,
    act: Activation,
    grad_output: &wgpu::Buffer,
    input: &wgpu::Buffer,
    grad_input: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    let entry = match act {
        Activation::None => return copy(gpu, grad_output, grad_input, n),
        Activation::Relu => "relu_backward",
        Activation::Gelu => "gelu_backward",
    };
    Op::new("activation_backward", entry).run(gpu, grad_input, &[grad_output, input], n)
}

/// `grad *= act'(input)`: [`activation_backward`] overwriting the output gradient.
pub fn activation_backward_in_place(
    gpu: &Gpu,
    act: Activation,
    grad: &wgpu::Buffer,
    input: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    let entry = match act {
        Activation::None => {
            elements(gpu, "activation_backward_in_place", grad, n)?;
            elements(gpu, "activation_backward_in_place", input, n)?;
            return Ok(());
        }
        Activation::Relu => "relu_backward_in_place",
        Activation::Gelu => "gelu_backward_in_place",
    };
    Op::new("activation_backward_in_place", entry).run(gpu, grad, &[input], n)
}

/// `y[r, c] = act(y[r, c] + bias[c])` over a row-major `[rows, cols]` matrix, in place: the
/// epilogue of a layer whose product was computed without one.
pub fn bias_activation(
    gpu: &Gpu,
    y: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    act: Activation,
) -> Result<()> {
    let n = product("bias_activation", rows, cols)?;
    let cols32 = elements(gpu, "bias_activation bias", bias, cols)?;
    distinct(y, &[bias])?;
    if n == 0 {
        return Ok(());
    }
    let entry = match act {
        Activation::None => "bias_none",
        Activation::Relu => "bias_relu",
        Activation::Gelu => "bias_gelu",
    };
    let params = Params {
        n: elements(gpu, "bias_activation y", y, n)?,
        a: 0.0,
        b: 0.0,
        cols: cols32,
        base: 0,
        _pad: [0; 3],
    };
    gpu.dispatch(
        Kernel {
            shader: "elementwise",
            entry,
        },
        &params,
        &[Binding::f32s(y, n), Binding::f32s(bias, cols)],
        gpu.groups_for(n as u64)?,
    )
}
