//! Data-parallel training: the trainer's side of [`crate::distributed`].
//!
//! Every rank runs the same [`Trainer`] over the same data and the same epoch order (same
//! seed), and passes the same global batch to [`Trainer::train_step`]. Then:
//! - each rank computes its shard of the batch ([`Shards::balanced`]: the shards add up to the
//!   batch), with the loss gradient of each micro-batch scaled by `rows / global batch`, so
//!   the *sum* over ranks of the accumulated gradients is the full-batch mean gradient;
//! - one small all-reduce of `[loss · rows, correct, failed, adaptations]` makes every rank
//!   see the global loss and accuracy, and agree on what to do: if any rank failed, all return
//!   an error; if the loss is not finite, all skip (or all stop). Before it, each rank takes
//!   the memory its update will need (the exchange's working buffers from the pool, the
//!   optimizer's state at the first step), so running short of memory is one more failure
//!   that all ranks agree on. What can still fail after the agreement (a lost device, a write
//!   out of bounds) is not agreed: a rank that fails there should end the job with
//!   [`Collective::abort`], as `examples/train.rs` does, because the others may be waiting for
//!   it inside a collective;
//! - the gradients are summed over ranks in buckets ([`DataParallel`]) and every rank applies
//!   the same optimizer update, or, with ZeRO-1, reduce-scattered, each rank updating its
//!   slice ([`ShardedAdam`]) before an all-gather.
//!
//! Parameters are broadcast from rank 0 when the collective is attached, so all ranks start
//! equal and stay equal (same update from the same reduced gradient).
//!
//! # Memory adaptation stays local
//! Out-of-memory retries and pressure reactions change only the *micro-batch* size inside a
//! rank's shard: gradients accumulate to the same value whatever it is, and every rank still
//! reaches the same collectives in the same order, once per step. So a rank under pressure
//! shrinks alone and never makes the others wait for a different step; the number of
//! adaptations is summed in the per-step all-reduce, and the other ranks count it in
//! [`TrainingReport::peer_adaptations`](super::TrainingReport::peer_adaptations).

use super::{RankReport, Source, Trainer};
use crate::distributed::{Collective, DataParallel, ShardedAdam, Shards};
use crate::error::{Error, Result};
use crate::nn::Module;
use crate::optim::Adam;

impl Trainer {
    /// Makes this trainer one rank of a data-parallel job over `collective` (see the module
    /// docs of `train::parallel`): rank 0's parameters are broadcast to all ranks now, and
    /// every step's gradients are summed over the ranks. With `config.zero1`, Adam's moments
    /// are sharded over the ranks ([`ShardedAdam`]); the optimizer given to
    /// [`Trainer::new`] must then be [`crate::optim::Adam`].
    ///
    /// All ranks must call this, with models of the same shapes.
    pub fn with_collective(mut self, collective: Box<dyn Collective>) -> Result<Self> {
        if self.scaler.is_some() {
            return Err(Error::invalid(
                "precision",
                "mixed precision is not combined with data parallelism yet; use Precision::F32",
            ));
        }
        let mut dp = DataParallel::new(collective, self.config.bucket_bytes)
            .with_compression(self.config.grad_compression);
        if self.config.zero1 {
            let optimizer: &dyn std::any::Any = self.optimizer.as_ref();
            let hp = optimizer
                .downcast_ref::<Adam>()
                .filter(|adam| adam.is_uniform())
                .map(Adam::hyperparameters)
                .ok_or_else(|| {
                    Error::invalid(
                        "zero1",
                        "ZeRO-1 shards Adam's moments; the optimizer must be a plain Adam \
                         (no clipping or schedule wrapper, weight decay on all parameters or none)",
                    )
                })?;
            self.sharded = Some(ShardedAdam::new(hp));
        }
        if dp.world_size() > 1 {
            let params = self.model.parameters();
            dp.broadcast_parameters(&self.ctx, &params)?;
        }
        self.report.world_size = dp.world_size();
        self.report.rank = dp.rank();
        self.dp = Some(dp);
        Ok(self)
    }

    /// This rank and the number of ranks (`(0, 1)` in one process).
    pub fn rank_and_world(&self) -> (usize, usize) {
        self.dp
            .as_ref()
            .map_or((0, 1), |dp| (dp.rank(), dp.world_size()))
    }

    /// The data-parallel state, when there is one.
    pub fn data_parallel(&self) -> Option<&DataParallel> {
        self.dp.as_ref()
    }

    /// Seconds spent exchanging parameters and gradients so far (data parallel).
    pub fn comm_seconds(&self) -> f64 {
        self.dp.as_ref().map_or(0.0, |dp| dp.comm_seconds())
    }

    /// Of [`Self::comm_seconds`], what the steps waited for: all but the exchange hidden
    /// behind the backward pass (see [`DataParallel::hidden_seconds`]).
    pub fn exposed_comm_seconds(&self) -> f64 {
        self.dp
            .as_ref()
            .map_or(0.0, |dp| dp.comm_seconds() - dp.hidden_seconds())
    }

    /// Seconds spent waiting for the other ranks at the per-step agreement so far.
    pub fn wait_seconds(&self) -> f64 {
        self.dp.as_ref().map_or(0.0, |dp| dp.wait_seconds())
    }

    /// Bytes of optimizer state on this rank (the sharded moments under ZeRO-1).
    pub fn optimizer_state_bytes(&self) -> u64 {
        match &self.sharded {
            Some(z) => z.state_bytes(),
            None => self.optimizer.state_bytes(),
        }
    }

    pub(super) fn planned_optimizer_bytes(&self, param_bytes: u64) -> u64 {
        match &self.sharded {
            Some(_) => ShardedAdam::planned_state_bytes(param_bytes, self.rank_and_world().1),
            None => self.optimizer.planned_state_bytes(param_bytes),
        }
    }

    /// Saving and restoring a run covers the optimizer given to [`Trainer::new`]; ZeRO-1's
    /// sharded moments (a different slice on every rank) are not saved yet.
    pub(super) fn check_state_supported(&self) -> Result<()> {
        if self.sharded.is_some() {
            return Err(Error::invalid(
                "trainer state",
                "saving or restoring a ZeRO-1 run is not supported yet (each rank holds a slice \
                 of the moments); train without zero1 to save state",
            ));
        }
        Ok(())
    }

    /// This rank's rows of `batch`, or `None` when the rank has the whole batch.
    pub(super) fn shard_of<S: Source>(&self, batch: &S) -> Result<Option<S>> {
        let Some(dp) = self.dp.as_ref().filter(|dp| dp.world_size() > 1) else {
            return Ok(None);
        };
        let rows = Shards::balanced(batch.len(), dp.world_size()).range(dp.rank());
        batch.select(&rows.collect::<Vec<_>>()).map(Some)
    }

    /// Sums each rank's `(loss · rows, correct)` and agrees on failure (see the module docs).
    pub(super) fn agree(
        &mut self,
        local: Result<(f64, u64)>,
        adapted: usize,
    ) -> Result<(f64, u64)> {
        let Some(dp) = self.dp.as_mut().filter(|dp| dp.world_size() > 1) else {
            return local;
        };
        // The memory the update needs (the exchange's working buffers, the optimizer's state
        // at the first step) is taken now, so running short of it is agreed on.
        let mut local = local;
        // An overlapped exchange runs its last buckets now (every rank, failed or not).
        let overlapped = match dp.finish_exchange(&self.ctx, local.is_ok()) {
            Ok(was_open) => was_open,
            Err(e) => {
                local = local.and(Err(e));
                true
            }
        };
        if local.is_ok() {
            let total: usize = self.model.parameters().iter().map(|p| p.value.len()).sum();
            let prepared = match self.sharded {
                Some(_) => Ok(()),
                None => self.optimizer.prepare(self.model.parameters()),
            };
            let reserved = match overlapped {
                true => Ok(()),
                false => dp.reserve(&self.ctx, total, self.sharded.is_some()),
            };
            if let Err(e) = prepared.and(reserved) {
                local = Err(e);
            }
        }
        let (loss, correct, failed) = match &local {
            Ok((l, c)) => (*l as f32, *c as f32, 0.0),
            Err(_) => (0.0, 0.0, 1.0),
        };
        let mut v = [loss, correct, failed, adapted as f32];
        dp.agree(&mut v)?;
        self.report.peer_adaptations += (v[3] as u64).saturating_sub(adapted as u64);
        if v[2] > 0.0 {
            self.model.clear_saved();
            self.zero_grads()?;
            let (_, _) = local?;
            return Err(Error::Collective {
                op: "train_step",
                reason: format!(
                    "{} other rank(s) failed step {}; every rank stops with them",
                    v[2], self.report.steps
                ),
            });
        }
        Ok((f64::from(v[0]), v[1] as u64))
    }

    /// Reduces the gradients over the ranks (unless ZeRO-1 does it) and applies the update.
    pub(super) fn update(&mut self) -> Result<()> {
        if let Some(scaler) = self.scaler.as_mut() {
            // Mixed precision (one process): unscale, update, zero and write the f16 weights in
            // one pass per parameter; then the scale may grow.
            self.optimizer
                .step_mixed(self.model.parameters(), 1.0 / scaler.scale())?;
            scaler.update(false);
            self.report.loss_scale = Some(scaler.scale());
            return Ok(());
        }
        match (&mut self.dp, &mut self.sharded) {
            (Some(dp), Some(zero)) => zero.step(dp, &self.ctx, self.model.parameters()),
            (Some(dp), None) if dp.world_size() > 1 => {
                let params = self.model.parameters();
                if !dp.take_reduced() {
                    dp.all_reduce_gradients(&self.ctx, &params)?;
                }
                self.optimizer.step(params)
            }
            _ => self.optimizer.step(self.model.parameters()),
        }
    }

    /// Every rank's memory and timing, gathered on all ranks (one entry in one process).
    pub(super) fn gather_ranks(&mut self) -> Result<Vec<RankReport>> {
        let stats = self.ctx.memory().stats();
        let mine = [
            stats.live_bytes,
            stats.peak_live_bytes,
            stats.peak_reserved_bytes,
            self.optimizer_state_bytes(),
            stats.peak_for_tag(crate::distributed::COMM),
            self.dp.as_ref().map_or(0, |dp| dp.host_staging_bytes()),
            (self.comm_seconds() * 1e6) as u64,
            (self.report.compute_seconds * 1e6) as u64,
            self.report.local_samples,
            (self.wait_seconds() * 1e6) as u64,
            self.dp
                .as_ref()
                .map_or(0, |dp| (dp.collective_seconds() * 1e6) as u64),
            self.dp
                .as_ref()
                .map_or(0, |dp| (dp.hidden_seconds() * 1e6) as u64),
            self.dp
                .as_ref()
                .map_or(0, |dp| (dp.exposed_seconds() * 1e6) as u64),
        ];
        let world = self.rank_and_world().1;
        let mut all = vec![0u64; mine.len() * world];
        match &self.dp {
            Some(dp) => dp.collective().all_gather_u64(&mine, &mut all)?,
            None => all.copy_from_slice(&mine),
        }
        Ok(all
            .chunks(mine.len())
            .enumerate()
            .map(|(rank, v)| RankReport {
                rank,
                live_bytes: v[0],
                peak_live_bytes: v[1],
                peak_reserved_bytes: v[2],
                optimizer_bytes: v[3],
                comm_gpu_bytes: v[4],
                host_staging_bytes: v[5],
                comm_seconds: v[6] as f64 / 1e6,
                compute_seconds: v[7] as f64 / 1e6,
                samples: v[8],
                wait_seconds: v[9] as f64 / 1e6,
                collective_seconds: v[10] as f64 / 1e6,
                comm_hidden_seconds: v[11] as f64 / 1e6,
                comm_exposed_seconds: v[12] as f64 / 1e6,
            })
            .collect())
    }
}
