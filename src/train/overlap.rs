//! The trainer's side of the overlapped gradient exchange (`distributed/overlap.rs`): opening
//! it before a data-parallel step's forward and backward, so that the checkpointer's per-layer
//! hook (in `step.rs`, last micro-batch only) can send each bucket as its gradients become
//! final, and `parallel.rs` finishes it before the step's agreement.

use super::Trainer;
use crate::error::Result;
use crate::nn::Module;

impl Trainer {
    /// Opens this step's overlapped exchange when it applies: data parallel over more than
    /// one rank, `config.overlap`, and not ZeRO-1.
    pub(super) fn begin_overlap(&mut self) -> Result<()> {
        let applies = self.config.overlap
            && self.sharded.is_none()
            && self.dp.as_ref().is_some_and(|dp| dp.world_size() > 1);
        if !applies {
            return Ok(());
        }
        let layer_values: Vec<usize> = self
            .model
            .layers_mut()
            .iter_mut()
            .map(|l| l.parameters().iter().map(|p| p.grad.len()).sum())
            .collect();
        let grads = self
            .model
            .parameters()
            .iter()
            .map(|p| (p.grad.raw().clone(), p.grad.len()))
            .collect();
        match self.dp.as_mut() {
            Some(dp) => dp.begin_exchange(&self.ctx, grads, &layer_values),
            None => Ok(()),
        }
    }

    /// Whether this step's exchange has sent gradients already (it can no longer be retried).
    pub(super) fn exchange_started(&self) -> bool {
        self.dp.as_ref().is_some_and(|dp| dp.exchange_started())
    }
}
