//! `Block`: the pre-norm transformer block, `h = x + attn(ln1(x))`, `y = h + mlp(ln2(h))`,
//! with `mlp = Linear(width → 4 width) → GELU → Linear(4 width → width)` and optional dropout
//! on each branch (GPT-2's layout).
//!
//! The block is one [`Module`], so a [`super::Sequential`] of blocks is what the checkpoint
//! planner segments: a boundary falls between blocks, never inside one, and a recomputed
//! block runs exactly the kernels of the plain pass.
//!
//! [`Module::set_precision`] switches every layer inside; the residual joins then add f16
//! activations (and f16 gradients) with the f16 kernels.

use super::{
    AttentionKernel, CausalSelfAttention, Dropout, DropoutSwitch, Gelu, LayerNorm, Linear, Module,
    Parameter,
};
use crate::DType;
use crate::error::Result;
use crate::ops;
use crate::tensor::{Context, Tensor, tags};
use std::sync::Arc;

/// The sizes and options of a [`Block`].
#[derive(Debug, Clone)]
pub struct BlockConfig {
    /// Features of the residual stream.
    pub width: usize,
    /// Attention heads (must divide `width`).
    pub heads: usize,
    /// Hidden features of the MLP per feature of the stream (GPT-2: 4).
    pub mlp_ratio: usize,
    /// Dropout probability on both branches (0: none).
    pub dropout: f32,
    /// Turns the dropout on and off (share one across the model).
    pub switch: DropoutSwitch,
    /// The attention kernels.
    pub kernel: AttentionKernel,
}

impl BlockConfig {
    /// `width` features, `heads` heads, MLP ratio 4, no dropout, fused attention.
    pub fn new(width: usize, heads: usize) -> Self {
        Self {
            width,
            heads,
            mlp_ratio: 4,
            dropout: 0.0,
            switch: DropoutSwitch::new(),
            kernel: AttentionKernel::Fused,
        }
    }
}

/// A pre-norm transformer block over `[batch, seq, width]`. See the module docs.
pub struct Block {
    ln1: LayerNorm,
    attn: CausalSelfAttention,
    drop1: Option<Dropout>,
    ln2: LayerNorm,
    fc: Linear,
    act: Gelu,
    out: Linear,
    drop2: Option<Dropout>,
}

impl Block {
    /// A block with weights drawn from `seed` (and the seeds after it).
    pub fn new(ctx: &Arc<Context>, config: &BlockConfig, seed: u64) -> Result<Self> {
        let w = config.width;
        let hidden = w * config.mlp_ratio.max(1);
        let dropout = |s: u64| -> Result<Option<Dropout>> {
            if config.dropout == 0.0 {
                return Ok(None);
            }
            Ok(Some(
                Dropout::new(config.dropout, s)?.with_switch(config.switch.clone()),
            ))
        };
        Ok(Self {
            ln1: LayerNorm::new(ctx, w)?,
            attn: CausalSelfAttention::new(ctx, w, config.heads, seed)?.with_kernel(config.kernel),
            drop1: dropout(seed.wrapping_add(2))?,
            ln2: LayerNorm::new(ctx, w)?,
            fc: Linear::new(ctx, w, hidden, seed.wrapping_add(3))?,
            act: Gelu::new(),
            out: Linear::new(ctx, hidden, w, seed.wrapping_add(4))?,
            drop2: dropout(seed.wrapping_add(5))?,
        })
    }

    /// The attention layer.
    pub fn attention(&self) -> &CausalSelfAttention {
        &self.attn
    }

    fn branch(&mut self, first: bool) -> Vec<&mut dyn Module> {
        let mut layers: Vec<&mut dyn Module> = if first {
            vec![&mut self.ln1, &mut self.attn]
        } else {
            vec![&mut self.ln2, &mut self.fc, &mut self.act, &mut self.out]
        };
        let drop = if first {
            self.drop1.as_mut()
        } else {
            self.drop2.as_mut()
        };
        if let Some(d) = drop {
            layers.push(d);
        }
        layers
    }

    /// `x + branch(x)`.
    fn residual(&mut self, first: bool, x: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        let mut h = Arc::clone(&x);
        for layer in self.branch(first) {
            h = layer.forward(h, save)?;
        }
        let ctx = x.context();
        let y = ctx.uninit_of(x.shape(), x.dtype(), tags::ACTIVATIONS)?;
        ops::add(&x, &h, &y)?;
        Ok(Arc::new(y))
    }

    /// `grad + branchᵀ(grad)`: the gradient through a residual branch and its skip.
    fn residual_backward(&mut self, first: bool, grad: Tensor) -> Result<Tensor> {
        let mut g = grad.duplicate(tags::ACTIVATIONS)?;
        for layer in self.branch(first).into_iter().rev() {
            g = layer
                .backward(g, true)?
                .expect("asked for the input gradient");
        }
        ops::add_in_place(&grad, &g)?;
        Ok(grad)
    }
}

impl Module for Block {
    fn name(&self) -> String {
        format!("Block({}, {} heads)", self.attn.width(), self.attn.heads())
    }

    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        let h = self.residual(true, input, save)?;
        self.residual(false, h, save)
    }

    fn backward(&mut self, grad: Tensor, _input_grad: bool) -> Result<Option<Tensor>> {
        let dh = self.residual_backward(false, grad)?;
        Ok(Some(self.residual_backward(true, dh)?))
    }

    fn set_precision(&mut self, dtype: DType) -> Result<()> {
        for first in [true, false] {
            for layer in self.branch(first) {
                layer.set_precision(dtype)?;
            }
        }
        Ok(())
    }

    fn parameters(&mut self) -> Vec<&mut Parameter> {
        let mut params = self.ln1.parameters();
        params.extend(self.attn.parameters());
        params.extend(self.ln2.parameters());
        params.extend(self.fc.parameters());
        params.extend(self.out.parameters());
        params
    }

    fn clear_saved(&mut self) {
        for first in [true, false] {
            self.branch(first).into_iter().for_each(|l| l.clear_saved());
        }
    }

    fn forward_flops(&self, batch: usize) -> u64 {
        self.ln1.forward_flops(batch)
            + self.attn.forward_flops(batch)
            + self.ln2.forward_flops(batch)
            + self.fc.forward_flops(batch)
            + self.out.forward_flops(batch)
    }
}
