//! Entry points of `shaders/matmul_f16.wgsl`: `C = act(op(A) · op(B) + bias) (+ C)` with A and B
//! in f16 storage and every product and sum in f32.
//!
//! The plain (non-cooperative) f16 kernel: it runs on every adapter with `SHADER_F16`, and is
//! what mixed-precision training uses where no cooperative-matrix kernel applies. The output is
//! f16 (activations, input gradients) or f32 (weight gradients, accumulated in f32); the bias is
//! always the f32 master copy. The same products and options as [`super::matmul`], in a 64 or a
//! 128 tile.

use super::matmul::{Labels, MatmulOptions, Operands, Params, check_operands};
use super::{Binding, Gpu, Kernel, MatmulTile};
use crate::DType;
use crate::error::{Error, Result};

// The 128 tile's workgroup memory (two double-buffered 8 x 132 f32 tiles, as the f32 kernel's)
// and the output tiles below which `Auto` takes the 64 tile: the f32 matmul's H200-tuned default.
use super::matmul::{T128_MIN_TILES_H200_TUNED as T128_MIN_TILES, T128_WORKGROUP_BYTES};

fn kernel(wide: bool, c: DType, trans_a: bool, trans_b: bool) -> Kernel {
    let entry = match (wide, c, trans_a, trans_b) {
        (true, DType::F16, false, false) => "mm128h_nn",
        (true, DType::F16, true, false) => "mm128h_tn",
        (true, DType::F16, false, true) => "mm128h_nt",
        (true, DType::F16, true, true) => "mm128h_tt",
        (true, DType::F32, false, false) => "mm128hf_nn",
        (true, DType::F32, true, false) => "mm128hf_tn",
        (true, DType::F32, false, true) => "mm128hf_nt",
        (true, DType::F32, true, true) => "mm128hf_tt",
        (false, DType::F16, false, false) => "mm64h_nn",
        (false, DType::F16, true, false) => "mm64h_tn",
        (false, DType::F16, false, true) => "mm64h_nt",
        (false, DType::F16, true, true) => "mm64h_tt",
        (false, DType::F32, false, false) => "mm64hf_nn",
        (false, DType::F32, true, false) => "mm64hf_tn",
        (false, DType::F32, false, true) => "mm64hf_nt",
        (false, DType::F32, true, true) => "mm64hf_tt",
    };
    Kernel {
        shader: "matmul_f16",
        entry,
    }
}

/// The names [`matmul_f16`]'s errors give.
const LABELS: Labels = Labels {
    op: "matmul_f16",
    a: "matmul_f16 A",
    b: "matmul_f16 B",
    c: "matmul_f16 C",
    bias: "matmul_f16 bias",
    m: "matmul_f16 m",
    n: "matmul_f16 n",
    k: "matmul_f16 k",
};

/// `C = act(op(A) · op(B) + bias)`, or `C += ...` with `accumulate`; A and B row-major f16,
/// `bias` (if any) `n` f32 values, `c` of `c_dtype` (f16 or f32).
///
/// Shapes and options as in [`super::matmul`]. Two tilings: [`MatmulTile::T64`] and
/// [`MatmulTile::T128P`] (the 128 tile of `mm128p_*` over f16 loads); [`MatmulTile::Auto`] takes
/// the 128 tile when it fits the device's workgroup memory and the output has at least 96 such
/// tiles, as for f32 with naga's checks on. Other tilings are [`Error::InvalidArgument`].
/// Needs `SHADER_F16`
/// ([`Error::UnsupportedDType`] otherwise); inner dimensions that differ give
/// [`Error::Shape`]; a buffer shorter than its shape in its type gives [`Error::OutOfBounds`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_f16(
    gpu: &Gpu,
    a: &wgpu::Buffer,
    a_shape: [usize; 2],
    b: &wgpu::Buffer,
    b_shape: [usize; 2],
    c: &wgpu::Buffer,
    c_dtype: DType,
    opts: &MatmulOptions<'_>,
) -> Result<()> {
    gpu.require_f16()?;
    if !matches!(
        opts.tile,
        MatmulTile::Auto | MatmulTile::T64 | MatmulTile::T128P
    ) {
        return Err(Error::invalid(
            "matmul tile",
            format!(
                "{:?}: the f16 matmul has the tilings T64 and T128P (or Auto)",
                opts.tile
            ),
        ));
    }
    let Operands {
        m,
        n,
        m32,
        n32,
        k32,
        len_a,
        len_b,
        len_c,
        ..
    } = check_operands(
        gpu,
        &LABELS,
        [a, b, c],
        [a_shape, b_shape],
        [DType::F16, c_dtype],
        opts,
    )?;
    if len_c == 0 {
        return Ok(());
    }
    // Cooperative matrices where the device has a kernel for them (`Gpu::matmul_kernels`); the
    // kernel binds A and B as vectors of 4, which a buffer of fewer than 8 bytes cannot hold.
    if opts.tile == MatmulTile::Auto
        && gpu.matmul_kernels().f16.kernel().is_some()
        && a.size() >= 8
        && b.size() >= 8
    {
        return super::matmul_coop(gpu, DType::F16, a, a_shape, b, b_shape, c, c_dtype, opts);
    }
    if opts.split_k.is_some() {
        return Err(Error::invalid(
            "matmul_f16 split_k",
            "the plain f16 tiles do not split K (only the f32 tiles and the cooperative-matrix \
             kernels do); leave split_k None",
        ));
    }
    let storage = gpu.limits().max_compute_workgroup_storage_size;
    let fits = storage >= T128_WORKGROUP_BYTES;
    let wide = match opts.tile {
        MatmulTile::T128P if !fits => {
            return Err(Error::invalid(
                "matmul tile",
                format!(
                    "T128P needs {T128_WORKGROUP_BYTES} bytes of workgroup memory; this device has {storage}"
                ),
            ));
        }
        MatmulTile::T128P => true,
        MatmulTile::Auto => {
            fits && (m as u64).div_ceil(128) * (n as u64).div_ceil(128) >= T128_MIN_TILES
        }
        _ => false,
    };
    let edge = if wide { 128 } else { 64 };
    let groups = super::matmul::output_grid(gpu, m32, n32, edge)?;
    let params = Params::new(m32, n32, k32, opts, 0);
    let bias = opts.bias.unwrap_or(a);
    gpu.dispatch(
        kernel(wide, c_dtype, opts.trans_a, opts.trans_b),
        &params,
        &[
            Binding::of(c, len_c, c_dtype),
            Binding::of(a, len_a, DType::F16),
            Binding::of(b, len_b, DType::F16),
            // With no bias (or k = 0) one word of A stands in; the kernel reads none of it.
            Binding::f32s(bias, if opts.bias.is_some() { n } else { 1 }),
        ],
        groups,
    )
}
