//! Entry points of `shaders/embedding/` (token and learned-position embedding, forward and
//! deterministic backward) and `shaders/dropout/` (a counter-based dropout mask), on f32
//! activations and (the `_f16` twins, for mixed precision) on f16 activations with f32
//! arithmetic: the embedding's output and its gradient, dropout's input and output. Tables,
//! token ids and table gradients are f32 in both. One WGSL body serves both; its header piece
//! names the activations' type.
//!
//! Token ids travel as f32 integers in an ordinary tensor (exact below 2^24), so a batch of
//! tokens is a [`crate::Tensor`] like any input; the kernels write NaN for an id that is not a
//! valid index, and the layer above checks ids on the host where it has them.

use super::validate::{distinct, elements, elements_of, product};
use super::{Binding, Gpu, Kernel};
use crate::DType;
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

/// `entry` of the module `f32_shader` (f32 activations) or `f16_shader` (f16 activations, which
/// need `SHADER_F16`).
fn kernel(
    gpu: &Gpu,
    act: DType,
    [f32_shader, f16_shader]: [&'static str; 2],
    entry: &'static str,
) -> Result<Kernel> {
    let shader = match act {
        DType::F32 => f32_shader,
        DType::F16 => {
            gpu.require_f16()?;
            f16_shader
        }
    };
    Ok(Kernel { shader, entry })
}

const EMBEDDING: [&str; 2] = ["embedding", "embedding_f16"];

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
    forward(gpu, DType::F32, dims, ids, table, positions, out)
}

/// As [`embedding_forward`], with `out` f16 (each element the f16 rounding of the f32 sum);
/// `ids`, `table` and `positions` stay f32. Needs `SHADER_F16` ([`Gpu::supports_f16`]).
pub fn embedding_forward_f16(
    gpu: &Gpu,
    dims: EmbeddingDims,
    ids: &wgpu::Buffer,
    table: &wgpu::Buffer,
    positions: Option<&wgpu::Buffer>,
    out: &wgpu::Buffer,
) -> Result<()> {
    forward(gpu, DType::F16, dims, ids, table, positions, out)
}

fn forward(
    gpu: &Gpu,
    act: DType,
    dims: EmbeddingDims,
    ids: &wgpu::Buffer,
    table: &wgpu::Buffer,
    positions: Option<&wgpu::Buffer>,
    out: &wgpu::Buffer,
) -> Result<()> {
    let kernel = kernel(gpu, act, EMBEDDING, "embed_forward")?;
    let n = product("embedding_forward", dims.rows, dims.width)?;
    elements(gpu, "embedding_forward ids", ids, dims.rows)?;
    let table_len = product("embedding_forward", dims.vocab, dims.width)?;
    elements(gpu, "embedding_forward table", table, table_len)?;
    let pos_len = product("embedding_forward", dims.seq, dims.width)?;
    if let Some(p) = positions {
        elements(gpu, "embedding_forward positions", p, pos_len)?;
    }
    elements_of(gpu, "embedding_forward out", out, n, act)?;
    let positions_or_table = positions.unwrap_or(table);
    distinct(out, &[ids, table, positions_or_table])?;
    let groups = fold_groups(gpu, (n as u64).div_ceil(256))?;
    let params = dims.params(positions.is_some(), groups[0])?;
    gpu.dispatch(
        kernel,
        &params,
        &[
            Binding::of(out, n, act),
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
    backward_table(gpu, DType::F32, dims, ids, dy, table_grad)
}

/// As [`embedding_backward_table`], with `dy` f16 (summed in f32); `ids` and `table_grad` stay
/// f32. Needs `SHADER_F16`.
pub fn embedding_backward_table_f16(
    gpu: &Gpu,
    dims: EmbeddingDims,
    ids: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    table_grad: &wgpu::Buffer,
) -> Result<()> {
    backward_table(gpu, DType::F16, dims, ids, dy, table_grad)
}

fn backward_table(
    gpu: &Gpu,
    act: DType,
    dims: EmbeddingDims,
    ids: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    table_grad: &wgpu::Buffer,
) -> Result<()> {
    let kernel = kernel(gpu, act, EMBEDDING, "embed_grad_table")?;
    let n = product("embedding_backward", dims.rows, dims.width)?;
    elements(gpu, "embedding_backward ids", ids, dims.rows)?;
    elements_of(gpu, "embedding_backward dy", dy, n, act)?;
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
    // Slots of shaders/embedding/body.wgsl.
    gpu.dispatch_slots(
        kernel,
        &dims.params(false, blocks)?,
        &[
            (3, Binding::f32s(ids, dims.rows)),
            (5, Binding::f32s(table_grad, table_len)),
            (6, Binding::of(dy, n, act)),
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
    backward_positions(gpu, DType::F32, dims, dy, pos_grad)
}

/// As [`embedding_backward_positions`], with `dy` f16 (summed in f32); `pos_grad` stays f32.
/// Needs `SHADER_F16`.
pub fn embedding_backward_positions_f16(
    gpu: &Gpu,
    dims: EmbeddingDims,
    dy: &wgpu::Buffer,
    pos_grad: &wgpu::Buffer,
) -> Result<()> {
    backward_positions(gpu, DType::F16, dims, dy, pos_grad)
}

fn backward_positions(
    gpu: &Gpu,
    act: DType,
    dims: EmbeddingDims,
    dy: &wgpu::Buffer,
    pos_grad: &wgpu::Buffer,
) -> Result<()> {
    let kernel = kernel(gpu, act, EMBEDDING, "embed_grad_pos")?;
    let n = product("embedding_backward", dims.rows, dims.width)?;
    elements_of(gpu, "embedding_backward dy", dy, n, act)?;
    let pos_len = product("embedding_backward", dims.seq, dims.width)?;
    elements(gpu, "embedding_backward pos_grad", pos_grad, pos_len)?;
    distinct(pos_grad, &[dy])?;
    let groups = fold_groups(gpu, (pos_len as u64).div_ceil(256))?;
    gpu.dispatch_slots(
        kernel,
        &dims.params(true, groups[0])?,
        &[
            (5, Binding::f32s(pos_grad, pos_len)),
            (6, Binding::of(dy, n, act)),
        ],
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
/// `hash(seed, step, i) >= p * 2^32` (`shaders/dropout/body.wgsl` has the hash).
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
    dropout_as(gpu, DType::F32, mask, x, y, n)
}

/// As [`dropout`], with `x` and `y` f16 (the product in f32, rounded once); the mask is the
/// f32 kernel's for the same [`DropoutMask`]. Needs `SHADER_F16`.
pub fn dropout_f16(
    gpu: &Gpu,
    mask: DropoutMask,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    dropout_as(gpu, DType::F16, mask, x, y, n)
}

fn dropout_as(
    gpu: &Gpu,
    act: DType,
    mask: DropoutMask,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    n: usize,
) -> Result<()> {
    let kernel = kernel(gpu, act, ["dropout", "dropout_f16"], "dropout_apply")?;
    if !(0.0..1.0).contains(&mask.p) {
        return Err(Error::invalid(
            "dropout probability",
            format!("{}; it must lie in [0, 1)", mask.p),
        ));
    }
    let n32 = elements_of(gpu, "dropout x", x, n, act)?;
    elements_of(gpu, "dropout y", y, n, act)?;
    distinct(y, &[x])?;
    if n == 0 {
        return Ok(());
    }
    let groups = fold_groups(gpu, (n as u64).div_ceil(256))?;
    gpu.dispatch(
        kernel,
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
        &[Binding::of(y, n, act), Binding::of(x, n, act)],
        groups,
    )
}
