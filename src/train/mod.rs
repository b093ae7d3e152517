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
//! What it trains on is a [`Source`] (the digits' [`crate::data::Dataset`], or
//! [`crate::text::TokenWindows`] for a language model) and what it minimises an [`Objective`]
//! ([`SoftmaxCrossEntropy`] unless [`Trainer::with_objective`] replaces it); see `source.rs`
//! and `objective.rs`. [`Trainer::train_steps_evaluating`] evaluates a validation split every
//! N steps.
//!
//! Data parallel over several processes (MPI, one GPU each): [`Trainer::with_collective`];
//! see `parallel.rs` for how batches are sharded, gradients reduced in buckets, ZeRO-1, and
//! why the memory adaptations above stay local to a rank.

mod adapt;
mod eval;
mod loss_scale;
mod objective;
mod overlap;
mod parallel;
mod report;
mod run;
mod source;
mod state;
mod step;

pub use eval::Evaluation;
pub use loss_scale::LossScaleConfig;
pub use objective::{Objective, SoftmaxCrossEntropy};
pub use report::{Adaptation, AdaptationReason, EpochReport, RankReport, TrainingReport};
pub use source::{Source, Targets};
pub use state::{NamedArray, TrainerState};

use crate::checkpoint::{CheckpointPolicy, GradientCheckpointer};
use crate::error::{Error, Result};
use crate::nn::{Module, Sequential};
use crate::optim::Optimizer;
use crate::tensor::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// What to do when the loss, or an input of the batch, is NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NonFinitePolicy {
    /// Stop with [`Error::NonFiniteLoss`] (or [`Error::NonFiniteInput`]).
    #[default]
    Stop,
    /// Skip the update (gradients discarded) and go on; counted in the report.
    Skip,
}

/// The number types a [`Trainer`] computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything f32.
    #[default]
    F32,
    /// Mixed precision: f32 master weights, gradients and optimizer state; f16 working weights,
    /// inputs, activations and activation gradients with f32 accumulation; dynamic loss scaling
    /// ([`TrainerConfig::loss_scale`]). Needs `SHADER_F16` and an optimizer with a mixed step
    /// (Adam, Sgd, and the wrappers `ClipGradNorm` and `Scheduled` around them); not combined
    /// with data parallelism yet. A GPT's tied token table gets an f16 working copy too.
    Mixed,
}

impl std::str::FromStr for Precision {
    type Err = Error;

    /// `f32` or `mixed` (as `--precision` on the examples takes them).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "f32" | "F32" => Ok(Precision::F32),
            "mixed" | "Mixed" => Ok(Precision::Mixed),
            other => Err(Error::invalid(
                "precision",
                format!("'{other}'; use f32 or mixed"),
            )),
        }
    }
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
    /// f32 or mixed precision.
    pub precision: Precision,
    /// The loss scaler's policy (used with [`Precision::Mixed`]).
    pub loss_scale: LossScaleConfig,
    /// Data parallel: sum each gradient bucket over the ranks as soon as the backward pass has
    /// passed its layers, while it goes on with earlier ones (`distributed/overlap.rs`); off,
    /// the same exchange runs after the backward pass. Bit-identical sums either way. Not
    /// used with `zero1` (its reduce-scatter runs after the backward pass).
    pub overlap: bool,
    /// Data parallel: what gradients travel as (`f16` halves the bytes; see
    /// [`crate::distributed::GradCompression`]). Not used with `zero1`.
    pub grad_compression: crate::distributed::GradCompression,
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
            precision: Precision::F32,
            loss_scale: LossScaleConfig::default(),
            overlap: true,
            grad_compression: crate::distributed::GradCompression::None,
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
    /// Seconds of the step spent exchanging gradients and parameters that the step waited
    /// for (0 in one process); the part hidden behind the backward pass is not counted.
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
    /// The loss ([`SoftmaxCrossEntropy`] unless [`Trainer::with_objective`] says otherwise).
    objective: Box<dyn Objective>,
    /// The loss scaler of mixed precision.
    scaler: Option<loss_scale::LossScaler>,
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
        let mut model = model;
        let scaler = match config.precision {
            Precision::F32 => None,
            Precision::Mixed => {
                if zero1 {
                    return Err(Error::invalid(
                        "precision",
                        "mixed precision is not combined with ZeRO-1 yet; use Precision::F32",
                    ));
                }
                ctx.gpu().require_f16()?;
                model.set_precision(crate::DType::F16)?;
                Some(loss_scale::LossScaler::new(&ctx, config.loss_scale)?)
            }
        };
        let loss_scale = scaler.as_ref().map(|s| s.scale());
        let trainer = Self {
            objective: Box::new(SoftmaxCrossEntropy),
            scaler,
            dp: None,
            sharded: None,
            checkpointer: GradientCheckpointer::new(config.checkpoint),
            micro_batch: config.batch_size,
            pressure: Arc::new(AtomicBool::new(false)),
            calm_steps: 0,
            oom_ceiling: None,
            report: TrainingReport {
                world_size: 1,
                loss_scale,
                matmul_kernels: Some(ctx.gpu().matmul_kernels()),
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

    /// Replaces the objective (the loss the trainer minimises and evaluates).
    pub fn with_objective(mut self, objective: Box<dyn Objective>) -> Self {
        self.objective = objective;
        self
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

    /// The element type of inputs and activations: f16 in mixed precision.
    pub(crate) fn compute_dtype(&self) -> crate::DType {
        match self.scaler {
            Some(_) => crate::DType::F16,
            None => crate::DType::F32,
        }
    }

    /// The loss scale in use (mixed precision), `None` in f32.
    pub fn loss_scale(&self) -> Option<f32> {
        self.scaler.as_ref().map(|s| s.scale())
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
}

impl std::fmt::Debug for Trainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trainer")
            .field("model", &self.model.name())
            .field("micro_batch", &self.micro_batch)
            .finish_non_exhaustive()
    }
}
