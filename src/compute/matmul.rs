//! Entry point of the fp32 matmul (`shaders/matmul/`): `C = act(op(A) · op(B) + bias) (+ C)`.
//!
//! One function covers the products training needs: `A·B` (forward), `Aᵀ·B` (weight gradient)
//! and `A·Bᵀ` (input gradient), with the bias and activation of a layer fused into the epilogue
//! and an accumulate option for gradient accumulation. The tile is picked from the device's
//! limits and the problem's size (see [`MatmulTile`]).

use super::elementwise::Activation;
pub use super::matmul_split::{SplitK, split_k_slices};
use super::validate::{distinct, elements, elements_of, product};
use super::{Binding, Gpu, Kernel};
use crate::DType;
use crate::error::{Error, Result};

/// Which tiling runs a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatmulTile {
    /// The 64 x 64 tile when the device lacks the workgroup memory for the 128 tile or the
    /// output has too few 128 tiles to fill a large GPU. Otherwise, as measured on an H200
    /// (BENCHMARKS.md, v4 and 2026-12-01): [`MatmulTile::T128P`] with naga's index checks
    /// ([`Gpu::new`], with or without its loop counters); on a
    /// [`Gpu::new_unchecked`], [`MatmulTile::T128S`] for `A·B` (and for the transposes on a
    /// device with 32 KiB of workgroup memory) and [`MatmulTile::T128K16`] for the transposes
    /// where its 33 KiB fit: the fastest unchecked kernels there (`A·B`: 6-8% over the K-16
    /// tile; transposes: 21-28% over the unchecked 128 tile).
    #[default]
    Auto,
    /// 64 x 64 output tile, 4 x 4 per thread (8.5 KiB of workgroup memory; always available).
    T64,
    /// 128 x 128 output tile, 8 x 8 per thread, K step 16 (33 KiB of workgroup memory: more
    /// than Metal's 32 KiB).
    T128K16,
    /// The 128 tile of v4, K step 8: the next k's fragments read from workgroup memory before
    /// the current k's FMAs, explicit `fma` (16.5 KiB of workgroup memory).
    T128P,
    /// The 128 tile of v4, K step 16 in an XOR-swizzled, unpadded layout: exactly 32 KiB of
    /// workgroup memory, so it fits Metal and lavapipe.
    T128S,
}

/// Options of [`matmul`]: transposes, fused epilogue, accumulation and tiling.
#[derive(Debug, Clone, Copy, Default)]
pub struct MatmulOptions<'a> {
    /// A is stored transposed (`[k, m]`); the product uses its transpose.
    pub trans_a: bool,
    /// B is stored transposed (`[n, k]`); the product uses its transpose.
    pub trans_b: bool,
    /// Added to every row of the product (`n` values) before the activation.
    pub bias: Option<&'a wgpu::Buffer>,
    /// Applied to the product (plus bias).
    pub activation: Activation,
    /// Add the result to what `C` holds instead of overwriting it.
    pub accumulate: bool,
    /// The tiling; [`MatmulTile::Auto`] unless benchmarking or testing one.
    pub tile: MatmulTile,
    /// Split K into slices computed in parallel, then summed ([`SplitK`]; f32 tiles only).
    /// `None` computes each output tile in one workgroup; [`crate::ops::matmul`] sets it where
    /// [`split_k_slices`] says the output alone cannot fill the GPU.
    pub split_k: Option<SplitK<'a>>,
}

/// The parameters every matmul kernel reads (the f32 and f16 tiles and the cooperative
/// kernels): the sizes, the epilogue's flags and the activation.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    act: u32,
    /// The K of one slice (the f32 tiles; `k` when unsplit).
    k_split: u32,
    _pad: [u32; 2],
}

impl Params {
    /// `m`, `n`, `k`, and the flags bias (bit 0) and accumulate (bit 1) of `opts` with `extra`
    /// flags or-ed in.
    pub(super) fn new(m: u32, n: u32, k: u32, opts: &MatmulOptions<'_>, extra: u32) -> Self {
        Self {
            m,
            n,
            k,
            flags: u32::from(opts.bias.is_some()) | (u32::from(opts.accumulate) << 1) | extra,
            act: opts.activation.code(),
            k_split: k,
            _pad: [0; 2],
        }
    }

    /// Sets the K of one slice of a split product.
    pub(super) fn set_k_split(&mut self, k_split: u32) {
        self.k_split = k_split;
    }
}

/// `v` as the kernels' u32 index type, or an error naming `what`.
pub(super) fn u32_dim(what: &'static str, v: usize) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::invalid(what, format!("{v} exceeds u32::MAX")))
}

/// The workgroup grid of `edge`-square output tiles over an `[m, n]` product; refused when it
/// exceeds the device's workgroups per dimension.
pub(super) fn output_grid(gpu: &Gpu, m: u32, n: u32, edge: u32) -> Result<[u32; 3]> {
    let groups = [n.div_ceil(edge), m.div_ceil(edge), 1];
    let max = gpu.max_groups_per_dim();
    if groups[0] > max || groups[1] > max {
        return Err(Error::invalid(
            "matmul shape",
            format!(
                "[{m}, {n}] needs {groups:?} workgroups; the device allows {max} per dimension"
            ),
        ));
    }
    Ok(groups)
}

pub(super) const T128_WORKGROUP_BYTES: u32 = 2 * 528 * 16;
const T128K16_WORKGROUP_BYTES: u32 = 2 * 1056 * 16;
const T128S_WORKGROUP_BYTES: u32 = 2 * 1024 * 16;
/// Output tiles below which [`MatmulTile::Auto`] takes the 64 tile: fewer 128 x 128 tiles leave
/// too much of a large GPU idle. Tuned on the H200 (132 SMs; BENCHMARKS.md, round 2) and applied
/// everywhere as a default, because wgpu reports no core count to derive it from. On a small GPU
/// (an M1's 8 cores) 96 tiles still fill it, so the default errs towards the 64 tile only on
/// products too small to matter.
pub(super) const T128_MIN_TILES_H200_TUNED: u64 = 96;

/// The tilings `WGMEM_MATMUL_TILE` names, in the spelling it accepts.
const TILE_NAMES: [(&str, MatmulTile); 4] = [
    ("T64", MatmulTile::T64),
    ("T128K16", MatmulTile::T128K16),
    ("T128P", MatmulTile::T128P),
    ("T128S", MatmulTile::T128S),
];

/// The tiling `name` spells (as in [`TILE_NAMES`], case-insensitive), or `Err` with a message
/// that lists the valid names.
fn parse_tile(name: &str) -> std::result::Result<MatmulTile, String> {
    let name = name.trim();
    TILE_NAMES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, t)| t)
        .ok_or_else(|| {
            let valid: Vec<&str> = TILE_NAMES.iter().map(|(n, _)| *n).collect();
            format!(
                "WGMEM_MATMUL_TILE={name:?} names no tiling; valid: {}; using Auto",
                valid.join(", ")
            )
        })
}

pub(super) fn kernel(tile: MatmulTile, trans_a: bool, trans_b: bool) -> Kernel {
    let entry = match (tile, trans_a, trans_b) {
        (MatmulTile::T128K16, false, false) => "mm128k16_nn",
        (MatmulTile::T128K16, true, false) => "mm128k16_tn",
        (MatmulTile::T128K16, false, true) => "mm128k16_nt",
        (MatmulTile::T128K16, true, true) => "mm128k16_tt",
        (MatmulTile::T128P, false, false) => "mm128p_nn",
        (MatmulTile::T128P, true, false) => "mm128p_tn",
        (MatmulTile::T128P, false, true) => "mm128p_nt",
        (MatmulTile::T128P, true, true) => "mm128p_tt",
        (MatmulTile::T128S, false, false) => "mm128s_nn",
        (MatmulTile::T128S, true, false) => "mm128s_tn",
        (MatmulTile::T128S, false, true) => "mm128s_nt",
        (MatmulTile::T128S, true, true) => "mm128s_tt",
        (_, false, false) => "mm64_nn",
        (_, true, false) => "mm64_tn",
        (_, false, true) => "mm64_nt",
        (_, true, true) => "mm64_tt",
    };
    Kernel {
        shader: "matmul",
        entry,
    }
}

/// `WGMEM_MATMUL_TILE` (`T64`, `T128K16`, `T128P`, `T128S`), read once: the tiling
/// [`MatmulTile::Auto`] resolves to, so that a whole training step can be timed with each tiling
/// (benches/train_step.rs). An unknown name logs a warning that lists the valid ones, and `Auto`
/// chooses as usual. A tiling the device cannot run is an error, as when asked for directly.
fn auto_override() -> Option<MatmulTile> {
    static TILE: std::sync::OnceLock<Option<MatmulTile>> = std::sync::OnceLock::new();
    *TILE.get_or_init(|| {
        let name = std::env::var("WGMEM_MATMUL_TILE").ok()?;
        parse_tile(&name).map_err(|msg| log::warn!("{msg}")).ok()
    })
}

pub(super) fn choose_tile(
    gpu: &Gpu,
    asked: MatmulTile,
    [m, n]: [usize; 2],
    transposed: bool,
) -> Result<MatmulTile> {
    let asked = match (asked, auto_override()) {
        (MatmulTile::Auto, Some(tile)) => tile,
        _ => asked,
    };
    let storage = gpu.limits().max_compute_workgroup_storage_size;
    let t128_fits = storage >= T128_WORKGROUP_BYTES;
    let too_small = |bytes: u32| {
        Err(Error::invalid(
            "matmul tile",
            format!("{asked:?} needs {bytes} bytes of workgroup memory; this device has {storage}"),
        ))
    };
    match asked {
        MatmulTile::T128P if !t128_fits => too_small(T128_WORKGROUP_BYTES),
        MatmulTile::T128S if storage < T128S_WORKGROUP_BYTES => too_small(T128S_WORKGROUP_BYTES),
        MatmulTile::T128K16 if storage < T128K16_WORKGROUP_BYTES => {
            too_small(T128K16_WORKGROUP_BYTES)
        }
        MatmulTile::Auto => {
            let tiles = (m as u64).div_ceil(128) * (n as u64).div_ceil(128);
            let k16_fits = storage >= T128K16_WORKGROUP_BYTES;
            let swizzled_fits = storage >= T128S_WORKGROUP_BYTES;
            Ok(if !(t128_fits && tiles >= T128_MIN_TILES_H200_TUNED) {
                MatmulTile::T64
            } else if !gpu.unchecked() {
                MatmulTile::T128P
            } else if k16_fits && transposed {
                MatmulTile::T128K16
            } else if swizzled_fits {
                MatmulTile::T128S
            } else {
                MatmulTile::T128P
            })
        }
        tile => Ok(tile),
    }
}

/// `C = act(op(A) · op(B) + bias)`, or `C += ...` with `accumulate`; row-major f32.
///
/// `a_shape` and `b_shape` are the shapes as stored: `[m, k]` (or `[k, m]` with `trans_a`) and
/// `[k, n]` (or `[n, k]` with `trans_b`). `c` receives `[m, n]`; `bias`, if given, holds `n`
/// values. Inner dimensions that differ give [`Error::Shape`] naming both shapes; a buffer
/// shorter than its shape gives [`Error::OutOfBounds`]; `c` equal to an input gives
/// [`Error::SameBuffer`]. Recorded into the pending batch like every kernel.
///
/// ```no_run
/// # fn f(gpu: &wgmem::Gpu, x: &wgpu::Buffer, w: &wgpu::Buffer, b: &wgpu::Buffer, y: &wgpu::Buffer) -> wgmem::Result<()> {
/// use wgmem::compute::{Activation, MatmulOptions, matmul};
/// // y[64, 10] = relu(x[64, 784] · w[784, 10] + b[10])
/// let opts = MatmulOptions { bias: Some(b), activation: Activation::Relu, ..Default::default() };
/// matmul(gpu, x, [64, 784], w, [784, 10], y, &opts)?;
/// # Ok(()) }
/// ```
pub fn matmul(
    gpu: &Gpu,
    a: &wgpu::Buffer,
    a_shape: [usize; 2],
    b: &wgpu::Buffer,
    b_shape: [usize; 2],
    c: &wgpu::Buffer,
    opts: &MatmulOptions<'_>,
) -> Result<()> {
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
        &MATMUL,
        [a, b, c],
        [a_shape, b_shape],
        [DType::F32; 2],
        opts,
    )?;
    if len_c == 0 {
        return Ok(());
    }
    if opts.tile == MatmulTile::Auto
        && gpu.matmul_kernels().f32.kernel().is_some()
        && a.size() >= 16
        && b.size() >= 16
    {
        // Metal's simdgroup f32 kernel, where opted in (`WGMEM_COOP=on`); it binds A and B as
        // vec4s, which a buffer of fewer than 16 bytes cannot hold.
        return super::matmul_coop(
            gpu,
            crate::DType::F32,
            a,
            a_shape,
            b,
            b_shape,
            c,
            crate::DType::F32,
            opts,
        );
    }
    if let Some(split) = opts.split_k {
        return super::matmul_split::matmul_split(
            gpu,
            [a, b, c],
            [m32, n32, k32],
            [len_a, len_b, len_c],
            opts,
            split,
        );
    }
    let tile = choose_tile(gpu, opts.tile, [m, n], opts.trans_a || opts.trans_b)?;
    let edge = if tile == MatmulTile::T64 { 64 } else { 128 };
    let groups = output_grid(gpu, m32, n32, edge)?;
    let params = Params::new(m32, n32, k32, opts, 0);
    // With k = 0 the kernels read nothing from A and B; bind at least one value of each.
    let bias = opts.bias.unwrap_or(a);
    gpu.dispatch(
        kernel(tile, opts.trans_a, opts.trans_b),
        &params,
        &[
            Binding::f32s(c, len_c),
            Binding::f32s(a, len_a),
            Binding::f32s(b, len_b),
            Binding::f32s(bias, if opts.bias.is_some() { n } else { 1 }),
        ],
        groups,
    )
}

/// The names a product's checks give in their errors (`Error` fields are `&'static str`).
pub(super) struct Labels {
    pub(super) op: &'static str,
    pub(super) a: &'static str,
    pub(super) b: &'static str,
    pub(super) c: &'static str,
    pub(super) bias: &'static str,
    pub(super) m: &'static str,
    pub(super) n: &'static str,
    pub(super) k: &'static str,
}

/// The labels of [`matmul`] and the cooperative kernels.
pub(super) const MATMUL: Labels = Labels {
    op: "matmul",
    a: "matmul A",
    b: "matmul B",
    c: "matmul C",
    bias: "matmul bias",
    m: "matmul m",
    n: "matmul n",
    k: "matmul k",
};

/// A product's sizes once [`check_operands`] has accepted them.
pub(super) struct Operands {
    pub(super) m: usize,
    pub(super) n: usize,
    pub(super) k: usize,
    pub(super) m32: u32,
    pub(super) n32: u32,
    pub(super) k32: u32,
    pub(super) len_a: usize,
    pub(super) len_b: usize,
    pub(super) len_c: usize,
}

/// What every matmul entry point checks first, in this order: the shapes agree, A and B hold
/// their `input` elements and C its `output` elements, the sizes fit the kernels' u32, the bias
/// (if any) holds `n` f32s, and C is none of the buffers read.
pub(super) fn check_operands(
    gpu: &Gpu,
    labels: &Labels,
    [a, b, c]: [&wgpu::Buffer; 3],
    [a_shape, b_shape]: [[usize; 2]; 2],
    [input, output]: [DType; 2],
    opts: &MatmulOptions<'_>,
) -> Result<Operands> {
    let (m, k, n) = product_dims(labels.op, a_shape, b_shape, opts)?;
    let len_a = product(labels.a, m, k)?;
    let len_b = product(labels.b, k, n)?;
    let len_c = product(labels.c, m, n)?;
    elements_of(gpu, labels.a, a, len_a, input)?;
    elements_of(gpu, labels.b, b, len_b, input)?;
    elements_of(gpu, labels.c, c, len_c, output)?;
    let (m32, n32, k32) = (
        u32_dim(labels.m, m)?,
        u32_dim(labels.n, n)?,
        u32_dim(labels.k, k)?,
    );
    let mut reads = vec![a, b];
    if let Some(bias) = opts.bias {
        elements(gpu, labels.bias, bias, n)?;
        reads.push(bias);
    }
    distinct(c, &reads)?;
    Ok(Operands {
        m,
        n,
        k,
        m32,
        n32,
        k32,
        len_a,
        len_b,
        len_c,
    })
}

/// `(m, k, n)` of `op(A) · op(B)` from the stored shapes and the transposes; inner dimensions
/// that differ are a [`Error::Shape`] naming `op`. Shared by the f32, f16 and cooperative kernels.
pub(crate) fn product_dims(
    op: &'static str,
    a_shape: [usize; 2],
    b_shape: [usize; 2],
    opts: &MatmulOptions<'_>,
) -> Result<(usize, usize, usize)> {
    let (m, ka) = if opts.trans_a {
        (a_shape[1], a_shape[0])
    } else {
        (a_shape[0], a_shape[1])
    };
    let (kb, n) = if opts.trans_b {
        (b_shape[1], b_shape[0])
    } else {
        (b_shape[0], b_shape[1])
    };
    if ka != kb {
        return Err(Error::Shape {
            op,
            left: a_shape.to_vec(),
            right: b_shape.to_vec(),
            reason: format!(
                "op(A) is [{m}, {ka}] and op(B) is [{kb}, {n}] (trans_a {}, trans_b {}); their inner dimensions must be equal",
                opts.trans_a, opts.trans_b
            ),
        });
    }
    Ok((m, ka, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_names_parse_case_insensitively() {
        assert_eq!(parse_tile(" t128p "), Ok(MatmulTile::T128P));
        for (name, tile) in TILE_NAMES {
            assert_eq!(parse_tile(name), Ok(tile));
            assert_eq!(
                format!("{tile:?}"),
                name,
                "the names are the variants' names"
            );
        }
    }

    #[test]
    fn an_unknown_tile_name_is_refused_with_the_valid_names() {
        let msg = parse_tile("T128").expect_err("T128 was removed");
        assert!(msg.contains("\"T128\""), "{msg}");
        assert!(msg.contains("T64, T128K16, T128P, T128S"), "{msg}");
    }
}
