//! One optimizer step: upload a batch, forward and backward in micro-batches with the loss,
//! the input and loss checks, the update; and evaluation without saving.

use super::{AdaptationReason, NonFinitePolicy, Source, Trainer};
use crate::error::{Error, Result};
use crate::nn::Module;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Trainer {
    pub(super) fn zero_grads(&mut self) -> Result<()> {
        for p in self.model.parameters() {
            p.zero_grad()?;
        }
        Ok(())
    }

    /// Forward and backward over `batch` in micro-batches, accumulating gradients scaled by
    /// `scale · rows / batch.len()`. Returns (sum of loss · rows, correct).
    pub(super) fn accumulate<S: Source>(&mut self, batch: &S, scale: f32) -> Result<(f64, u64)> {
        let rows = batch.len();
        let mut loss_sum = 0f64;
        let mut correct = 0u64;
        let mut start = 0;
        while start < rows {
            let end = (start + self.micro_batch).min(rows);
            let n = end - start;
            let (x, targets) = batch.upload(&self.ctx, start..end, self.compute_dtype())?;
            let share = scale * n as f32 / rows as f32;
            let objective = &self.objective;
            // Mixed precision: the loss scale enters where the gradient is made.
            let grad_scale = share * self.loss_scale().unwrap_or(1.0);
            // Only the last micro-batch's backward makes gradients final (overlap.rs).
            let (dp, ctx, last) = (&mut self.dp, &self.ctx, end == rows);
            let mut done = |layer| match dp {
                Some(dp) if last => dp.backward_done(ctx, layer),
                _ => Ok(()),
            };
            let out = self.checkpointer.forward_backward_observed(
                &mut self.model,
                x,
                |logits| {
                    let out = objective.loss(logits, &targets, grad_scale)?;
                    let crate::nn::LossOutput {
                        grad,
                        loss,
                        correct,
                    } = out;
                    Ok((grad, (loss, correct)))
                },
                &mut done,
            )?;
            let (loss, c) = (out.0.to_vec()?[0], self.ctx.read_u32(&out.1, 1)?[0]);
            loss_sum += f64::from(loss) * n as f64;
            correct += u64::from(c);
            start = end;
        }
        Ok((loss_sum, correct))
    }

    /// One optimizer step over `batch`, adapting to memory as the module docs describe.
    /// Returns the batch's mean loss and accuracy. In a data-parallel run every rank passes
    /// the same global batch and computes its own shard of it (see [`Trainer::with_collective`]).
    pub fn train_step<S: Source>(&mut self, batch: &S) -> Result<(f32, f32)> {
        let adaptations = self.report.adaptations.len();
        let profiler = self.ctx.memory().profiler();
        let _scope = profiler.as_ref().map(|p| p.scope("step"));
        if self.pressure.swap(false, Ordering::SeqCst) && self.micro_batch > 1 {
            self.calm_steps = 0;
            self.adapt(
                (self.micro_batch / 2).max(1),
                AdaptationReason::Pressure,
                false,
            );
        }
        if let Some((row, column, value)) = batch.first_non_finite() {
            match self.config.non_finite {
                NonFinitePolicy::Stop => {
                    return Err(Error::NonFiniteInput {
                        step: self.report.steps,
                        row,
                        column,
                        value,
                    });
                }
                NonFinitePolicy::Skip => {
                    log::warn!(
                        "skipping step {}: input row {row} feature {column} is {value}",
                        self.report.steps,
                    );
                    self.report.skipped_steps += 1;
                    return Ok((value, 0.0));
                }
            }
        }
        let shard = self.shard_of(batch)?;
        let local_batch = shard.as_ref().unwrap_or(batch);
        let local_rows = local_batch.len();
        let scale = local_rows as f32 / batch.len().max(1) as f32;
        let started = Instant::now();
        let local = self
            .begin_overlap()
            .and_then(|()| self.accumulate_adapting(local_batch, scale));
        self.report.compute_seconds += started.elapsed().as_secs_f64();
        let adapted = self.report.adaptations.len() - adaptations;
        let (loss_sum, correct) = self.agree(local, adapted)?;
        let loss = (loss_sum / batch.len() as f64) as f32;
        let accuracy = correct as f32 / (batch.len() * batch.targets_per_sample()) as f32;
        if !loss.is_finite() {
            self.zero_grads()?;
            match self.config.non_finite {
                NonFinitePolicy::Stop => {
                    return Err(Error::NonFiniteLoss {
                        step: self.report.steps,
                        loss,
                    });
                }
                NonFinitePolicy::Skip => {
                    log::warn!("skipping step {}: loss is {loss}", self.report.steps);
                    self.report.skipped_steps += 1;
                    return Ok((loss, accuracy));
                }
            }
        }
        if self.mixed_step_skipped()? {
            return Ok((loss, accuracy));
        }
        let started = Instant::now();
        self.update()?;
        self.report.compute_seconds += started.elapsed().as_secs_f64();
        self.report.steps += 1;
        self.report.samples_seen += batch.len();
        self.report.local_samples += local_rows as u64;
        self.calm_steps += 1;
        if self.calm_steps >= self.config.recover_after {
            self.grow_back();
        }
        Ok((loss, accuracy))
    }

    /// Mixed precision: checks the step's gradients for overflow and moves the loss scale.
    /// Returns true when the step is to be skipped (gradients zeroed, counted in the report).
    fn mixed_step_skipped(&mut self) -> Result<bool> {
        let Some(scaler) = self.scaler.as_mut() else {
            return Ok(false);
        };
        let overflow = scaler.overflowed(&self.ctx, &self.model.parameters())?;
        if overflow {
            // A good step moves the scale after its update (which needs this step's scale).
            let scale = scaler.scale();
            scaler.update(true);
            self.report.loss_scale = Some(scaler.scale());
            log::info!(
                "step {}: gradients overflowed f16 at loss scale {scale}; skipped, scale now {}",
                self.report.steps,
                scaler.scale()
            );
            self.report.overflow_skipped_steps += 1;
            self.zero_grads()?;
        }
        Ok(overflow)
    }

    /// Loss and accuracy on `data`, in batches of the current micro-batch, without saving.
    pub fn evaluate<S: Source>(&mut self, data: &S) -> Result<(f64, f64)> {
        let (mut loss_sum, mut correct) = (0f64, 0u64);
        let rows = self.micro_batch.max(1);
        for start in (0..data.len()).step_by(rows) {
            let end = (start + rows).min(data.len());
            let n = end - start;
            let (x, targets) = data.upload(&self.ctx, start..end, self.compute_dtype())?;
            let logits = self.model.forward(x, false)?;
            let out = self.objective.loss(logits, &targets, 1.0)?;
            let (loss, c) = out.read()?;
            loss_sum += f64::from(loss) * n as f64;
            correct += u64::from(c);
        }
        let n = data.len().max(1) as f64;
        let targets = n * data.targets_per_sample() as f64;
        Ok((loss_sum / n, correct as f64 / targets))
    }
}
