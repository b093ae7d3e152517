//! One optimizer step: upload a batch, forward and backward in micro-batches with the loss,
//! the input and loss checks, the update; and evaluation without saving.

use super::{AdaptationReason, NonFinitePolicy, Trainer};
use crate::backend::WgpuBackend;
use crate::compute;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory::ManagedBuffer;
use crate::nn::{Module, softmax_cross_entropy};
use crate::tensor::{Tensor, tags};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

impl Trainer {
    pub(super) fn zero_grads(&mut self) -> Result<()> {
        for p in self.model.parameters() {
            p.zero_grad()?;
        }
        Ok(())
    }

    /// Uploads rows `rows` of `data`: the features as an `[n, features]` tensor and the
    /// labels as `u32`s, both accounted under the data tag.
    fn upload_rows(
        &self,
        data: &Dataset,
        rows: std::ops::Range<usize>,
    ) -> Result<(Arc<Tensor>, ManagedBuffer<WgpuBackend>)> {
        let d = data.n_features();
        let x = self.ctx.from_slice(
            &data.features()[rows.start * d..rows.end * d],
            &[rows.len(), d],
            tags::DATA,
        )?;
        let labels = self.ctx.upload_u32(&data.labels()[rows], tags::DATA)?;
        Ok((Arc::new(x), labels))
    }

    /// Forward and backward over `batch` in micro-batches, accumulating gradients scaled by
    /// `scale · rows / batch.len()`. Returns (sum of loss · rows, correct).
    pub(super) fn accumulate(&mut self, batch: &Dataset, scale: f32) -> Result<(f64, u64)> {
        let rows = batch.len();
        let mut loss_sum = 0f64;
        let mut correct = 0u64;
        let mut start = 0;
        while start < rows {
            let end = (start + self.micro_batch).min(rows);
            let n = end - start;
            let (x, labels) = self.upload_rows(batch, start..end)?;
            let share = scale * n as f32 / rows as f32;
            let labels_host = &batch.labels()[start..end];
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
                    check_labels(labels_host, &logits)?;
                    let out = softmax_cross_entropy(&logits, &labels, n)?;
                    drop(logits);
                    if share != 1.0 {
                        compute::scale_in_place(
                            out.grad.context().gpu(),
                            share,
                            out.grad.raw(),
                            out.grad.len(),
                        )?;
                    }
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
    pub fn train_step(&mut self, batch: &Dataset) -> Result<(f32, f32)> {
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
        if let Some(i) = batch.features().iter().position(|v| !v.is_finite()) {
            let d = batch.n_features().max(1);
            let value = batch.features()[i];
            match self.config.non_finite {
                NonFinitePolicy::Stop => {
                    return Err(Error::NonFiniteInput {
                        step: self.report.steps,
                        row: i / d,
                        column: i % d,
                        value,
                    });
                }
                NonFinitePolicy::Skip => {
                    log::warn!(
                        "skipping step {}: input row {} feature {} is {value}",
                        self.report.steps,
                        i / d,
                        i % d
                    );
                    self.report.skipped_steps += 1;
                    return Ok((value, 0.0));
                }
            }
        }
        let shard = self.shard_of(batch);
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
        let accuracy = correct as f32 / batch.len() as f32;
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

    /// Loss and accuracy on `data`, in batches of the current micro-batch, without saving.
    pub fn evaluate(&mut self, data: &Dataset) -> Result<(f64, f64)> {
        let (mut loss_sum, mut correct) = (0f64, 0u64);
        let rows = self.micro_batch.max(1);
        for start in (0..data.len()).step_by(rows) {
            let end = (start + rows).min(data.len());
            let n = end - start;
            let (x, labels) = self.upload_rows(data, start..end)?;
            let logits = self.model.forward(x, false)?;
            check_labels(&data.labels()[start..end], &logits)?;
            let out = softmax_cross_entropy(&logits, &labels, n)?;
            let (loss, c) = out.read()?;
            loss_sum += f64::from(loss) * n as f64;
            correct += u64::from(c);
        }
        let n = data.len().max(1) as f64;
        Ok((loss_sum / n, correct as f64 / n))
    }
}

/// Checks that every label names a column of `logits` (the loss kernel would otherwise turn
/// the row's loss into NaN, reported as a diverging run rather than as bad data).
fn check_labels(labels: &[u32], logits: &crate::tensor::Tensor) -> Result<()> {
    let [_, classes] = logits.dims2("softmax_cross_entropy")?;
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(i) => Err(Error::invalid(
            "label",
            format!(
                "label {} (row {i} of the batch) is out of range for a model with {classes} outputs",
                labels[i]
            ),
        )),
        None => Ok(()),
    }
}
