//! How the trainer fits its micro-batch to memory: the initial fit to a budget, halving on
//! out-of-memory (retrying the step from its first sample), and growing back after calm steps.
//! The policy is described in the [module docs](super).

use super::{Adaptation, AdaptationReason, Source, Trainer};
use crate::checkpoint::CheckpointPolicy;
use crate::error::Result;
use crate::nn::Module;
use std::sync::Arc;

impl Trainer {
    pub(super) fn adapt(
        &mut self,
        to: usize,
        reason: AdaptationReason,
        checkpointing_enabled: bool,
    ) {
        let a = Adaptation {
            step: self.report.steps,
            from: self.micro_batch,
            to,
            reason,
            checkpointing_enabled,
        };
        log::warn!(
            "adapting: micro-batch {} -> {} at step {} ({reason:?})",
            a.from,
            a.to,
            a.step
        );
        self.micro_batch = to;
        self.report.adaptations.push(a);
    }

    /// Measures the activation peak of a forward+backward at two micro-batch sizes and sets
    /// the micro-batch to the largest whose predicted peak fits `budget` bytes (all live
    /// memory, not only activations). Parameters are not changed.
    pub fn fit_to_budget<S: Source>(&mut self, data: &S, budget: u64) -> Result<usize> {
        // Optimizer state is created at the first step: leave room for it.
        let param_bytes: u64 = self
            .model
            .parameters()
            .iter()
            .map(|p| p.value.buffer().size())
            .sum();
        let to_come = self
            .planned_optimizer_bytes(param_bytes)
            .saturating_sub(self.optimizer_state_bytes());
        let budget = budget.saturating_sub(to_come);
        // Data parallel: a rank computes at most its shard of each batch.
        let per_rank = self.config.batch_size.div_ceil(self.rank_and_world().1);
        let big = per_rank.min(data.len()).max(1);
        let small = (big / 4).max(1);
        let mut peaks = Vec::new();
        for rows in [small, big] {
            let indices: Vec<usize> = (0..rows).collect();
            let batch = data.select(&indices)?;
            let ctx = Arc::clone(&self.ctx);
            let memory = ctx.memory();
            memory.reset_peaks();
            let result = self.accumulate(&batch, 1.0);
            self.zero_grads()?;
            match result {
                Ok(_) => peaks.push((rows, memory.stats().peak_live_bytes)),
                Err(e) if e.is_out_of_memory() => break,
                Err(e) => return Err(e),
            }
        }
        let fitted = match peaks[..] {
            [(r1, p1), (r2, p2)] if r2 > r1 => {
                let per_row = (p2.saturating_sub(p1) as f64 / (r2 - r1) as f64).max(1.0);
                let fixed = p1 as f64 - per_row * r1 as f64;
                (((budget as f64 - fixed) / per_row).floor().max(1.0) as usize).min(big)
            }
            [(r1, p1), ..] if p1 <= budget => r1,
            _ => (small / 2).max(1),
        };
        if fitted < self.micro_batch {
            self.adapt(fitted, AdaptationReason::InitialFit, false);
        }
        Ok(self.micro_batch)
    }

    /// Forward and backward over `batch`; on out-of-memory, discards the partial gradients,
    /// halves the micro-batch and starts over (see the module docs).
    pub(super) fn accumulate_adapting<S: Source>(
        &mut self,
        batch: &S,
        scale: f32,
    ) -> Result<(f64, u64)> {
        loop {
            match self.accumulate(batch, scale) {
                Ok(sums) => return Ok(sums),
                // Not once buckets of this step have left for the other ranks: they hold its sums.
                Err(e)
                    if e.is_out_of_memory() && self.micro_batch > 1 && !self.exchange_started() =>
                {
                    self.model.clear_saved();
                    self.zero_grads()?;
                    self.ctx.memory().clear_cache();
                    self.calm_steps = 0;
                    self.oom_ceiling = Some(
                        self.oom_ceiling
                            .map_or(self.micro_batch, |c| c.min(self.micro_batch)),
                    );
                    let enable = self.checkpointer.policy() == CheckpointPolicy::None
                        && self.micro_batch <= 8;
                    if enable {
                        self.checkpointer.set_policy(CheckpointPolicy::SqrtN);
                    }
                    self.adapt(
                        (self.micro_batch / 2).max(1),
                        AdaptationReason::OutOfMemory,
                        enable,
                    );
                }
                Err(e) => {
                    self.model.clear_saved();
                    return Err(e);
                }
            }
        }
    }

    /// After calm steps, grows the micro-batch: doubling toward the configured batch, but
    /// only halfway to the smallest size that ran out of memory (a binary search upward).
    pub(super) fn grow_back(&mut self) {
        self.calm_steps = 0;
        let mut target = (self.micro_batch * 2).min(self.config.batch_size);
        if let Some(ceiling) = self.oom_ceiling {
            target = target.min((self.micro_batch + ceiling) / 2);
        }
        if target > self.micro_batch {
            self.adapt(target, AdaptationReason::Recovered, false);
        }
    }
}
