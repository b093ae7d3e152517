//! What a training run did: per-epoch figures, every adaptation to memory, and the account.

use crate::memory::MemoryStats;
use crate::units::human_bytes;
use std::fmt;

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochReport {
    /// 0-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's samples.
    pub train_loss: f64,
    /// Training accuracy over the epoch's samples.
    pub train_accuracy: f64,
    /// Test accuracy after the epoch, when a test set was given.
    pub test_accuracy: Option<f64>,
    /// Samples that contributed to an update.
    pub samples: usize,
    /// Wall time of the epoch in seconds (evaluation excluded).
    pub seconds: f64,
}

/// Why the trainer changed how it runs a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdaptationReason {
    /// An allocation failed with out-of-memory mid-step.
    OutOfMemory,
    /// Memory pressure reached the critical level.
    Pressure,
    /// Pressure has been normal for a while: back toward the configured batch.
    Recovered,
    /// The measured step did not fit the memory budget at start.
    InitialFit,
}

/// One change of the micro-batch size (or of checkpointing).
#[derive(Debug, Clone, PartialEq)]
pub struct Adaptation {
    /// The optimizer step it happened at.
    pub step: u64,
    /// Micro-batch rows before.
    pub from: usize,
    /// Micro-batch rows after.
    pub to: usize,
    /// Why.
    pub reason: AdaptationReason,
    /// Whether checkpointing was switched on by it.
    pub checkpointing_enabled: bool,
}

/// One rank's memory and time at the end of a data-parallel run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct RankReport {
    /// The rank.
    pub rank: usize,
    /// Live bytes on its GPU at the end.
    pub live_bytes: u64,
    /// Peak live bytes.
    pub peak_live_bytes: u64,
    /// Peak reserved bytes (live + cached).
    pub peak_reserved_bytes: u64,
    /// Optimizer state (ZeRO-1: this rank's shard of the moments).
    pub optimizer_bytes: u64,
    /// Peak bytes under the `comm` tag: the exchange's mapped staging buffers and ZeRO-1's
    /// chunk buffers (from the pool).
    pub comm_gpu_bytes: u64,
    /// Host memory held for the collectives' results (one bucket).
    pub host_staging_bytes: u64,
    /// Seconds exchanging gradients and parameters (GPU-host copies and collectives).
    pub comm_seconds: f64,
    /// Of `comm_seconds`, the seconds inside the collectives (MPI moving and summing host
    /// memory); the rest is the GPU-host copies not hidden behind them.
    pub collective_seconds: f64,
    /// Of `comm_seconds`, the gradient exchange done during the backward pass, while the GPU
    /// had earlier layers' work queued (overlap; an upper bound of what was hidden).
    pub comm_hidden_seconds: f64,
    /// Of `comm_seconds`, the gradient exchange the steps waited for after the backward pass.
    pub comm_exposed_seconds: f64,
    /// Seconds waiting for the other ranks at the per-step agreement (load imbalance).
    pub wait_seconds: f64,
    /// Seconds in forward, backward and optimizer update (including the hidden exchange
    /// done from the backward pass's hooks).
    pub compute_seconds: f64,
    /// Rows of the batches this rank computed (its shards).
    pub samples: u64,
}

impl RankReport {
    /// Rows per second of compute and communication on this rank.
    pub fn samples_per_second(&self) -> f64 {
        // The hidden exchange ran inside the backward pass: counted once, in compute.
        let comm = self.comm_seconds - self.comm_hidden_seconds;
        let busy = self.compute_seconds + comm + self.wait_seconds;
        self.samples as f64 / busy.max(1e-12)
    }
}

/// The whole run.
#[derive(Debug, Clone, Default)]
pub struct TrainingReport {
    /// Per-epoch figures.
    pub epochs: Vec<EpochReport>,
    /// Every adaptation, in order.
    pub adaptations: Vec<Adaptation>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Samples that contributed to an update.
    pub samples_seen: usize,
    /// Steps skipped because the loss was not finite (with `NonFinitePolicy::Skip`).
    pub skipped_steps: u64,
    /// Mixed precision: steps skipped because a gradient overflowed f16 (no update; the loss
    /// scale was lowered). Not counted in `steps` nor in `skipped_steps`.
    pub overflow_skipped_steps: u64,
    /// Mixed precision: the loss scale after the last step; `None` in f32.
    pub loss_scale: Option<f32>,
    /// The matmul kernels the device runs (cooperative matrices or plain, and why).
    pub matmul_kernels: Option<crate::compute::MatmulKernels>,
    /// The memory account at the end.
    pub memory: MemoryStats,
    /// Optimizer state bytes (this rank's).
    pub optimizer_bytes: u64,
    /// Ranks in the data-parallel world (1 in one process).
    pub world_size: usize,
    /// This process's rank.
    pub rank: usize,
    /// Adaptations of the micro-batch made by the other ranks (data parallel).
    pub peer_adaptations: u64,
    /// Seconds exchanging gradients and parameters on this rank (data parallel).
    pub comm_seconds: f64,
    /// Seconds waiting for the other ranks at the per-step agreement (data parallel).
    pub wait_seconds: f64,
    /// Seconds in forward, backward and update on this rank.
    pub compute_seconds: f64,
    /// Rows this rank computed (its shards of the batches; all of them in one process).
    pub local_samples: u64,
    /// Every rank's memory and time, gathered at the end of `fit` (rank order).
    pub ranks: Vec<RankReport>,
}

impl TrainingReport {
    /// Test accuracy after the last epoch, if measured.
    pub fn final_test_accuracy(&self) -> Option<f64> {
        self.epochs.last().and_then(|e| e.test_accuracy)
    }
}

impl fmt::Display for TrainingReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "epoch | train loss | train acc | test acc | seconds")?;
        for e in &self.epochs {
            let test = e
                .test_accuracy
                .map_or("-".to_string(), |a| format!("{:.2}%", a * 100.0));
            writeln!(
                f,
                "{:5} | {:10.4} | {:8.2}% | {:>8} | {:7.3}",
                e.epoch,
                e.train_loss,
                e.train_accuracy * 100.0,
                test,
                e.seconds
            )?;
        }
        writeln!(
            f,
            "steps {}, samples {}, skipped steps {}",
            self.steps, self.samples_seen, self.skipped_steps
        )?;
        if let Some(kernels) = self.matmul_kernels {
            writeln!(f, "{kernels}")?;
        }
        if let Some(scale) = self.loss_scale {
            writeln!(
                f,
                "mixed precision: {} steps skipped on overflow, final loss scale {scale}",
                self.overflow_skipped_steps
            )?;
        }
        if self.adaptations.is_empty() {
            writeln!(f, "adaptations: none")?;
        } else {
            writeln!(f, "adaptations:")?;
            for a in &self.adaptations {
                let ck = if a.checkpointing_enabled {
                    ", checkpointing on"
                } else {
                    ""
                };
                writeln!(
                    f,
                    "  step {}: micro-batch {} -> {} ({:?}{ck})",
                    a.step, a.from, a.to, a.reason
                )?;
            }
        }
        writeln!(f, "optimizer state {}", human_bytes(self.optimizer_bytes))?;
        if self.ranks.len() > 1 {
            writeln!(
                f,
                "data parallel over {} ranks (adaptations on other ranks: {}):",
                self.ranks.len(),
                self.peer_adaptations
            )?;
            writeln!(
                f,
                "rank |  peak live | peak reserved |  optimizer | comm staging | host vector | compute s | comm s | hidden s | exposed s | in MPI s | wait s | samples/s"
            )?;
            for r in &self.ranks {
                writeln!(
                    f,
                    "{:4} | {:>10} | {:>13} | {:>10} | {:>12} | {:>11} | {:9.3} | {:6.3} | {:8.3} | {:9.3} | {:8.3} | {:6.3} | {:9.0}",
                    r.rank,
                    human_bytes(r.peak_live_bytes),
                    human_bytes(r.peak_reserved_bytes),
                    human_bytes(r.optimizer_bytes),
                    human_bytes(r.comm_gpu_bytes),
                    human_bytes(r.host_staging_bytes),
                    r.compute_seconds,
                    r.comm_seconds,
                    r.comm_hidden_seconds,
                    r.comm_exposed_seconds,
                    r.collective_seconds,
                    r.wait_seconds,
                    r.samples_per_second()
                )?;
            }
        }
        write!(f, "memory: {}", self.memory)
    }
}
