//! Entry points of `shaders/attention/` (fused causal attention, FlashAttention-2 style) and
//! `shaders/attention_naive.wgsl` (the reference that materialises `seq x seq`).
//!
//! The fused kernels exist on f32 activations and (the `_f16` twins, for mixed precision) on f16
//! `qkv`, `o`, `d_o` and `dqkv`, with f32 arithmetic, f32 workgroup tiles and f32 `lse` and
//! `delta`: one WGSL body, whose header piece names the activations' type.
//!
//! Both take the packed projection `qkv` `[batch * seq, 3 * width]` (queries, keys, values side
//! by side; head `h` in columns `h * dim ..` of each) and write `o` `[batch * seq, width]`.
//! The fused forward saves only `lse` `[batch * heads, seq]`; its backward recomputes the
//! probabilities tile by tile, so its memory is linear in `seq`. The naive one needs
//! `batch * heads * seq²` floats of probabilities, kept from forward to backward.

use super::attention_kernels::{FusedKernel, FusedKernels};
use super::validate::{distinct, distinct_written, elements, elements_of, product};
use super::{Binding, Gpu, Kernel};
use crate::DType;
use crate::error::{Error, Result};

/// The largest head size the kernels hold per thread.
pub const MAX_HEAD_DIM: usize = 64;

/// Workgroup memory of the blocked forward kernel (its Q, K, V, probability and per-group
/// tiles).
const FORWARD_WORKGROUP_BYTES: u32 = (544 + 544 + 512 + 288 + 64) * 16;

/// Workgroup memory of the blocked backward kernels (`attn_dkdv`'s, the larger: its K, V, Q,
/// dO, probability, score-gradient and row tiles).
const BACKWARD_WORKGROUP_BYTES: u32 = (544 + 544 + 272 + 272 + 144 + 144) * 16 + 2 * 32 * 4;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    seq: u32,
    heads: u32,
    dim: u32,
    width: u32,
    scale: f32,
    _pad: [u32; 2],
}

/// The shape of an attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    /// Sequences.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Heads.
    pub heads: usize,
    /// Features per head.
    pub head_dim: usize,
}

impl AttentionDims {
    /// `heads * head_dim`.
    pub fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Elements of `qkv`.
    pub fn qkv_len(&self) -> usize {
        self.batch * self.seq * 3 * self.width()
    }

    /// Elements of `o`.
    pub fn o_len(&self) -> usize {
        self.batch * self.seq * self.width()
    }

    /// Elements of `lse` (and of the backward pass's `delta`).
    pub fn rows_len(&self) -> usize {
        self.batch * self.heads * self.seq
    }

    /// Elements of the naive kernels' `seq x seq` buffers.
    pub fn square_len(&self) -> usize {
        self.rows_len() * self.seq
    }

    fn params(&self, op: &'static str) -> Result<Params> {
        let d = self.head_dim;
        if self.batch == 0 || self.seq == 0 || self.heads == 0 || d == 0 || d > MAX_HEAD_DIM {
            return Err(Error::invalid(
                "attention shape",
                format!(
                    "{op}: {self:?}; every size must be at least 1 and the head size at most {MAX_HEAD_DIM}"
                ),
            ));
        }
        product(op, self.batch * self.seq, 3 * self.width())?;
        Ok(Params {
            batch: self.batch as u32,
            seq: self.seq as u32,
            heads: self.heads as u32,
            dim: d as u32,
            width: self.width() as u32,
            scale: (1.0 / (d as f64).sqrt()) as f32,
            _pad: [0; 2],
        })
    }

    fn grid(&self, gpu: &Gpu, op: &'static str, kernel: FusedKernel) -> Result<[u32; 3]> {
        let tiles = self.seq.div_ceil(kernel.rows());
        let heads = self.batch * self.heads;
        let max = gpu.max_groups_per_dim() as usize;
        if tiles > max || heads > max {
            return Err(Error::invalid(
                "attention shape",
                format!("{op}: {self:?} needs more workgroups than one dispatch allows"),
            ));
        }
        Ok([tiles as u32, heads as u32, 1])
    }
}

/// [`Error::InvalidArgument`] unless the device gives a workgroup `bytes` of memory (the
/// blocked kernels; one row per thread needs 16 KiB, WebGPU's least).
fn workgroup_storage(gpu: &Gpu, op: &'static str, kernel: FusedKernel, bytes: u32) -> Result<()> {
    if kernel == FusedKernel::Rows {
        return Ok(());
    }
    let storage = gpu.limits().max_compute_workgroup_storage_size;
    if storage < bytes {
        return Err(Error::invalid(
            "attention workgroup memory",
            format!("{op} needs {bytes} bytes of workgroup memory; this device has {storage}"),
        ));
    }
    Ok(())
}

const fn kernel(shader: &'static str, entry: &'static str) -> Kernel {
    Kernel { shader, entry }
}

/// The fused module of `kernel` for activations of type `act`; f16 needs `SHADER_F16`. The
/// two variants are separate modules, so that a backend that counted workgroup memory over a
/// whole module would still see each within its limit.
fn fused(gpu: &Gpu, act: DType, kernel: FusedKernel) -> Result<&'static str> {
    if act == DType::F16 {
        gpu.require_f16()?;
    }
    Ok(match (act, kernel) {
        (DType::F32, FusedKernel::Blocked) => "attention",
        (DType::F32, FusedKernel::Rows) => "attention_rows",
        (DType::F16, FusedKernel::Blocked) => "attention_f16",
        (DType::F16, FusedKernel::Rows) => "attention_rows_f16",
    })
}

/// Fused causal attention forward: `o = softmax(q kᵀ / sqrt(dim), causal) v` per head, and
/// `lse[bh, i]` = the log of row `i`'s softmax denominator (with its maximum folded in). Runs
/// the kernel [`FusedKernels::current`] names.
pub fn attention_forward(
    gpu: &Gpu,
    dims: AttentionDims,
    qkv: &wgpu::Buffer,
    o: &wgpu::Buffer,
    lse: &wgpu::Buffer,
) -> Result<()> {
    let kernel = FusedKernels::current().forward;
    forward(gpu, DType::F32, kernel, dims, qkv, o, lse)
}

/// As [`attention_forward`], with the kernel named.
pub fn attention_forward_with(
    gpu: &Gpu,
    kernel: FusedKernel,
    dims: AttentionDims,
    qkv: &wgpu::Buffer,
    o: &wgpu::Buffer,
    lse: &wgpu::Buffer,
) -> Result<()> {
    forward(gpu, DType::F32, kernel, dims, qkv, o, lse)
}

/// As [`attention_forward`], with `qkv` and `o` f16 (f32 arithmetic, `o` rounded once); `lse`
/// stays f32. Needs `SHADER_F16` ([`Gpu::supports_f16`]).
pub fn attention_forward_f16(
    gpu: &Gpu,
    dims: AttentionDims,
    qkv: &wgpu::Buffer,
    o: &wgpu::Buffer,
    lse: &wgpu::Buffer,
) -> Result<()> {
    let kernel = FusedKernels::current().forward;
    forward(gpu, DType::F16, kernel, dims, qkv, o, lse)
}

fn forward(
    gpu: &Gpu,
    act: DType,
    which: FusedKernel,
    dims: AttentionDims,
    qkv: &wgpu::Buffer,
    o: &wgpu::Buffer,
    lse: &wgpu::Buffer,
) -> Result<()> {
    let shader = fused(gpu, act, which)?;
    let params = dims.params("attention_forward")?;
    elements_of(gpu, "attention_forward qkv", qkv, dims.qkv_len(), act)?;
    elements_of(gpu, "attention_forward o", o, dims.o_len(), act)?;
    elements(gpu, "attention_forward lse", lse, dims.rows_len())?;
    distinct_written(&[o, lse])?;
    distinct(o, &[qkv])?;
    distinct(lse, &[qkv])?;
    workgroup_storage(gpu, "attention_forward", which, FORWARD_WORKGROUP_BYTES)?;
    gpu.dispatch(
        kernel(shader, which.entry("attn_forward")),
        &params,
        &[
            Binding::of(o, dims.o_len(), act),
            Binding::of(qkv, dims.qkv_len(), act),
            Binding::f32s(lse, dims.rows_len()),
        ],
        dims.grid(gpu, "attention_forward", which)?,
    )
}

/// What the fused backward pass reads: the forward's inputs and outputs and the output
/// gradient.
#[derive(Debug, Clone, Copy)]
pub struct AttentionSaved<'a> {
    /// `[batch * seq, 3 * width]`.
    pub qkv: &'a wgpu::Buffer,
    /// `[batch * seq, width]`.
    pub o: &'a wgpu::Buffer,
    /// `[batch * heads, seq]`.
    pub lse: &'a wgpu::Buffer,
}

/// Fused causal attention backward: writes `dqkv` `[batch * seq, 3 * width]` (every element)
/// from `d_o`; `delta` is `[batch * heads, seq]` scratch.
pub fn attention_backward(
    gpu: &Gpu,
    dims: AttentionDims,
    saved: &AttentionSaved<'_>,
    d_o: &wgpu::Buffer,
    dqkv: &wgpu::Buffer,
    delta: &wgpu::Buffer,
) -> Result<()> {
    let how = (DType::F32, FusedKernels::current());
    backward(gpu, how, dims, saved, d_o, dqkv, delta)
}

/// As [`attention_backward`], with the kernels of the dq and dkdv passes named
/// (`kernels.forward` is not used).
pub fn attention_backward_with(
    gpu: &Gpu,
    kernels: FusedKernels,
    dims: AttentionDims,
    saved: &AttentionSaved<'_>,
    d_o: &wgpu::Buffer,
    dqkv: &wgpu::Buffer,
    delta: &wgpu::Buffer,
) -> Result<()> {
    backward(gpu, (DType::F32, kernels), dims, saved, d_o, dqkv, delta)
}

/// As [`attention_backward`], with `saved.qkv`, `saved.o`, `d_o` and `dqkv` f16 (f32
/// arithmetic, `dqkv` rounded once); `saved.lse` and `delta` stay f32. Needs `SHADER_F16`.
pub fn attention_backward_f16(
    gpu: &Gpu,
    dims: AttentionDims,
    saved: &AttentionSaved<'_>,
    d_o: &wgpu::Buffer,
    dqkv: &wgpu::Buffer,
    delta: &wgpu::Buffer,
) -> Result<()> {
    let how = (DType::F16, FusedKernels::current());
    backward(gpu, how, dims, saved, d_o, dqkv, delta)
}

/// `how`: the activations' type and the kernels.
fn backward(
    gpu: &Gpu,
    (act, kernels): (DType, FusedKernels),
    dims: AttentionDims,
    saved: &AttentionSaved<'_>,
    d_o: &wgpu::Buffer,
    dqkv: &wgpu::Buffer,
    delta: &wgpu::Buffer,
) -> Result<()> {
    let (dq_shader, dkdv_shader) = (fused(gpu, act, kernels.dq)?, fused(gpu, act, kernels.dkdv)?);
    let params = dims.params("attention_backward")?;
    let (q, o, r) = (dims.qkv_len(), dims.o_len(), dims.rows_len());
    elements_of(gpu, "attention_backward qkv", saved.qkv, q, act)?;
    elements_of(gpu, "attention_backward o", saved.o, o, act)?;
    elements(gpu, "attention_backward lse", saved.lse, r)?;
    elements_of(gpu, "attention_backward d_o", d_o, o, act)?;
    elements_of(gpu, "attention_backward dqkv", dqkv, q, act)?;
    elements(gpu, "attention_backward delta", delta, r)?;
    distinct_written(&[dqkv, delta, saved.lse])?;
    for w in [dqkv, delta] {
        distinct(w, &[saved.qkv, saved.o, d_o])?;
    }
    let op = "attention_backward";
    for pass in [kernels.dq, kernels.dkdv] {
        workgroup_storage(gpu, op, pass, BACKWARD_WORKGROUP_BYTES)?;
    }
    let (dq_grid, dkdv_grid) = (
        dims.grid(gpu, op, kernels.dq)?,
        dims.grid(gpu, op, kernels.dkdv)?,
    );
    let bindings = [
        Binding::of(dqkv, q, act),
        Binding::of(saved.qkv, q, act),
        Binding::f32s(saved.lse, r),
        Binding::of(d_o, o, act),
        Binding::f32s(delta, r),
        Binding::of(saved.o, o, act),
    ];
    let dq = kernel(dq_shader, kernels.dq.entry("attn_dq"));
    gpu.dispatch(dq, &params, &bindings, dq_grid)?;
    let dkdv = kernel(dkdv_shader, kernels.dkdv.entry("attn_dkdv"));
    gpu.dispatch(dkdv, &params, &bindings[..5], dkdv_grid)
}

fn naive_groups(gpu: &Gpu, dims: &AttentionDims) -> Result<[u32; 3]> {
    let groups = dims.rows_len().div_ceil(64) as u64;
    if groups > u64::from(gpu.max_groups_per_dim()) {
        return Err(Error::invalid(
            "attention shape",
            format!("naive attention: {dims:?} needs more workgroups than one dispatch allows"),
        ));
    }
    Ok([groups as u32, 1, 1])
}

/// The naive reference forward: writes the probabilities `p` `[batch * heads, seq, seq]`
/// (masked entries 0), `lse` and `o`.
pub fn attention_naive_forward(
    gpu: &Gpu,
    dims: AttentionDims,
    qkv: &wgpu::Buffer,
    p: &wgpu::Buffer,
    o: &wgpu::Buffer,
    lse: &wgpu::Buffer,
) -> Result<()> {
    let params = dims.params("attention_naive_forward")?;
    let (q, sq) = (dims.qkv_len(), dims.square_len());
    elements(gpu, "attention_naive_forward qkv", qkv, q)?;
    elements(gpu, "attention_naive_forward p", p, sq)?;
    elements(gpu, "attention_naive_forward o", o, dims.o_len())?;
    elements(gpu, "attention_naive_forward lse", lse, dims.rows_len())?;
    distinct_written(&[p, o, lse])?;
    for w in [p, o, lse] {
        distinct(w, &[qkv])?;
    }
    gpu.dispatch(
        kernel("attention_naive", "naive_forward"),
        &params,
        &[
            Binding::f32s(p, sq),
            Binding::f32s(qkv, q),
            Binding::f32s(o, dims.o_len()),
            Binding::f32s(lse, dims.rows_len()),
        ],
        naive_groups(gpu, &dims)?,
    )
}

/// The naive reference backward from the forward's `p`: writes `dqkv`; `ds` is
/// `[batch * heads, seq, seq]` scratch.
pub fn attention_naive_backward(
    gpu: &Gpu,
    dims: AttentionDims,
    qkv: &wgpu::Buffer,
    p: &wgpu::Buffer,
    d_o: &wgpu::Buffer,
    dqkv: &wgpu::Buffer,
    ds: &wgpu::Buffer,
) -> Result<()> {
    let params = dims.params("attention_naive_backward")?;
    let (q, sq) = (dims.qkv_len(), dims.square_len());
    elements(gpu, "attention_naive_backward qkv", qkv, q)?;
    elements(gpu, "attention_naive_backward p", p, sq)?;
    elements(gpu, "attention_naive_backward d_o", d_o, dims.o_len())?;
    elements(gpu, "attention_naive_backward dqkv", dqkv, q)?;
    elements(gpu, "attention_naive_backward ds", ds, sq)?;
    distinct_written(&[dqkv, ds, p])?;
    for w in [dqkv, ds] {
        distinct(w, &[qkv, d_o])?;
    }
    let groups = naive_groups(gpu, &dims)?;
    let bindings = [
        Binding::f32s(p, sq),
        Binding::f32s(qkv, q),
        Binding::f32s(dqkv, q),
        Binding::f32s(ds, sq),
        Binding::f32s(d_o, dims.o_len()),
    ];
    gpu.dispatch(
        kernel("attention_naive", "naive_backward_dq"),
        &params,
        &bindings,
        groups,
    )?;
    gpu.dispatch(
        kernel("attention_naive", "naive_backward_dkdv"),
        &params,
        &bindings,
        groups,
    )
}
