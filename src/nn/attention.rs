//! `CausalSelfAttention`: multi-head causal self-attention, `y = proj(attend(qkv(x)))`.
//!
//! The projections are [`Linear`] layers (one packed `width → 3 width` for queries, keys and
//! values; one `width → width` out); the attention between them runs fused
//! (`shaders/attention.wgsl`: online softmax, nothing of size `seq x seq` in memory, so the
//! saved activations grow linearly in the context) or, as a reference, naive
//! (`shaders/attention_naive.wgsl`: it keeps the `seq x seq` probabilities of every head).
//!
//! Mixed precision ([`Module::set_precision`] with f16): the projections keep f16 working
//! weights, and the fused kernels read f16 queries, keys and values and write f16 outputs and
//! gradients, with the softmax statistics (`lse`, `delta`) in f32. The naive reference has no
//! f16 version: asking for both is an error.

use super::{Linear, Module, Parameter, missing_saved};
use crate::DType;
use crate::compute::{self, AttentionDims, MAX_HEAD_DIM};
use crate::error::{Error, Result};
use crate::ops::{self, AttentionForward};
use crate::tensor::{Context, Tensor, tags};
use std::sync::Arc;

/// Which kernels compute the attention itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttentionKernel {
    /// FlashAttention-2 style: memory linear in the context. The default.
    #[default]
    Fused,
    /// The reference: materialises `batch * heads * seq²` probabilities (tests, benchmarks).
    Naive,
}

struct Saved {
    dims: AttentionDims,
    qkv: Arc<Tensor>,
    o: Arc<Tensor>,
    /// Fused: `lse` `[batch * heads, seq]`. Naive: the probabilities.
    rows: Tensor,
}

/// Causal multi-head self-attention over `[batch, seq, width]`, `heads` heads of
/// `width / heads` features (at most 64). Scores are scaled by `1 / sqrt(head size)`; token
/// `t` attends to tokens `0..=t`.
pub struct CausalSelfAttention {
    ctx: Arc<Context>,
    heads: usize,
    qkv: Linear,
    proj: Linear,
    kernel: AttentionKernel,
    dtype: DType,
    saved: Option<Saved>,
}

impl CausalSelfAttention {
    /// Attention of `heads` heads over `width` features; projection weights from `seed`.
    pub fn new(ctx: &Arc<Context>, width: usize, heads: usize, seed: u64) -> Result<Self> {
        if heads == 0 || width == 0 || width % heads != 0 {
            return Err(Error::invalid(
                "attention heads",
                format!("{heads} heads do not divide the width {width}; pick a divisor of it"),
            ));
        }
        if width / heads > MAX_HEAD_DIM {
            return Err(Error::invalid(
                "attention head size",
                format!(
                    "width {width} / {heads} heads = {} features per head; the kernels take at most {MAX_HEAD_DIM}: use more heads",
                    width / heads
                ),
            ));
        }
        Ok(Self {
            ctx: Arc::clone(ctx),
            heads,
            qkv: Linear::new(ctx, width, 3 * width, seed)?,
            proj: Linear::new(ctx, width, width, seed.wrapping_add(1))?,
            kernel: AttentionKernel::Fused,
            dtype: DType::F32,
            saved: None,
        })
    }

    /// Chooses the attention kernels.
    pub fn with_kernel(mut self, kernel: AttentionKernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// The type of the activations: f16 in mixed precision.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Features in and out.
    pub fn width(&self) -> usize {
        self.qkv.inputs()
    }

    /// Heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    /// The packed query/key/value projection (`width → 3 width`).
    pub fn qkv(&self) -> &Linear {
        &self.qkv
    }

    /// The output projection.
    pub fn proj(&self) -> &Linear {
        &self.proj
    }

    fn dims(&self, input: &Tensor) -> Result<AttentionDims> {
        match *input.shape() {
            [batch, seq, w] if w == self.width() && batch > 0 && seq > 0 => Ok(AttentionDims {
                batch,
                seq,
                heads: self.heads,
                head_dim: w / self.heads,
            }),
            _ => Err(Error::Shape {
                op: "CausalSelfAttention::forward",
                left: input.shape().to_vec(),
                right: vec![self.width()],
                reason: format!("expected [batch, seq, {}]", self.width()),
            }),
        }
    }
}

impl Module for CausalSelfAttention {
    fn name(&self) -> String {
        format!(
            "CausalSelfAttention({}, {} heads{})",
            self.width(),
            self.heads,
            if self.kernel == AttentionKernel::Naive {
                ", naive"
            } else {
                ""
            }
        )
    }

    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        let dims = self.dims(&input)?;
        let qkv = self.qkv.forward(input, save)?;
        let ctx = &self.ctx;
        let o = ctx.uninit_of(
            &[dims.batch, dims.seq, dims.width()],
            self.dtype,
            tags::ACTIVATIONS,
        )?;
        let tag = if save {
            tags::ACTIVATIONS
        } else {
            tags::SCRATCH
        };
        let rows = match self.kernel {
            AttentionKernel::Fused => {
                let lse = ctx.uninit(&[dims.rows_len()], tag)?;
                ops::attention_forward(dims, &qkv, &o, &lse)?;
                lse
            }
            AttentionKernel::Naive => {
                let p = ctx.uninit(&[dims.square_len()], tag)?;
                let lse = ctx.uninit(&[dims.rows_len()], tags::SCRATCH)?;
                compute::attention_naive_forward(
                    ctx.gpu(),
                    dims,
                    qkv.raw(),
                    p.raw(),
                    o.raw(),
                    lse.raw(),
                )?;
                p
            }
        };
        let o = Arc::new(o);
        let y = self.proj.forward(Arc::clone(&o), save)?;
        if save {
            self.saved = Some(Saved { dims, qkv, o, rows });
        }
        Ok(y)
    }

    fn backward(&mut self, grad: Tensor, input_grad: bool) -> Result<Option<Tensor>> {
        let saved = self
            .saved
            .take()
            .ok_or_else(|| missing_saved("CausalSelfAttention"))?;
        let d_o = self
            .proj
            .backward(grad, true)?
            .expect("asked for the input gradient");
        let ctx = &self.ctx;
        let dims = saved.dims;
        let dqkv = ctx.uninit_of(saved.qkv.shape(), self.dtype, tags::ACTIVATIONS)?;
        match self.kernel {
            AttentionKernel::Fused => {
                let delta = ctx.uninit(&[dims.rows_len()], tags::SCRATCH)?;
                ops::attention_backward(
                    dims,
                    &AttentionForward {
                        qkv: &saved.qkv,
                        o: &saved.o,
                        lse: &saved.rows,
                    },
                    &d_o,
                    &dqkv,
                    &delta,
                )?;
            }
            AttentionKernel::Naive => {
                let ds = ctx.uninit(&[dims.square_len()], tags::SCRATCH)?;
                compute::attention_naive_backward(
                    ctx.gpu(),
                    dims,
                    saved.qkv.raw(),
                    saved.rows.raw(),
                    d_o.raw(),
                    dqkv.raw(),
                    ds.raw(),
                )?;
            }
        }
        drop(saved);
        drop(d_o);
        self.qkv.backward(dqkv, input_grad)
    }

    fn set_precision(&mut self, dtype: DType) -> Result<()> {
        if dtype == DType::F16 && self.kernel == AttentionKernel::Naive {
            return Err(Error::invalid(
                "attention precision",
                "the naive reference attention runs in f32 only; use AttentionKernel::Fused for mixed precision",
            ));
        }
        self.qkv.set_precision(dtype)?;
        self.proj.set_precision(dtype)?;
        self.dtype = dtype;
        Ok(())
    }

    fn parameters(&mut self) -> Vec<&mut Parameter> {
        let mut params = self.qkv.parameters();
        params.extend(self.proj.parameters());
        params
    }

    fn clear_saved(&mut self) {
        self.saved = None;
        self.qkv.clear_saved();
        self.proj.clear_saved();
    }

    fn forward_flops(&self, batch: usize) -> u64 {
        // The projections per token; the score and value products depend on seq, unknown here.
        self.qkv.forward_flops(batch) + self.proj.forward_flops(batch)
    }
}
