//! Matmul on cooperative matrices (`shaders/coop/`): `C = act(op(A) · op(B) + bias) (+ C)`
//! with f16 (or, on Metal, f32) inputs, f32 accumulation and an f32 or f16 output (an f16
//! output is rounded from the f32 accumulator after the epilogue).
//!
//! The same options as [`super::matmul`]; the kernel is the one [`super::Gpu::matmul_kernels`]
//! chose for the input type. Buffers are raw: f16 values are two bytes each (`half::f16`).

use super::coop_select::CoopKernel;
use super::matmul::{MATMUL, MatmulOptions, Operands, Params, check_operands};
use super::{Binding, Gpu, Kernel};
use crate::DType;
use crate::error::{Error, Result};

/// The module of `kernel` with an `out` output. Every one reads its K bounds through
/// matmul/sliced.wgsl (an unsplit product is one slice): on the H200 that ran the 16x16x16
/// kernel at 50 TFLOP/s where the uniform bounds of matmul/whole.wgsl gave 28 (GPT shapes,
/// BENCHMARKS.md 2026-12-01).
fn shader(kernel: CoopKernel, out: DType) -> Result<&'static str> {
    Ok(match (kernel, out) {
        (CoopKernel::F16x16, DType::F32) => "matmul_coop16_f16_f32",
        (CoopKernel::F16x16, DType::F16) => "matmul_coop16_f16_f16",
        (CoopKernel::F16x8, DType::F32) => "matmul_coop8_f16_f32",
        (CoopKernel::F16x8, DType::F16) => "matmul_coop8_f16_f16",
        (CoopKernel::F32x8, DType::F32) => "matmul_coop8_f32_f32",
        (CoopKernel::F32x8, DType::F16) => {
            return Err(Error::invalid(
                "matmul output",
                "f32 inputs give an f32 output; f16 output needs f16 inputs",
            ));
        }
    })
}

/// `C = act(op(A) · op(B) + bias)` (or `C += ...`) with the cooperative-matrix kernel the device
/// chose for `input`; `bias` holds `n` f32 values. Shapes as in [`super::matmul`].
///
/// Fails with [`Error::InvalidArgument`] when the device has no cooperative kernel for `input`
/// (see [`super::Gpu::matmul_kernels`] for why), with [`Error::Shape`] when the inner dimensions
/// differ, [`Error::OutOfBounds`] when a buffer is shorter than its shape, and
/// [`Error::SameBuffer`] when `c` is an input.
#[allow(clippy::too_many_arguments)]
pub fn matmul_coop(
    gpu: &Gpu,
    input: DType,
    a: &wgpu::Buffer,
    a_shape: [usize; 2],
    b: &wgpu::Buffer,
    b_shape: [usize; 2],
    c: &wgpu::Buffer,
    output: DType,
    opts: &MatmulOptions<'_>,
) -> Result<()> {
    let choice = match input {
        DType::F16 => gpu.matmul_kernels().f16,
        DType::F32 => gpu.matmul_kernels().f32,
    };
    let kernel = choice.kernel().ok_or_else(|| {
        Error::invalid(
            "cooperative matmul",
            format!("{input:?} inputs on this device run the {choice}"),
        )
    })?;
    let half_in = kernel.input() == DType::F16;
    let name = shader(kernel, output)?;
    // The kernels index with u32 (the element checks refuse more elements than that) and read
    // vectors of 4 from buffers of at least one vector.
    let Operands {
        m,
        n,
        k,
        m32,
        n32,
        k32,
        len_a,
        len_b,
        len_c,
    } = check_operands(
        gpu,
        &MATMUL,
        [a, b, c],
        [a_shape, b_shape],
        [kernel.input(), output],
        opts,
    )?;
    let bytes = |len: usize, dtype: DType| len as u64 * dtype.size() as u64;
    let (bytes_a, bytes_b, bytes_c) = (
        bytes(len_a, kernel.input()),
        bytes(len_b, kernel.input()),
        bytes(len_c, output),
    );
    if len_c == 0 {
        return Ok(());
    }
    let vec_bytes: u64 = if half_in { 8 } else { 16 };
    for (what, buf) in [("matmul A", a), ("matmul B", b)] {
        if buf.size() < vec_bytes {
            return Err(Error::invalid(
                what,
                format!(
                    "the buffer has {} bytes; cooperative kernels bind at least {vec_bytes}",
                    buf.size()
                ),
            ));
        }
    }
    let at_least_4 = |bytes: u64| bytes.next_multiple_of(4).max(4);
    let edge = kernel.tile();
    let groups = super::matmul::output_grid(gpu, m32, n32, edge)?;
    // Vector loads need the contiguous dimension of each stored operand to be a multiple of 4.
    let a_contig = if opts.trans_a { m } else { k };
    let b_contig = if opts.trans_b { k } else { n };
    let layout = (u32::from(opts.trans_a) << 2)
        | (u32::from(opts.trans_b) << 3)
        | (u32::from(a_contig % 4 == 0) << 4)
        | (u32::from(b_contig % 4 == 0) << 5);
    let mut params = Params::new(m32, n32, k32, opts, layout);
    let mut out = (c, at_least_4(bytes_c));
    let mut slices = 1;
    if let Some(split) = opts.split_k {
        if output != DType::F32 {
            return Err(Error::invalid(
                "matmul split_k",
                "split-K sums f32 partial products: use an f32 output",
            ));
        }
        let mut others = vec![a, b, c];
        others.extend(opts.bias);
        // Slices of whole K steps of the kernel (32), so the vector loads stay aligned.
        let (n_slices, k_split, partial_len) =
            super::matmul_split::checked_split(gpu, split, [m32, n32, k32], 32, &others)?;
        params = Params::new(m32, n32, k32, &MatmulOptions::default(), layout);
        params.set_k_split(k_split);
        out = (split.scratch, partial_len as u64 * 4);
        slices = n_slices;
    }
    // The vector views cover the whole vectors inside the matrix: the kernel reads a vector only
    // when all its elements are.
    let vector_view = |bytes: u64| (bytes / vec_bytes * vec_bytes).max(vec_bytes);
    let bind = |buffer, size| Binding {
        buffer,
        offset: 0,
        size,
    };
    // Without a bias, A stands in at its binding (the kernel does not read it).
    let (bias, bias_bytes) = match opts.bias {
        Some(bias) => (bias, n as u64 * 4),
        None => (a, 4),
    };
    gpu.dispatch(
        Kernel {
            shader: name,
            entry: "main",
        },
        &params,
        &[
            bind(out.0, out.1),
            bind(a, at_least_4(bytes_a)),
            bind(b, at_least_4(bytes_b)),
            bind(bias, at_least_4(bias_bytes)),
            bind(a, vector_view(bytes_a)),
            bind(b, vector_view(bytes_b)),
        ],
        [groups[0], groups[1], slices],
    )?;
    match opts.split_k {
        Some(split) => {
            super::matmul_split::sum_slices(gpu, c, split.scratch, [m32, n32, slices], opts, a)
        }
        None => Ok(()),
    }
}
