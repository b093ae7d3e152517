//! The training loop, and how it reacts to memory.
//!
//! [`Trainer`] owns a [`Sequential`] model, an optimizer and a [`GradientCheckpointer`]. A
//! step over a batch of `B` samples runs as micro-batches of at most `micro_batch` rows whose
//! gradients accumulate (each scaled by its share of `B`), then one optimizer update: the
//! result is the full-batch gradient whatever the micro-batch size.
//!
//! Reactions to memory:
//! - **at start**, [`Trainer::fit_to_budget`] measures the activation peak of a step at two
//!   batch sizes, fits `peak = fixed + per_row · rows`, and takes the largest micro-batch
//!   that fits the budget;
//! - **on out-of-memory mid-step**, the step's partial gradients are discarded, the
//!   micro-batch halves (and checkpointing switches to `SqrtN` if it was off and the
//!   micro-batch is already small), and the step runs again from its first sample: no sample
//!   and no update is lost;
//! - **on critical pressure** (see [`Trainer::pressure_flag`]), the micro-batch halves before
//!   the next step; after `recover_after` steps without pressure it doubles back toward the
//!   configured batch;
//! - between epochs, cached buffers the epoch never reused are freed.
//!
//! A batch with a NaN or infinite input, or a step whose loss is not finite, stops the run
//! or is skipped (no update), as [`NonFinitePolicy`] says. Inputs are checked on the host
//! before the step: a ReLU can turn a NaN into 0 and hide it from the loss.
//!
//! The run has a position (epoch, batch within the epoch) and every epoch's order comes from
//! `seed + epoch`, so [`Trainer::save_state`] / [`Trainer::load_state`] resume a run (after a
//! lost device, say) on the same batches with bit-identical results.
//!
//! Each adaptation is logged and recorded in the [`TrainingReport`].
//!
//! Data parallel over several processes (MPI, one GPU each): [`Trainer::with_collective`];
//! see `parallel.rs` for how batches are sharded, gradients reduced in buckets, ZeRO-1, and
//! why the memory adaptations above stay local to a rank.

mod parallel;
mod report;
mod state;

pub use report::{Adaptation, AdaptationReason, EpochReport, RankReport, TrainingReport};
pub use state::{NamedArray, TrainerState};

use crate::backend::WgpuBackend;
use crate::checkpoint::{CheckpointPolicy, GradientCheckpointer};
use crate::compute;
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::memory::ManagedBuffer;
use crate::nn::{Module, Sequential, softmax_cross_entropy};
use crate::optim::Optimizer;
use crate::tensor::{Context, Tensor, tags};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// What to do when the loss, or an input of the batch, is NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinitePolicy {
    /// Stop with [`Error::NonFiniteLoss`] (or [`Error::NonFiniteInput`]).
    #[default]
    Stop,
    /// Skip the update (gradients discarded) and go on; counted in the report.
    Skip,
}

/// Settings of a [`Trainer`].
#[derive(Debug, Clone)]
pub struct TrainerConfig {
    /// Epochs to run.
    pub epochs: usize,
    /// Samples per optimizer step.
    pub batch_size: usize,
    /// Seed of the epoch shuffles.
    pub seed: u64,
    /// Checkpointing policy.
    pub checkpoint: CheckpointPolicy,
    /// NaN / Inf handling.
    pub non_finite: NonFinitePolicy,
    /// Steps without pressure before the micro-batch grows back.
    pub recover_after: u64,
    /// Data parallel: bytes of gradients per all-reduce bucket (0: [`crate::distributed::DEFAULT_BUCKET_BYTES`], 8 MiB).
    pub bucket_bytes: u64,
    /// Data parallel: ZeRO-1, Adam moments sharded over the ranks (needs Adam). Without
    /// [`Trainer::with_collective`] it runs over a one-rank [`crate::distributed::Local`] world.
    pub zero1: bool,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            epochs: 10,
            batch_size: 64,
            seed: 0,
            checkpoint: CheckpointPolicy::None,
            non_finite: NonFinitePolicy::Stop,
            recover_after: 20,
            bucket_bytes: crate::distributed::DEFAULT_BUCKET_BYTES,
            zero1: false,
        }
    }
}

/// What one step reports to the progress callback.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// Epoch of the step.
    pub epoch: usize,
    /// Optimizer steps so far.
    pub step: u64,
    /// Mean loss of the step's batch.
    pub loss: f32,
    /// Accuracy on the step's batch.
    pub accuracy: f32,
    /// Wall time of the step, seconds.
    pub seconds: f64,
    /// Live bytes after the step.
    pub live_bytes: u64,
    /// Peak live bytes so far.
    pub peak_live_bytes: u64,
    /// Micro-batch rows in use.
    pub micro_batch: usize,
    /// Samples done in this epoch.
    pub epoch_samples: usize,
    /// Seconds of the step spent exchanging gradients and parameters (0 in one process).
    pub comm_seconds: f64,
    /// Seconds of the step spent waiting for the other ranks (0 in one process).
    pub wait_seconds: f64,
}

/// Owns the loop. See the module docs.
pub struct Trainer {
    ctx: Arc<Context>,
    model: Sequential,
    optimizer: Box<dyn Optimizer>,
    checkpointer: GradientCheckpointer,
    config: TrainerConfig,
    micro_batch: usize,
    pressure: Arc<AtomicBool>,
    calm_steps: u64,
    /// The smallest micro-batch that ran out of memory: growth stays below it.
    oom_ceiling: Option<usize>,
    report: TrainingReport,
    /// The epoch in progress.
    epoch: usize,
    /// Batches of that epoch done.
    batch_in_epoch: usize,
    /// The order of the epoch in progress: (epoch, dataset length, order).
    order: Option<(usize, usize, Vec<usize>)>,
    /// The data-parallel world, when there is one.
    dp: Option<crate::distributed::DataParallel>,
    /// ZeRO-1's sharded Adam, replacing `optimizer` when `config.zero1`.
    sharded: Option<crate::distributed::ShardedAdam>,
}

impl Trainer {
    /// A trainer; validates the configuration against the model.
    pub fn new(
        ctx: Arc<Context>,
        model: Sequential,
        optimizer: Box<dyn Optimizer>,
        config: TrainerConfig,
    ) -> Result<Self> {
        if config.batch_size == 0 {
            return Err(Error::invalid("batch size", "must be at least 1"));
        }
        if model.is_empty() {
            return Err(Error::invalid("model", "a model needs at least one layer"));
        }
        // Policies that can never plan fail here rather than at the first step.
        match config.checkpoint {
            CheckpointPolicy::EveryK(0) => {
                return Err(Error::invalid(
                    "checkpoint interval",
                    "every:K needs K of at least 1",
                ));
            }
            CheckpointPolicy::Budget(0) => {
                return Err(Error::invalid(
                    "checkpoint budget",
                    "a budget of 0 bytes fits no plan",
                ));
            }
            _ => {}
        }
        let zero1 = config.zero1;
        let trainer = Self {
            dp: None,
            sharded: None,
            checkpointer: GradientCheckpointer::new(config.checkpoint),
            micro_batch: config.batch_size,
            pressure: Arc::new(AtomicBool::new(false)),
            calm_steps: 0,
            oom_ceiling: None,
            report: TrainingReport {
                world_size: 1,
                ..TrainingReport::default()
            },
            epoch: 0,
            batch_in_epoch: 0,
            order: None,
            ctx,
            model,
            optimizer,
            config,
        };
        if zero1 {
            return trainer.with_collective(Box::new(crate::distributed::Local));
        }
        Ok(trainer)
    }

    /// The model.
    pub fn model(&mut self) -> &mut Sequential {
        &mut self.model
    }

    /// The context.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// The micro-batch rows in use.
    pub fn micro_batch(&self) -> usize {
        self.micro_batch
    }

    /// The checkpointer.
    pub fn checkpointer(&self) -> &GradientCheckpointer {
        &self.checkpointer
    }

    /// The run's position: the epoch in progress and the batches of it already done.
    pub fn position(&self) -> (usize, usize) {
        (self.epoch, self.batch_in_epoch)
    }

    /// The optimizer.
    pub fn optimizer(&self) -> &dyn Optimizer {
        self.optimizer.as_ref()
    }

    /// The report so far.
    pub fn report(&self) -> &TrainingReport {
        &self.report
    }

    /// A flag that, when set (by a pressure responder or a test), makes the trainer shrink
    /// its micro-batch before the next step. The trainer clears it when it has reacted.
    pub fn pressure_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.pressure)
    }

    /// A responder for a [`crate::pressure::PressureMonitor`]: critical pressure raises
    /// [`Self::pressure_flag`], so the next step runs with half the micro-batch.
    pub fn pressure_responder(&self) -> Arc<dyn crate::pressure::PressureResponder> {
        let flag = self.pressure_flag();
        Arc::new(move |change: crate::pressure::PressureChange| {
            if change.to == crate::pressure::PressureLevel::Critical {
                flag.store(true, Ordering::SeqCst);
            }
        })
    }

    fn adapt(&mut self, to: usize, reason: AdaptationReason, checkpointing_enabled: bool) {
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
    pub fn fit_to_budget(&mut self, data: &Dataset, budget: u64) -> Result<usize> {
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
            let batch = data.subset(&indices);
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

    fn zero_grads(&mut self) -> Result<()> {
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
    fn accumulate(&mut self, batch: &Dataset, scale: f32) -> Result<(f64, u64)> {
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
            let out = self
                .checkpointer
                .forward_backward(&mut self.model, x, |logits| {
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
                })?;
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
        let local = self.accumulate_adapting(local_batch, scale);
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

    /// Forward and backward over `batch`; on out-of-memory, discards the partial gradients,
    /// halves the micro-batch and starts over (see the module docs).
    fn accumulate_adapting(&mut self, batch: &Dataset, scale: f32) -> Result<(f64, u64)> {
        loop {
            match self.accumulate(batch, scale) {
                Ok(sums) => return Ok(sums),
                Err(e) if e.is_out_of_memory() && self.micro_batch > 1 => {
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
    fn grow_back(&mut self) {
        self.calm_steps = 0;
        let mut target = (self.micro_batch * 2).min(self.config.batch_size);
        if let Some(ceiling) = self.oom_ceiling {
            target = target.min((self.micro_batch + ceiling) / 2);
        }
        if target > self.micro_batch {
            self.adapt(target, AdaptationReason::Recovered, false);
        }
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

    /// The batch at the run's position: the next `batch_size` indices of the epoch's order.
    fn current_batch(&mut self, train: &Dataset) -> Dataset {
        let (epoch, len) = (self.epoch, train.len());
        if !matches!(&self.order, Some((e, l, _)) if *e == epoch && *l == len) {
            let order = train.epoch_order(self.config.seed.wrapping_add(epoch as u64));
            self.order = Some((epoch, len, order));
        }
        let order = &self.order.as_ref().expect("set above").2;
        let start = (self.batch_in_epoch * self.config.batch_size).min(len);
        let end = (start + self.config.batch_size).min(len);
        train.subset(&order[start..end])
    }

    /// One step at the run's position, then moves the position on. Returns the loss, the
    /// accuracy, the batch rows and whether the step finished its epoch.
    fn step_at_position(
        &mut self,
        train: &Dataset,
        epoch_samples: usize,
        on_step: &mut impl FnMut(&StepInfo),
    ) -> Result<(f32, f32, usize, bool)> {
        let step_start = Instant::now();
        let (comm_before, wait_before) = (self.comm_seconds(), self.wait_seconds());
        let epoch = self.epoch;
        let batch = self.current_batch(train);
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
            comm_seconds: self.comm_seconds() - comm_before,
            wait_seconds: self.wait_seconds() - wait_before,
        });
        Ok((loss, acc, batch.len(), epoch_done))
    }

    /// Runs `steps` steps from the run's position (crossing epochs, ignoring the configured
    /// epoch count), as [`Self::fit`] would take them; no epoch reports are recorded.
    pub fn train_steps(
        &mut self,
        train: &Dataset,
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
    pub fn fit(
        &mut self,
        train: &Dataset,
        test: Option<&Dataset>,
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
        self.report.memory = self.ctx.memory().stats();
        self.report.optimizer_bytes = self.optimizer_state_bytes();
        self.report.comm_seconds = self.comm_seconds();
        self.report.wait_seconds = self.wait_seconds();
        self.report.ranks = self.gather_ranks()?;
        Ok(self.report.clone())
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

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("model", &self.model.name())
            .field("micro_batch", &self.micro_batch)
            .finish_non_exhaustive()
    }
}
