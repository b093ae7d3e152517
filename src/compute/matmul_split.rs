//! Split-K for the f32 matmul: a product whose output has too few tiles to fill the GPU but a
//! long K (a weight gradient `Xᵀ·dY` over many rows: `[384, 1152]` from 16,384 rows leaves 27
//! of the 128-wide tiles for 132 SMs) runs K in slices side by side, each slice writing its
//! partial product to a scratch buffer, and a second kernel adds the slices in order and applies
//! the epilogue (bias, activation, accumulation). Deterministic: the same inputs give the same
//! bits, whatever the GPU schedules first.
//!
//! The scratch comes from the caller ([`SplitK`]); [`crate::ops::matmul`] takes it from the
//! memory pool where [`split_k_slices`] asks for a split.

use super::embedding::fold_groups;
use super::matmul::{
    MatmulOptions, MatmulTile, Params, T128_MIN_TILES_H200_TUNED, choose_tile, kernel, output_grid,
};
use super::validate::{distinct, elements, product};
use super::{Binding, Gpu, Kernel};
use crate::DType;
use crate::error::{Error, Result};

/// The slices of a split-K product and the scratch their partial products go to.
#[derive(Debug, Clone, Copy)]
pub struct SplitK<'a> {
    /// Slices of K, at least 1 (1 computes the product as unsplit, through the scratch).
    pub slices: u32,
    /// At least `slices * m * n` f32s.
    pub scratch: &'a wgpu::Buffer,
}

/// Workgroups a split aims for: two per SM of an H200 (132), enough to hide one slice's tail.
const TARGET_WORKGROUPS: u64 = 256;
/// The least K a slice gets: below it the second pass costs more than the parallelism gives.
const MIN_SLICE_K: usize = 512;
/// Slices at most: the scratch is `slices * m * n` f32s.
const MAX_SLICES: u64 = 32;

/// How many K slices [`crate::ops::matmul`] splits an `[m, k] · [k, n]` product of `input`s
/// with an f32 output into: more than 1 only where the output has fewer 128 x 128 tiles than
/// fill a large GPU and K is long enough to give every slice at least 512. The f32 tiles and
/// the cooperative-matrix kernels split; the plain f16 tiles do not (1). Tuned for the H200
/// like the tile choice; on a GPU of a few cores the second pass costs a few percent more than
/// it gains.
///
/// `WGMEM_SPLIT_K=off` (read once) turns it off, for benchmarks that time the step without it.
pub fn split_k_slices(gpu: &Gpu, input: DType, m: usize, n: usize, k: usize) -> u32 {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *OFF.get_or_init(|| std::env::var("WGMEM_SPLIT_K").is_ok_and(|v| v == "off")) {
        return 1;
    }
    if input == DType::F16 && gpu.matmul_kernels().f16.kernel().is_none() {
        return 1;
    }
    let tiles = (m as u64).div_ceil(128) * (n as u64).div_ceil(128);
    if tiles == 0 || tiles >= T128_MIN_TILES_H200_TUNED {
        return 1;
    }
    let by_occupancy = TARGET_WORKGROUPS.div_ceil(tiles);
    let by_length = (k / MIN_SLICE_K) as u64;
    by_occupancy.min(by_length).clamp(1, MAX_SLICES) as u32
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct SumParams {
    m: u32,
    n: u32,
    slices: u32,
    flags: u32,
    act: u32,
    groups_x: u32,
    _pad: [u32; 2],
}

/// The slices to run (at most one per `granule` k's, so none is empty) and the scratch length,
/// after checking `split` against the product; `others` are the buffers the scratch must not be.
pub(super) fn checked_split(
    gpu: &Gpu,
    split: SplitK<'_>,
    [m, n, k]: [u32; 3],
    granule: u32,
    others: &[&wgpu::Buffer],
) -> Result<(u32, u32, usize)> {
    if split.slices == 0 {
        return Err(Error::invalid(
            "matmul split_k",
            "0 slices; use at least 1 (or no split_k)",
        ));
    }
    // Slices of a whole number of granules; more slices than that would leave some empty.
    let k_split = k
        .div_ceil(split.slices)
        .next_multiple_of(granule)
        .max(granule);
    let slices = k.div_ceil(k_split).max(1);
    let len_c = product("matmul C", m as usize, n as usize)?;
    let partial_len = product("matmul split_k scratch", len_c, slices as usize)?;
    if u32::try_from(partial_len).is_err() {
        return Err(Error::invalid(
            "matmul split_k",
            format!("{slices} slices of [{m}, {n}] exceed u32 indexing; use fewer slices"),
        ));
    }
    elements(gpu, "matmul split_k scratch", split.scratch, partial_len)?;
    distinct(split.scratch, others)?;
    let max = gpu.max_groups_per_dim();
    if slices > max {
        return Err(Error::invalid(
            "matmul split_k",
            format!("{slices} slices exceed the device's {max} workgroups per dimension"),
        ));
    }
    Ok((slices, k_split, partial_len))
}

/// The second pass: `c = act(sum of the slices' partials + bias) (+ c)`, f32.
pub(super) fn sum_slices(
    gpu: &Gpu,
    c: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
    [m, n, slices]: [u32; 3],
    opts: &MatmulOptions<'_>,
    fallback: &wgpu::Buffer,
) -> Result<()> {
    let len_c = m as usize * n as usize;
    let groups = fold_groups(gpu, (len_c as u64).div_ceil(256))?;
    let bias = opts.bias.unwrap_or(fallback);
    gpu.dispatch(
        Kernel {
            shader: "matmul_splitk",
            entry: "splitk_sum",
        },
        &SumParams {
            m,
            n,
            slices,
            flags: u32::from(opts.bias.is_some()) | (u32::from(opts.accumulate) << 1),
            act: opts.activation.code(),
            groups_x: groups[0],
            _pad: [0; 2],
        },
        &[
            Binding::f32s(c, len_c),
            Binding::f32s(scratch, slices as usize * len_c),
            Binding::f32s(bias, if opts.bias.is_some() { n as usize } else { 1 }),
        ],
        groups,
    )
}

/// The two passes of a split f32 product; `matmul` has validated A, B, C and the bias.
pub(super) fn matmul_split(
    gpu: &Gpu,
    [a, b, c]: [&wgpu::Buffer; 3],
    [m, n, k]: [u32; 3],
    [len_a, len_b, _]: [usize; 3],
    opts: &MatmulOptions<'_>,
    split: SplitK<'_>,
) -> Result<()> {
    let mut others = vec![a, b, c];
    others.extend(opts.bias);
    let (slices, k_split, partial_len) = checked_split(gpu, split, [m, n, k], 1, &others)?;
    // The slices fill the GPU together: the 128 tile where it fits, as for a large output.
    let transposed = opts.trans_a || opts.trans_b;
    let tile = match opts.tile {
        MatmulTile::Auto => choose_tile(gpu, MatmulTile::Auto, [1 << 20, 1 << 20], transposed)?,
        asked => choose_tile(gpu, asked, [m as usize, n as usize], transposed)?,
    };
    let edge = if tile == MatmulTile::T64 { 64 } else { 128 };
    let [gx, gy, _] = output_grid(gpu, m, n, edge)?;
    let mut params = Params::new(m, n, k, &MatmulOptions::default(), 0);
    params.set_k_split(k_split);
    gpu.dispatch(
        Kernel {
            shader: "matmul_sliced",
            ..kernel(tile, opts.trans_a, opts.trans_b)
        },
        &params,
        &[
            Binding::f32s(split.scratch, partial_len),
            Binding::f32s(a, len_a),
            Binding::f32s(b, len_b),
            Binding::f32s(a, 1),
        ],
        [gx, gy, slices],
    )?;
    sum_slices(gpu, c, split.scratch, [m, n, slices], opts, a)
}
