//! The loop: the run's position (epoch, batch within it), the epoch orders, and `fit`.

use super::{EpochReport, Source, StepInfo, Trainer, TrainingReport};
use crate::error::{Error, Result};
use std::time::Instant;

impl Trainer {
    /// The batch at the run's position: the next `batch_size` indices of the epoch's order.
    fn current_batch<S: Source>(&mut self, train: &S) -> Result<S> {
        let (epoch, len) = (self.epoch, train.len());
        if !matches!(&self.order, Some((e, l, _)) if *e == epoch && *l == len) {
            let order = train.epoch_order(self.config.seed.wrapping_add(epoch as u64));
            self.order = Some((epoch, len, order));
        }
        let order = &self.order.as_ref().expect("set above").2;
        let start = (self.batch_in_epoch * self.config.batch_size).min(len);
        let end = (start + self.config.batch_size).min(len);
        train.select(&order[start..end])
    }

    /// One step at the run's position, then moves the position on. Returns the loss, the
    /// accuracy, the batch rows and whether the step finished its epoch.
    fn step_at_position<S: Source>(
        &mut self,
        train: &S,
        epoch_samples: usize,
        on_step: &mut impl FnMut(&StepInfo),
    ) -> Result<(f32, f32, usize, bool)> {
        let step_start = Instant::now();
        let (comm_before, wait_before) = (self.exposed_comm_seconds(), self.wait_seconds());
        let epoch = self.epoch;
        let batch = self.current_batch(train)?;
        let (loss, acc) = self.train_step(&batch)?;
        self.batch_in_epoch += 1;
        let epoch_done = self.batch_in_epoch * self.config.batch_size >= train.len();
        if epoch_done {
            self.epoch += 1;
            self.batch_in_epoch = 0;
        }
        let counted = if loss.is_finite() { batch.len() } else { 0 };
        let stats = self.ctx.memory().stats();
        on_step(&StepInfo {
            epoch,
            step: self.report.steps,
            loss,
            accuracy: acc,
            seconds: step_start.elapsed().as_secs_f64(),
            live_bytes: stats.live_bytes,
            peak_live_bytes: stats.peak_live_bytes,
            micro_batch: self.micro_batch,
            epoch_samples: epoch_samples + counted,
            comm_seconds: self.exposed_comm_seconds() - comm_before,
            wait_seconds: self.wait_seconds() - wait_before,
        });
        Ok((loss, acc, batch.len(), epoch_done))
    }

    /// Runs `steps` steps from the run's position (crossing epochs, ignoring the configured
    /// epoch count), as [`Self::fit`] would take them; no epoch reports are recorded.
    pub fn train_steps<S: Source>(
        &mut self,
        train: &S,
        steps: u64,
        mut on_step: impl FnMut(&StepInfo),
    ) -> Result<()> {
        if train.is_empty() {
            return Err(Error::invalid("training data", "the training set is empty"));
        }
        for _ in 0..steps {
            self.step_at_position(train, 0, &mut on_step)?;
        }
        Ok(())
    }

    /// Trains from the run's position (the start, or where [`Self::load_state`] left off) to
    /// the end of the configured epochs, calling `on_step` after every step.
    pub fn fit<S: Source>(
        &mut self,
        train: &S,
        test: Option<&S>,
        mut on_step: impl FnMut(&StepInfo),
    ) -> Result<TrainingReport> {
        if train.is_empty() {
            return Err(Error::invalid("training data", "the training set is empty"));
        }
        while self.epoch < self.config.epochs {
            let epoch = self.epoch;
            let started = Instant::now();
            let mark = self.ctx.memory().mark();
            let (mut loss_sum, mut correct, mut samples) = (0f64, 0f64, 0usize);
            loop {
                let (loss, acc, rows, done) =
                    self.step_at_position(train, samples, &mut on_step)?;
                if loss.is_finite() {
                    loss_sum += f64::from(loss) * rows as f64;
                    correct += f64::from(acc) * rows as f64;
                    samples += rows;
                }
                if done {
                    break;
                }
            }
            let seconds = started.elapsed().as_secs_f64();
            let test_accuracy = match test {
                Some(t) => Some(self.evaluate(t)?.1),
                None => None,
            };
            self.report.epochs.push(EpochReport {
                epoch,
                train_loss: loss_sum / samples.max(1) as f64,
                train_accuracy: correct / samples.max(1) as f64,
                test_accuracy,
                samples,
                seconds,
            });
            // Between epochs: give back cached buffers this epoch never reused.
            self.ctx.memory().evict_unused_since(mark);
        }
        self.ctx.flush()?;
        // The account with the process footprint beside it; a footprint that cannot be read
        // is logged and left out rather than failing a finished run.
        let memory = self.ctx.memory();
        self.report.memory = memory.stats_with_footprint().unwrap_or_else(|e| {
            log::warn!("the process footprint could not be read: {e}");
            memory.stats()
        });
        self.report.optimizer_bytes = self.optimizer_state_bytes();
        self.report.comm_seconds = self.comm_seconds();
        self.report.wait_seconds = self.wait_seconds();
        self.report.ranks = self.gather_ranks()?;
        Ok(self.report.clone())
    }
}
