//! Column sums of a row-major matrix into f32 (`shaders/colsum/`): the gradient of a bias
//! broadcast over rows, from an f32 or f16 output gradient.
//!
//! One workgroup per 32 columns is all a wide matrix needs, but a bias gradient is tall and
//! narrow: 16,384 rows of 1,152 columns gave 36 workgroups to a 132-SM GPU, each thread adding
//! 2,048 values in a row (0.23 ms where the bandwidth allows 0.03). With a scratch buffer for
//! partial sums the rows are cut into chunks of [`CHUNK_ROWS`] summed side by side, then the
//! chunk sums are added in a second pass. The order is fixed either way (deterministic).

use super::embedding::fold_groups;
use super::validate::{distinct, elements, elements_of, product};
use super::{Binding, Gpu, Kernel};
use crate::DType;
use crate::error::Result;

/// Rows per chunk of a chunked column sum.
pub const CHUNK_ROWS: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    chunk_rows: u32,
    accumulate: u32,
}

/// The f32 values a chunked column sum of `[rows, cols]` needs for its partial sums, or `None`
/// where one pass is as fast (at most two chunks). `WGMEM_COLSUM_CHUNKS=off` (read once) makes
/// it `None` always, for benchmarks that time the step without chunks.
pub fn column_sum_partials(rows: usize, cols: usize) -> Option<usize> {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *OFF.get_or_init(|| std::env::var("WGMEM_COLSUM_CHUNKS").is_ok_and(|v| v == "off")) {
        return None;
    }
    (rows > 2 * CHUNK_ROWS).then(|| rows.div_ceil(CHUNK_ROWS) * cols)
}

/// `out[c] (+)= sum over r of x[r, c]` for a row-major `[rows, cols]` matrix of `dtype`; `out`
/// holds `cols` f32 values, added to when `accumulate`. With `partials` (at least
/// [`column_sum_partials`] f32s) a tall matrix is summed in chunks side by side.
pub fn column_sums_of(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    dtype: DType,
    [rows, cols]: [usize; 2],
    out: &wgpu::Buffer,
    accumulate: bool,
    partials: Option<&wgpu::Buffer>,
) -> Result<()> {
    if dtype == DType::F16 {
        gpu.require_f16()?;
    }
    let n = product("column_sums", rows, cols)?;
    let rows32 = elements_of(gpu, "column_sums x", x, n, dtype).map(|_| rows as u32)?;
    let cols32 = elements(gpu, "column_sums out", out, cols)?;
    distinct(out, &[x])?;
    if cols == 0 {
        return Ok(());
    }
    let shader = match dtype {
        DType::F32 => "colsum",
        DType::F16 => "colsum_f16",
    };
    let chunks = rows.div_ceil(CHUNK_ROWS) as u32;
    match (partials, column_sum_partials(rows, cols)) {
        (Some(p), Some(len)) if chunks <= gpu.max_groups_per_dim() => {
            elements(gpu, "column_sums partials", p, len)?;
            distinct(p, &[x, out])?;
            pass(
                gpu,
                shader,
                [x, p],
                dtype,
                [rows32, cols32],
                CHUNK_ROWS as u32,
                chunks,
                false,
            )?;
            pass(
                gpu,
                "colsum",
                [p, out],
                DType::F32,
                [chunks, cols32],
                chunks,
                1,
                accumulate,
            )
        }
        _ => pass(
            gpu,
            shader,
            [x, out],
            dtype,
            [rows32, cols32],
            rows32,
            1,
            accumulate,
        ),
    }
}

/// One dispatch: `chunks` chunks of `chunk_rows` rows of `x` into `out` (`chunks * cols`).
#[allow(clippy::too_many_arguments)]
fn pass(
    gpu: &Gpu,
    shader: &'static str,
    [x, out]: [&wgpu::Buffer; 2],
    dtype: DType,
    [rows, cols]: [u32; 2],
    chunk_rows: u32,
    chunks: u32,
    accumulate: bool,
) -> Result<()> {
    let [gx, gy, _] = fold_groups(gpu, u64::from(cols.div_ceil(32)))?;
    gpu.dispatch(
        Kernel {
            shader,
            entry: "col_sums",
        },
        &Params {
            rows,
            cols,
            chunk_rows,
            accumulate: u32::from(accumulate),
        },
        &[
            Binding::f32s(out, chunks as usize * cols as usize),
            Binding::of(x, rows as usize * cols as usize, dtype),
        ],
        [gx, gy, chunks],
    )
}

/// `out[c] = sum over r of x[r, c]` for a row-major f32 `[rows, cols]` matrix, in one pass: the
/// gradient of a bias broadcast over rows. `out` receives `cols` values.
pub fn column_sums(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    out: &wgpu::Buffer,
) -> Result<()> {
    column_sums_of(gpu, x, DType::F32, [rows, cols], out, false, None)
}

/// `out[c] (+)= sum over r of x[r, c]` for an f16 row-major `[rows, cols]` matrix, in one pass;
/// `out` holds `cols` f32 values, added to when `accumulate`.
pub fn column_sums_f16(
    gpu: &Gpu,
    x: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    out: &wgpu::Buffer,
    accumulate: bool,
) -> Result<()> {
    column_sums_of(gpu, x, DType::F16, [rows, cols], out, accumulate, None)
}
