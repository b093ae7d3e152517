//! Gradient clipping by global norm: if `‖g‖₂` over every parameter's gradient exceeds
//! `max_norm`, all gradients are scaled by `max_norm / ‖g‖₂` before the inner optimizer's step
//! (PyTorch's `clip_grad_norm_`).
//!
//! The squared norm is reduced on the GPU into one value (two passes per parameter, no
//! atomics, so the same gradients give the same bits), and read back once per step: the one
//! synchronisation clipping costs. The scale is then recorded as one kernel per parameter,
//! only when the norm is over the limit.

use super::Optimizer;
use crate::compute;
use crate::error::{Error, Result};
use crate::nn::Parameter;
use crate::tensor::{Tensor, tags};

/// The global L2 norm of the gradients of `params` (one readback). `None` for no parameters.
pub fn global_grad_norm(params: &[&mut Parameter]) -> Result<Option<f32>> {
    let Some(first) = params.first() else {
        return Ok(None);
    };
    let ctx = first.grad.context();
    let total = ctx.zeros(&[1], tags::SCRATCH)?;
    for p in params {
        compute::add_sum_of_squares(ctx.gpu(), p.grad.raw(), p.grad.len(), total.raw())?;
    }
    Ok(Some(total.to_vec()?[0].sqrt()))
}

/// Wraps an optimizer: clips the gradients by their global norm, then steps. See the module
/// docs. It is not Adam to ZeRO-1 (which downcasts to [`crate::optim::Adam`]): the sharded Adam that
/// ZeRO-1 puts in its place does not clip, so a clipped run with `zero1` is refused.
pub struct ClipGradNorm {
    inner: Box<dyn Optimizer>,
    max_norm: f32,
    last_norm: Option<f32>,
}

impl ClipGradNorm {
    /// Clips to `max_norm` (finite and positive) before each step of `inner`.
    pub fn new(inner: Box<dyn Optimizer>, max_norm: f32) -> Result<Self> {
        if !(max_norm.is_finite() && max_norm > 0.0) {
            return Err(Error::invalid(
                "max gradient norm",
                format!("{max_norm}: clipping needs a finite norm above 0"),
            ));
        }
        Ok(Self {
            inner,
            max_norm,
            last_norm: None,
        })
    }

    /// The global norm of the gradients at the last step, before clipping.
    pub fn last_norm(&self) -> Option<f32> {
        self.last_norm
    }
}

impl Optimizer for ClipGradNorm {
    fn step(&mut self, params: Vec<&mut Parameter>) -> Result<()> {
        let norm = global_grad_norm(&params)?;
        self.last_norm = norm;
        if let Some(norm) = norm.filter(|n| *n > self.max_norm) {
            // A non-finite norm is left for the trainer's non-finite policy to see.
            let scale = self.max_norm / norm;
            for p in &params {
                compute::scale_in_place(p.grad.context().gpu(), scale, p.grad.raw(), p.grad.len())?;
            }
        }
        self.inner.step(params)
    }

    /// Clips on the true gradient norm: the gradients carry the loss scale, so their norm is
    /// multiplied by `inv_scale` before it is compared with `max_norm`, and the clipping
    /// factor is folded into the inner step's `inv_scale` (no extra pass over the gradients).
    /// A non-finite norm (an f16 overflow the trainer did not catch first) skips the step:
    /// the gradients are zeroed and nothing is updated, rather than scaling every gradient by
    /// zero or NaN.
    fn step_mixed(&mut self, params: Vec<&mut Parameter>, inv_scale: f32) -> Result<()> {
        let scaled = global_grad_norm(&params)?;
        let norm = scaled.map(|n| n * inv_scale);
        self.last_norm = norm;
        match norm {
            Some(n) if !n.is_finite() => {
                log::warn!("gradient norm is {n}: step skipped, not clipped");
                for p in params {
                    p.zero_grad()?;
                }
                Ok(())
            }
            Some(n) if n > self.max_norm => self
                .inner
                .step_mixed(params, inv_scale * (self.max_norm / n)),
            _ => self.inner.step_mixed(params, inv_scale),
        }
    }

    fn prepare(&mut self, params: Vec<&mut Parameter>) -> Result<()> {
        self.inner.prepare(params)
    }

    fn state_bytes(&self) -> u64 {
        self.inner.state_bytes()
    }

    fn planned_state_bytes(&self, param_bytes: u64) -> u64 {
        self.inner.planned_state_bytes(param_bytes)
    }

    fn learning_rate(&self) -> f32 {
        self.inner.learning_rate()
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.inner.set_learning_rate(lr);
    }

    fn state_tensors(&self) -> Vec<&Tensor> {
        self.inner.state_tensors()
    }

    fn state_counters(&self) -> Vec<u64> {
        self.inner.state_counters()
    }

    fn load_state(&mut self, tensors: Vec<Tensor>, counters: &[u64]) -> Result<()> {
        self.inner.load_state(tensors, counters)
    }
}
