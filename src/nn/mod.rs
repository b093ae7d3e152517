//! Layers with explicit forward and backward passes.
//!
//! A [`Module`] takes its input by `Arc<Tensor>` and, when asked to save, keeps exactly what
//! its backward pass needs (a `Linear` keeps its input; a fused ReLU also its output), so
//! everything else returns to the pool as soon as the next layer is done with it. `backward`
//! consumes the saved tensors, accumulates parameter gradients and returns the input gradient
//! when asked. That explicit ownership is what makes checkpointing possible: run forward
//! without saving, keep a few inputs, recompute the rest.

mod activation;
mod attention;
mod block;
mod dropout;
mod embedding;
mod gpt;
mod layernorm;
mod linear;
mod loss;
mod sequential;
mod tied_head;

pub use activation::{Gelu, Relu};
pub use attention::{AttentionKernel, CausalSelfAttention};
pub use block::{Block, BlockConfig};
pub use dropout::{Dropout, DropoutSwitch};
pub use embedding::{EMBEDDING_INIT_STD, Embedding, token_tensor};
pub use gpt::{GptConfig, generate};
pub use layernorm::LayerNorm;
pub use linear::Linear;
pub use loss::{LossOutput, softmax_cross_entropy, softmax_cross_entropy_scaled};
pub use sequential::Sequential;
pub use tied_head::TiedHead;

use crate::DType;
use crate::error::Result;
use crate::tensor::Tensor;
use std::sync::Arc;

/// A trainable tensor and its gradient (same shape, accumulated by backward passes).
#[derive(Debug)]
pub struct Parameter {
    /// A name for reports and saved state (`"layer0.weight"`).
    pub name: String,
    /// The values.
    pub value: Tensor,
    /// The accumulated gradient; zeroed by the optimizer after each step. Always f32: in
    /// mixed precision the f16 products accumulate into it in f32.
    pub grad: Tensor,
    /// Mixed precision: the f16 copy of `value` that forward and backward read. The optimizer
    /// writes it in the same pass that updates `value` (the f32 master); `None` in f32 models
    /// and for parameters the kernels read in f32 (biases).
    pub working: Option<Tensor>,
}

impl Parameter {
    /// Rewrites the f16 working copy from the f32 master value (after the master was changed
    /// outside the optimizer, e.g. by loading saved state); nothing without a working copy.
    pub fn refresh_working(&self) -> Result<()> {
        match &self.working {
            Some(w) => crate::ops::convert(&self.value, w),
            None => Ok(()),
        }
    }

    /// Sets the accumulated gradient to zero (recorded on the GPU like any kernel).
    pub fn zero_grad(&self) -> Result<()> {
        crate::compute::fill(
            self.grad.context().gpu(),
            self.grad.raw(),
            self.grad.len(),
            0.0,
        )
    }
}

/// How a module should be treated by a checkpoint planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recompute {
    /// No preference: the planner weighs size against cost.
    #[default]
    Normal,
    /// Cheap to recompute (elementwise): never worth saving for its own sake.
    Cheap,
    /// Expensive (a matmul's output): save rather than recompute when the budget allows.
    AlwaysSave,
}

/// A layer with forward and backward passes. See the module docs for ownership.
pub trait Module: Send {
    /// A short name for reports (`"Linear(784→128, relu)"`).
    fn name(&self) -> String;

    /// Computes the output. With `save`, keeps what [`Module::backward`] needs.
    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>>;

    /// Given the gradient of the loss with respect to the output, accumulates parameter
    /// gradients and, if `input_grad`, returns the gradient with respect to the input.
    /// Uses and releases what `forward` saved; calling it without a saving forward is an
    /// error.
    fn backward(&mut self, grad_output: Tensor, input_grad: bool) -> Result<Option<Tensor>>;

    /// The trainable parameters.
    fn parameters(&mut self) -> Vec<&mut Parameter> {
        Vec::new()
    }

    /// Drops anything saved by `forward` (after an aborted step).
    fn clear_saved(&mut self);

    /// Switches the layer's compute type: [`DType::F16`] for mixed precision (f16 working
    /// copies of the weights, f16 activations and activation gradients; the f32 master weights
    /// and gradients stay), [`DType::F32`] back. Inputs must then be of that type. Layers
    /// without weights follow their input's type and need do nothing.
    fn set_precision(&mut self, dtype: DType) -> Result<()> {
        let _ = dtype;
        Ok(())
    }

    /// The hint for checkpoint planners.
    fn recompute(&self) -> Recompute {
        Recompute::Normal
    }

    /// Floating-point operations of one forward pass for a batch of `batch` rows (a cost
    /// estimate for planners).
    fn forward_flops(&self, batch: usize) -> u64;
}

pub(crate) fn missing_saved(module: &str) -> crate::error::Error {
    crate::error::Error::invalid(
        "backward",
        format!("{module}: backward needs a forward pass with save = true first"),
    )
}
