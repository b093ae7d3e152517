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

/// `c = act(op(a) · op(b) + bias) (+ c)` for tensors read as matrices (shapes as stored, see
/// [`compute::matmul`]; leading dimensions fold into the rows, [`Tensor::matrix_dims`]). `a`
/// and `b` share a type; with f32 inputs `c` is f32, with f16 inputs `c` is f16 or f32 (f32
/// accumulates weight gradients). The bias, if any, is f32. An f32 product whose output is too
/// small to fill the GPU but whose K is long runs split-K ([`compute::split_k_slices`]) through
/// a scratch buffer from the pool.
pub fn matmul(a: &Tensor, b: &Tensor, c: &Tensor, opts: &MatmulOptions<'_>) -> Result<()> {
    let a_shape = a.matrix_dims("matmul")?;
    let b_shape = b.matrix_dims("matmul")?;
    let gpu = a.context().gpu();
    match (a.dtype(), b.dtype(), c.dtype()) {
        (DType::F32, DType::F32, DType::F32) => {
            let [m, k] = if opts.trans_a {
                [a_shape[1], a_shape[0]]
            } else {
                a_shape
            };
            let n = if opts.trans_b { b_shape[0] } else { b_shape[1] };
            let slices = match (opts.split_k, opts.tile) {
                (None, compute::MatmulTile::Auto) => compute::split_k_slices(gpu, m, n, k),
                _ => 1,
            };
            if slices == 1 {
                return compute::matmul(gpu, a.raw(), a_shape, b.raw(), b_shape, c.raw(), opts);
            }
            let scratch = a
                .context()
                .uninit(&[slices as usize, m, n], crate::tensor::tags::SCRATCH)?;
            let split = compute::SplitK {
                slices,
                scratch: scratch.raw(),
            };
            let opts = MatmulOptions {
                split_k: Some(split),
                ..*opts
            };
            compute::matmul(gpu, a.raw(), a_shape, b.raw(), b_shape, c.raw(), &opts)
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

/// The column sums of a tensor read as a matrix (`[rows, cols]`, f32 or f16) added to (`accumulate`) or
/// written into the f32 tensor `out` of `cols` values: the bias gradient.
pub fn column_sums(x: &Tensor, out: &Tensor, accumulate: bool) -> Result<()> {
    let [rows, cols] = x.matrix_dims("column_sums")?;
    out.expect_dtype("column_sums", "the output", DType::F32)?;
    let ctx = x.context();
    // A tall matrix (a bias gradient over many rows) is summed in chunks side by side.
    let partials = compute::column_sum_partials(rows, cols)
        .map(|len| ctx.uninit(&[len], crate::tensor::tags::SCRATCH))
        .transpose()?;
    compute::column_sums_of(
        ctx.gpu(),
        x.raw(),
        x.dtype(),
        [rows, cols],
        out.raw(),
        accumulate,
        partials.as_ref().map(Tensor::raw),
    )
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
