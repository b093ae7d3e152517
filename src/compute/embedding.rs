//! Entry points of `shaders/embedding.wgsl` (token and learned-position embedding, forward and
//! deterministic backward) and `shaders/dropout.wgsl` (a counter-based dropout mask).
//!
//! Token ids travel as f32 integers in an ordinary tensor (exact below 2^24), so a batch of
//! tokens is a [`crate::Tensor`] like any input; the kernels write NaN for an id that is not a
//! valid index, and the layer above checks ids on the host where it has them.

use super::validate::{distinct, elements, product};
use super::{Binding, Gpu, Kernel};
use crate::error::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    seq: u32,
    width: u32,
    vocab: u32,
    has_pos: u32,
    groups_x: u32,
    _pad: [u32; 2],
}

const fn kernel(shader: &'static str, entry: &'static str) -> Kernel {
    Kernel { shader, entry }
}

/// Workgroup counts covering `groups` workgroups, folding into the second dimension.
pub(crate) fn fold_groups(gpu: &Gpu, groups: u64) -> Result<[u32; 3]> {
    let max = u64::from(gpu.max_groups_per_dim());
    let groups = groups.max(1);
    let x = groups.min(max);
    let y = groups.div_ceil(x);
    if y > max {
        return Err(Error::invalid(
            "dispatch size",
            format!("{groups} workgroups exceed what one dispatch can cover"),
        ));
    }
    Ok([x as u32, y as u32, 1])
}

/// The sizes of an embedding lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmbeddingDims {
    /// Token rows (`batch * seq`).
    pub rows: usize,
    /// Tokens per sequence (positions `0..seq`).
    pub seq: usize,
    /// Features per token.
    pub width: usize,
    /// Rows of the token table.
    pub vocab: usize,
}

impl EmbeddingDims {
    fn params(&self, has_pos: bool, groups_x: u32) -> Result<Params> {
        if self.seq == 0 || self.rows % self.seq != 0 || self.width == 0 || self.vocab == 0 {
            return Err(Error::invalid(
                "embedding sizes",
                format!("{self:?}: rows must be a multiple of seq, and every size at least 1"),
            ));
        }
        Ok(Params {
            rows: self.rows as u32,
            seq: self.seq as u32,
            width: self.width as u32,
            vocab: self.vocab as u32,
            has_pos: u32::from(has_pos),
            groups_x,
            _pad: [0; 2],
        })
    }
}

/// `out[r, c] = table[ids[r], c] (+ positions[r % seq, c])`: `ids` holds `rows` token ids as
/// f32, `table` `[vocab, width]`, `positions` `[seq.., width]`, `out` `[rows, width]`. An id that
/// is not an integer in `0..vocab` gives a NaN row.
pub fn embedding_forward(
    gpu: &Gpu,
    dims: EmbeddingDims,
    ids: &wgpu::Buffer,
    table: &wgpu::Buffer,
    positions: Option<&wgpu::Buffer>,
    out: &wgpu::Buffer,
) -> Result<()> {
    let n = product("embedding_forward", dims.rows, dims.width)?;
    elements(gpu, "embedding_forward ids", ids, dims.rows)?;
    let table_len = product("embedding_forward", dims.vocab, dims.width)?;
    elements(gpu, "embedding_forward table", table, table_len)?;
    let pos_len = product("embedding_forward", dims.seq, dims.width)?;
    if let Some(p) = positions {
        elements(gpu, "embedding_forward positions", p, pos_len)?;
    }
    elements(gpu, "embedding_forward out", out, n)?;
    let positions_or_table = positions.unwrap_or(table);
    distinct(out, &[ids, table, positions_or_table])?;
    let groups = fold_groups(gpu, (n as u64).div_ceil(256))?;
    let params = dims.params(positions.is_some(), groups[0])?;
    gpu.dispatch(
        kernel("embedding", "embed_forward"),
        &params,
        &[
            Binding::f32s(out, n),
            Binding::f32s(table, table_len),
            Binding::f32s(ids, dims.rows),
            Binding::f32s(
                positions_or_table,
                if positions.is_some() {
                    pos_len
                } else {
                    table_len
                },
            ),
        ],
        groups,
    )
}

/// `table_grad[v, c] += Σ_{r : ids[r] = v} dy[r, c]`, summed in row order (deterministic).
pub fn embedding_backward_table(
    gpu: &Gpu,
    dims: EmbeddingDims,
    ids: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    table_grad: &wgpu::Buffer,
) -> Result<()> {
    let n = product("embedding_backward", dims.rows, dims.width)?;
    elements(gpu, "embedding_backward ids", ids, dims.rows)?;
    elements(gpu, "embedding_backward dy", dy, n)?;
    let table_len = product("embedding_backward", dims.vocab, dims.width)?;
    elements(gpu, "embedding_backward table_grad", table_grad, table_len)?;
    distinct(table_grad, &[ids, dy])?;
    let blocks = dims.width.div_ceil(64) as u32;
    let vocab = u32::try_from(dims.vocab)
        .ok()
        .filter(|&v| v <= gpu.max_groups_per_dim())
        .ok_or_else(|| {
            Error::invalid(
                "vocabulary size",
                format!(
                    "{} rows exceed the {} workgroups one dispatch dimension allows",
                    dims.vocab,
                    gpu.max_groups_per_dim()
                ),
            )
        })?;
    gpu.dispatch(
        kernel("embedding", "embed_grad_table"),
        &dims.params(false, blocks)?,
        &[
            Binding::f32s(table_grad, table_len),
            Binding::f32s(dy, n),
            Binding::f32s(ids, dims.rows),
        ],
        [blocks, vocab, 1],
    )
}

/// `pos_grad[t, c] += Σ_b dy[b * seq + t, c]` (deterministic).
pub fn embedding_backward_positions(
    gpu: &Gpu,
    dims: EmbeddingDims,
    dy: &wgpu::Buffer,
    pos_grad: &wgpu::Buffer,
) -> Result<()> {
    let n = product("embedding_backward", dims.rows, dims.width)?;
    elements(gpu, "embedding_backward dy", dy, n)?;
    let pos_len = product("embedding_backward", dims.seq, dims.width)?;
    elements(gpu, "embedding_backward pos_grad", pos_grad, pos_len)?;
    distinct(pos_grad, &[dy])?;
    let groups = fold_groups(gpu, (pos_len as u64).div_ceil(256))?;
    gpu.dispatch(
        kernel("embedding", "embed_grad_pos"),
        &dims.params(true, groups[0])?,
        &[Binding::f32s(pos_grad, pos_len), Binding::f32s(dy, n)],
        groups,
    )
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DropoutParams {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    step: u32,
    threshold: u32,
    scale: f32,
    groups_x: u32,
    _pad: u32,
}

/// Which elements a dropout pass keeps: element `i` is kept iff
/// `hash(seed, step, i) >= p * 2^32` (`shaders/dropout.wgsl` has the hash).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutMask {
    /// The layer's seed.
    pub seed: u64,
    /// The pass (each training step draws a fresh mask).
    pub step: u32,
    /// The probability of dropping an element, in `[0, 1)`.
    pub p: f32,
}

impl DropoutMask {
    /// The threshold the kernel compares the hash against.
    pub fn threshold(&self) -> u32 {
        (f64::from(self.p) * 4_294_967_296.0).min(u32::MAX as f64) as u32
    }
}

/// `y[i] = x[i] * keep(i) / (1 - p)` over `n` elements (forward on the input, backward on the
/// output gradient with the same mask).
pub fn dropout(
    gpu: &Gpu,
    mask: DropoutMask,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    if !(0.0..1.0).contains(&mask.p) {
        return Err(Error::invalid(
            "dropout probability",
            format!("{}; it must lie in [0, 1)", mask.p),
        ));
    }
    let n32 = elements(gpu, "dropout x", x, n)?;
    elements(gpu, "dropout y", y, n)?;
    distinct(y, &[x])?;
    if n == 0 {
        return Ok(());
    }
    let groups = fold_groups(gpu, (n as u64).div_ceil(256))?;
    gpu.dispatch(
        kernel("dropout", "dropout_apply"),
        &DropoutParams {
            n: n32,
            seed_lo: mask.seed as u32,
            seed_hi: (mask.seed >> 32) as u32,
            step: mask.step,
            threshold: mask.threshold(),
            scale: (1.0 / (1.0 - f64::from(mask.p))) as f32,
            groups_x: groups[0],
            _pad: 0,
        },
        &[Binding::f32s(y, n), Binding::f32s(x, n)],
        groups,
    )
}
