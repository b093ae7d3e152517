//! Tensor operations that pick their kernel by the operands' [`DType`].
//!
//! The kernels in [`crate::compute`] take raw buffers and explicit dimensions, one function per
//! storage type; the layers above work on [`Tensor`]s and should not care which type a model
//! runs in. These functions read shapes and types from the tensors, check that the types fit
//! together (a typed [`Error::DType`] otherwise) and dispatch the f32 or the f16 kernel. The f32
//! path is the same single call the layers made before: no extra work per dispatch.

use crate::DType;
use crate::compute::{self, Activation, MatmulOptions};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// `c = act(op(a) · op(b) + bias) (+ c)` for 2-D tensors (shapes as stored, see
/// [`compute::matmul`]). `a` and `b` share a type; with f32 inputs `c` is f32, with f16 inputs
/// `c` is f16 or f32 (f32 accumulates weight gradients). The bias, if any, is f32.
pub fn matmul(a: &Tensor, b: &Tensor, c: &Tensor, opts: &MatmulOptions<'_>) -> Result<()> {
    let a_shape = a.dims2("matmul")?;
    let b_shape = b.dims2("matmul")?;
    let gpu = a.context().gpu();
    match (a.dtype(), b.dtype(), c.dtype()) {
        (DType::F32, DType::F32, DType::F32) => {
            compute::matmul(gpu, a.raw(), a_shape, b.raw(), b_shape, c.raw(), opts)
        }
        (DType::F16, DType::F16, c_dtype) => compute::matmul_f16(
            gpu,
            a.raw(),
            a_shape,
            b.raw(),
            b_shape,
            c.raw(),
            c_dtype,
            opts,
        ),
        (DType::F32, DType::F32, found) => Err(Error::DType {
            op: "matmul",
            what: "the output",
            expected: DType::F32,
            found,
        }),
        (ta, tb, _) => Err(Error::DType {
            op: "matmul",
            what: "B",
            expected: ta,
            found: tb,
        }),
    }
}

/// `grad *= act'(input)` elementwise; both tensors of one type and length.
pub fn activation_backward_in_place(act: Activation, grad: &Tensor, input: &Tensor) -> Result<()> {
    input.expect_dtype(
        "activation_backward",
        "the activation's input",
        grad.dtype(),
    )?;
    let gpu = grad.context().gpu();
    match grad.dtype() {
        DType::F32 => {
            compute::activation_backward_in_place(gpu, act, grad.raw(), input.raw(), grad.len())
        }
        DType::F16 => {
            compute::activation_backward_in_place_f16(gpu, act, grad.raw(), input.raw(), grad.len())
        }
    }
}

/// `y = act(x)` elementwise; both tensors of one type and length.
pub fn activation_forward(act: Activation, x: &Tensor, y: &Tensor) -> Result<()> {
    y.expect_dtype("activation_forward", "the output", x.dtype())?;
    let gpu = x.context().gpu();
    match x.dtype() {
        DType::F32 => compute::activation_forward(gpu, act, x.raw(), y.raw(), x.len()),
        DType::F16 => compute::activation_forward_f16(gpu, act, x.raw(), y.raw(), x.len()),
    }
}

/// The column sums of a 2-D tensor (`[rows, cols]`, f32 or f16) added to (`accumulate`) or
/// written into the f32 tensor `out` of `cols` values: the bias gradient.
pub fn column_sums(x: &Tensor, out: &Tensor, accumulate: bool) -> Result<()> {
    let [rows, cols] = x.dims2("column_sums")?;
    out.expect_dtype("column_sums", "the output", DType::F32)?;
    let gpu = x.context().gpu();
    match x.dtype() {
        DType::F16 => compute::column_sums_f16(gpu, x.raw(), rows, cols, out.raw(), accumulate),
        DType::F32 if !accumulate => compute::column_sums(gpu, x.raw(), rows, cols, out.raw()),
        DType::F32 => {
            let ctx = x.context();
            let sums = ctx.uninit(&[cols], crate::tensor::tags::SCRATCH)?;
            compute::column_sums(gpu, x.raw(), rows, cols, sums.raw())?;
            compute::accumulate(gpu, sums.raw(), out.raw(), cols)
        }
    }
}

/// Converts `src` into `dst` (same length, any two types; the same type is a copy). f32 to f16
/// rounds to nearest even, overflowing to infinity.
pub fn convert(src: &Tensor, dst: &Tensor) -> Result<()> {
    if src.len() != dst.len() {
        return Err(Error::Shape {
            op: "convert",
            left: src.shape().to_vec(),
            right: dst.shape().to_vec(),
            reason: "a conversion keeps the element count".into(),
        });
    }
    let gpu = src.context().gpu();
    match (src.dtype(), dst.dtype()) {
        (DType::F32, DType::F32) => compute::copy(gpu, src.raw(), dst.raw(), src.len()),
        (from, to) => compute::convert(gpu, src.raw(), from, dst.raw(), to, src.len()),
    }
}
