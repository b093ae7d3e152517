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

/// How many K slices [`crate::ops::matmul`] splits an f32 `[m, k] · [k, n]` product into: more
/// than 1 only where the output has fewer 128 x 128 tiles than fill a large GPU and K is long
/// enough to give every slice at least 512. 1 where the device runs a simdgroup f32 kernel
/// instead of the tiles. Tuned for the H200 like the tile choice; on a GPU of a few cores the
/// second pass costs a few percent more than it gains.
pub fn split_k_slices(gpu: &Gpu, m: usize, n: usize, k: usize) -> u32 {
    if gpu.matmul_kernels().f32.kernel().is_some() {
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

/// The two passes of a split product; `matmul` has validated A, B, C and the bias.
pub(super) fn matmul_split(
    gpu: &Gpu,
    [a, b, c]: [&wgpu::Buffer; 3],
    [m, n, k]: [u32; 3],
    [len_a, len_b, len_c]: [usize; 3],
    opts: &MatmulOptions<'_>,
    split: SplitK<'_>,
) -> Result<()> {
    if split.slices == 0 {
        return Err(Error::invalid(
            "matmul split_k",
            "0 slices; use at least 1 (or no split_k)",
        ));
    }
    // More slices than k's would leave some empty; a slice needs at least one k.
    let slices = split.slices.min(k.max(1));
    let partial_len = product("matmul split_k scratch", len_c, slices as usize)?;
    if u32::try_from(partial_len).is_err() {
        return Err(Error::invalid(
            "matmul split_k",
            format!("{slices} slices of [{m}, {n}] exceed u32 indexing; use fewer slices"),
        ));
    }
    elements(gpu, "matmul split_k scratch", split.scratch, partial_len)?;
    let mut others = vec![a, b, c];
    others.extend(opts.bias);
    distinct(split.scratch, &others)?;
    let max = gpu.max_groups_per_dim();
    if slices > max {
        return Err(Error::invalid(
            "matmul split_k",
            format!("{slices} slices exceed the device's {max} workgroups per dimension"),
        ));
    }

    // The slices fill the GPU together: the 128 tile where it fits, as for a large output.
    let tile = match opts.tile {
        MatmulTile::Auto => choose_tile(gpu, MatmulTile::Auto, 1 << 20, 1 << 20, false)?,
        asked => choose_tile(gpu, asked, m as usize, n as usize, false)?,
    };
    let edge = if tile == MatmulTile::T64 { 64 } else { 128 };
    let [gx, gy, _] = output_grid(gpu, m, n, edge)?;
    let mut params = Params::new(m, n, k, &MatmulOptions::default(), 0);
    params.set_k_split(k.div_ceil(slices));
    gpu.dispatch(
        kernel(tile, opts.trans_a, opts.trans_b),
        &params,
        &[
            Binding::f32s(split.scratch, partial_len),
            Binding::f32s(a, len_a),
            Binding::f32s(b, len_b),
            Binding::f32s(a, 1),
        ],
        [gx, gy, slices],
    )?;

    let groups = fold_groups(gpu, (len_c as u64).div_ceil(256))?;
    let bias = opts.bias.unwrap_or(a);
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
            Binding::f32s(split.scratch, partial_len),
            Binding::f32s(bias, if opts.bias.is_some() { n as usize } else { 1 }),
        ],
        groups,
    )
}
