//! Tensor operations that pick their kernel by the operands' [`DType`].
//!
//! The kernels in [`crate::compute`] take raw buffers and explicit dimensions, one function per
//! storage type; the layers above work on [`Tensor`]s and should not care which type a model
//! runs in. These functions read shapes and types from the tensors, check that the types fit
//! together (a typed [`Error::DType`] otherwise) and dispatch the f32 or the f16 kernel. The f32
//! path is the same single call the layers made before: no extra work per dispatch.

use crate::DType;
use crate::compute::{
    self, Activation, AttentionDims, AttentionSaved, DropoutMask, EmbeddingDims, LayerNormBuffers,
    LayerNormGrads, MatmulOptions,
};
use crate::error::{Error, Result};
use crate::tensor::{Context, Tensor, tags};
use std::sync::Arc;

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
        (DType::F32, DType::F32, DType::F32) | (DType::F16, DType::F16, DType::F32) => {
            let split =
                split_k_scratch(a.context(), a.dtype(), DType::F32, a_shape, b_shape, opts)?;
            let opts = with_split(opts, &split);
            let (a_raw, b_raw, c_raw) = (a.raw(), b.raw(), c.raw());
            match a.dtype() {
                DType::F32 => compute::matmul(gpu, a_raw, a_shape, b_raw, b_shape, c_raw, &opts),
                DType::F16 => compute::matmul_f16(
                    gpu,
                    a_raw,
                    a_shape,
                    b_raw,
                    b_shape,
                    c_raw,
                    DType::F32,
                    &opts,
                ),
            }
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

/// The slices and pool scratch of a split-K product ([`compute::split_k_slices`]): an `input`
/// product with an f32 `output`, `Auto` tiling and no split chosen by the caller, whose output
/// alone cannot fill the GPU. `None` where it runs unsplit, and where the shapes disagree (the
/// kernel then reports them). Shared by [`matmul`] and the layers that multiply raw buffers.
pub(crate) fn split_k_scratch(
    ctx: &Arc<Context>,
    input: DType,
    output: DType,
    a_shape: [usize; 2],
    b_shape: [usize; 2],
    opts: &MatmulOptions<'_>,
) -> Result<Option<(u32, Tensor)>> {
    if output != DType::F32 || opts.split_k.is_some() || opts.tile != compute::MatmulTile::Auto {
        return Ok(None);
    }
    let Ok((m, k, n)) = compute::product_dims("matmul", a_shape, b_shape, opts) else {
        return Ok(None);
    };
    match compute::split_k_slices(ctx.gpu(), input, m, n, k) {
        1 => Ok(None),
        slices => Ok(Some((
            slices,
            ctx.uninit(&[slices as usize, m, n], tags::SCRATCH)?,
        ))),
    }
}

/// `opts` with the split of [`split_k_scratch`], where it gave one.
pub(crate) fn with_split<'a>(
    opts: &MatmulOptions<'a>,
    split: &'a Option<(u32, Tensor)>,
) -> MatmulOptions<'a> {
    MatmulOptions {
        split_k: split
            .as_ref()
            .map(|(slices, scratch)| compute::SplitK {
                slices: *slices,
                scratch: scratch.raw(),
            })
            .or(opts.split_k),
        ..*opts
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
        .map(|len| ctx.uninit(&[len], tags::SCRATCH))
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

/// The f32 or the f16 twin of a kernel (same signature), for tensors of `dtype`: a `match`,
/// whose arms coerce the two functions to one function pointer type.
macro_rules! twin {
    ($dtype:expr, $f32:path, $f16:path $(,)?) => {
        match $dtype {
            DType::F32 => $f32,
            DType::F16 => $f16,
        }
    };
}

/// `y = x + z` elementwise; all three of one type and length (a residual join).
pub fn add(x: &Tensor, z: &Tensor, y: &Tensor) -> Result<()> {
    z.expect_dtype("add", "the second operand", x.dtype())?;
    y.expect_dtype("add", "the output", x.dtype())?;
    let add = twin!(x.dtype(), compute::add, compute::add_f16);
    add(x.context().gpu(), x.raw(), z.raw(), y.raw(), x.len())
}

/// `y += x` elementwise; both of one type and length (gradients meeting at a join).
pub fn add_in_place(y: &Tensor, x: &Tensor) -> Result<()> {
    x.expect_dtype("add_in_place", "the addend", y.dtype())?;
    let gpu = y.context().gpu();
    match y.dtype() {
        DType::F32 => compute::add_in_place(gpu, y.raw(), x.raw(), y.len()),
        DType::F16 => compute::accumulate_f16(gpu, x.raw(), y.raw(), y.len()),
    }
}

/// Layer norm of `x` `[rows, width]` into `y` (both f32 or both f16); gamma, beta and the
/// statistics are f32 either way ([`compute::layer_norm_forward`]).
pub fn layer_norm_forward(
    x: &Tensor,
    y: &Tensor,
    shape: [usize; 2],
    eps: f32,
    bufs: &LayerNormBuffers<'_>,
) -> Result<()> {
    y.expect_dtype("layer_norm", "the output", x.dtype())?;
    let forward = twin!(
        x.dtype(),
        compute::layer_norm_forward,
        compute::layer_norm_forward_f16,
    );
    forward(x.context().gpu(), x.raw(), y.raw(), shape, eps, bufs)
}

/// The backward pass of [`layer_norm_forward`]: `x`, `dy` and `grads.dx` of the activations'
/// type, the parameter gradients and scratch f32 ([`compute::layer_norm_backward`]).
pub fn layer_norm_backward(
    x: &Tensor,
    dy: &Tensor,
    shape: [usize; 2],
    bufs: &LayerNormBuffers<'_>,
    grads: &LayerNormGrads<'_>,
) -> Result<()> {
    dy.expect_dtype("layer_norm_backward", "the output gradient", x.dtype())?;
    let backward = twin!(
        x.dtype(),
        compute::layer_norm_backward,
        compute::layer_norm_backward_f16,
    );
    backward(x.context().gpu(), x.raw(), dy.raw(), shape, bufs, grads)
}

/// Token (and position) embedding of the f32 `ids` into `out`, f32 or f16; the tables are f32
/// either way ([`compute::embedding_forward`]).
pub fn embedding_forward(
    dims: EmbeddingDims,
    ids: &Tensor,
    table: &Tensor,
    positions: Option<&Tensor>,
    out: &Tensor,
) -> Result<()> {
    ids.expect_dtype("embedding", "the token ids", DType::F32)?;
    table.expect_dtype("embedding", "the table", DType::F32)?;
    let forward = twin!(
        out.dtype(),
        compute::embedding_forward,
        compute::embedding_forward_f16,
    );
    forward(
        out.context().gpu(),
        dims,
        ids.raw(),
        table.raw(),
        positions.map(|p| p.raw()),
        out.raw(),
    )
}

/// The backward pass of [`embedding_forward`]: accumulates the output gradient `dy` (f32 or
/// f16) into the f32 gradients of the table and, if given, of the positions.
pub fn embedding_backward(
    dims: EmbeddingDims,
    ids: &Tensor,
    dy: &Tensor,
    table_grad: &Tensor,
    positions_grad: Option<&Tensor>,
) -> Result<()> {
    table_grad.expect_dtype("embedding_backward", "the table gradient", DType::F32)?;
    let gpu = dy.context().gpu();
    let table = twin!(
        dy.dtype(),
        compute::embedding_backward_table,
        compute::embedding_backward_table_f16,
    );
    table(gpu, dims, ids.raw(), dy.raw(), table_grad.raw())?;
    if let Some(p) = positions_grad {
        p.expect_dtype("embedding_backward", "the position gradient", DType::F32)?;
        let positions = twin!(
            dy.dtype(),
            compute::embedding_backward_positions,
            compute::embedding_backward_positions_f16,
        );
        positions(gpu, dims, dy.raw(), p.raw())?;
    }
    Ok(())
}

/// Dropout of `x` into `y` (both of one type and length) with `mask`.
pub fn dropout(mask: DropoutMask, x: &Tensor, y: &Tensor) -> Result<()> {
    y.expect_dtype("dropout", "the output", x.dtype())?;
    let dropout = twin!(x.dtype(), compute::dropout, compute::dropout_f16);
    dropout(x.context().gpu(), mask, x.raw(), y.raw(), x.len())
}

/// Fused causal attention: `qkv` and `o` of one type, `lse` f32
/// ([`compute::attention_forward`]).
pub fn attention_forward(
    dims: AttentionDims,
    qkv: &Tensor,
    o: &Tensor,
    lse: &Tensor,
) -> Result<()> {
    o.expect_dtype("attention", "the output", qkv.dtype())?;
    lse.expect_dtype("attention", "the log-sum-exp rows", DType::F32)?;
    let forward = twin!(
        qkv.dtype(),
        compute::attention_forward,
        compute::attention_forward_f16,
    );
    forward(qkv.context().gpu(), dims, qkv.raw(), o.raw(), lse.raw())
}

/// The tensors [`attention_backward`] reads from its forward pass.
pub struct AttentionForward<'a> {
    /// The packed queries, keys and values.
    pub qkv: &'a Tensor,
    /// The attention output.
    pub o: &'a Tensor,
    /// The log-sum-exp of each score row (f32).
    pub lse: &'a Tensor,
}

/// The backward pass of [`attention_forward`]: `d_o` and `dqkv` of the forward's type, the
/// scratch `delta` f32 ([`compute::attention_backward`]).
pub fn attention_backward(
    dims: AttentionDims,
    saved: &AttentionForward<'_>,
    d_o: &Tensor,
    dqkv: &Tensor,
    delta: &Tensor,
) -> Result<()> {
    let dtype = saved.qkv.dtype();
    saved
        .o
        .expect_dtype("attention_backward", "the output", dtype)?;
    d_o.expect_dtype("attention_backward", "the output gradient", dtype)?;
    dqkv.expect_dtype("attention_backward", "the input gradient", dtype)?;
    delta.expect_dtype("attention_backward", "the delta rows", DType::F32)?;
    let backward = twin!(
        dtype,
        compute::attention_backward,
        compute::attention_backward_f16,
    );
    backward(
        d_o.context().gpu(),
        dims,
        &AttentionSaved {
            qkv: saved.qkv.raw(),
            o: saved.o.raw(),
            lse: saved.lse.raw(),
        },
        d_o.raw(),
        dqkv.raw(),
        delta.raw(),
    )
}
