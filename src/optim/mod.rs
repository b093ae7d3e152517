//! Optimizers: one kernel pass over each parameter updates it (and its state) in place, then
//! the gradient is zeroed for the next accumulation.
//!
//! What a GPT run adds wraps an optimizer rather than changing it, so it composes with any:
//! [`ClipGradNorm`] (clipping by global norm) and [`Scheduled`] (warmup then cosine decay of
//! the learning rate), e.g. `Scheduled::new(Box::new(ClipGradNorm::new(Box::new(
//! Adam::adamw(lr, 0.1)), 1.0)?), schedule)`. [`Adam::adamw`] decays only weight matrices and
//! embeddings ([`DecayMask::Matrices`]).

mod adam;
mod clip;
mod schedule;
mod sgd;

pub use adam::{Adam, DecayMask};
pub use clip::{ClipGradNorm, global_grad_norm};
pub use schedule::{LrSchedule, Scheduled};
pub use sgd::Sgd;

use crate::error::Result;
use crate::nn::Parameter;
use crate::tensor::Tensor;

/// Updates parameters from their accumulated gradients.
///
/// The trait knows no particular optimizer. Code that needs one kind (ZeRO-1 shards Adam's
/// moments) asks for it by type: `Any` is a supertrait, so `&dyn Optimizer` upcasts to
/// `&dyn Any` and `downcast_ref::<Adam>()` answers.
pub trait Optimizer: Send + std::any::Any {
    /// One update of every parameter, then zeroes the gradients. Parameters must be passed
    /// in the same order every step (state is kept by position).
    fn step(&mut self, params: Vec<&mut Parameter>) -> Result<()>;

    /// The update of mixed-precision training: as [`Optimizer::step`] on the gradients times
    /// `inv_scale` (1 / the loss scale), which also writes each parameter's f16
    /// [`Parameter::working`] copy and zeroes the gradients, in one pass per parameter. The
    /// default refuses: an optimizer must implement it to be used with `Precision::Mixed`.
    fn step_mixed(&mut self, params: Vec<&mut Parameter>, inv_scale: f32) -> Result<()> {
        let _ = (params, inv_scale);
        Err(crate::error::Error::invalid(
            "optimizer",
            "this optimizer has no mixed-precision step; use Adam or Sgd (alone or in ClipGradNorm and Scheduled), or Precision::F32",
        ))
    }

    /// Creates the optimizer's state for `params` if it has none yet (it is otherwise created
    /// at the first step). Data-parallel training calls it before the step's agreement, so
    /// that running out of memory for it is agreed on by every rank.
    fn prepare(&mut self, params: Vec<&mut Parameter>) -> Result<()> {
        let _ = params;
        Ok(())
    }

    /// Bytes of optimizer state held (momentum, moments).
    fn state_bytes(&self) -> u64;

    /// Bytes of state this optimizer will hold for parameters of `param_bytes` bytes, once it
    /// has stepped (for planning before the first step).
    fn planned_state_bytes(&self, param_bytes: u64) -> u64;

    /// The learning rate.
    fn learning_rate(&self) -> f32;

    /// Sets the learning rate of the next steps (a schedule: see [`Scheduled`]).
    fn set_learning_rate(&mut self, lr: f32);

    /// The state tensors, for saving: for each parameter in step order, that parameter's
    /// tensors (SGD: velocity; Adam: first then second moment). Empty before the first step.
    fn state_tensors(&self) -> Vec<&Tensor>;

    /// Counters of the state, for saving (Adam: the step count used in bias correction).
    fn state_counters(&self) -> Vec<u64> {
        Vec::new()
    }

    /// Replaces the state with saved `tensors` (in [`Self::state_tensors`] order, on this
    /// optimizer's device) and `counters` (from [`Self::state_counters`]). A count that does
    /// not fit this optimizer is [`crate::Error::InvalidArgument`] and changes nothing.
    fn load_state(&mut self, tensors: Vec<Tensor>, counters: &[u64]) -> Result<()>;
}

fn bad_state(optimizer: &str, reason: String) -> crate::error::Error {
    crate::error::Error::invalid("optimizer state", format!("{optimizer}: {reason}"))
}

/// Checks that a parameter list matches the state kept for it.
fn check_same_params(state_len: usize, params: usize) -> Result<()> {
    if state_len != 0 && state_len != params {
        return Err(crate::error::Error::invalid(
            "optimizer parameters",
            format!("{params} parameters given, but the optimizer's state is for {state_len}"),
        ));
    }
    Ok(())
}
