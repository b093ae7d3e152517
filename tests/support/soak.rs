//! The soak driver shared by `tests/soak.rs` (bounded, in CI) and `benches/soak.rs` (long,
//! outside CI): the trainer's `fit` on the real `WgpuBackend` while a seeded
//! [`FaultPlan`] fails allocations, writes, reads and submits underneath it (a failed
//! submit loses the device), a simulated pressure source moves through random levels and a
//! random hard limit changes every step.
//!
//! Recovery is what a user would write: the run saves its state after every epoch (in
//! memory); when `fit` returns a fault's typed error, the trainer is rebuilt from the last
//! saved state, on the same context for an out-of-memory or a failed transfer, and on a new
//! backend and context for a lost device. Rebuilding and restoring run under the faults too.
//! Anything but those errors ends the soak with that error.
//!
//! The figures: steps done against steps asked, samples seen against asked (so samples lost
//! is their difference), live bytes after the last epoch against what the parameters,
//! gradients and optimizer state hold, nothing live once the trainer is dropped, and the
//! training loss against a fault-free run of the same epochs.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Instant;
use wgmem::data::Dataset;
use wgmem::nn::{Linear, Sequential};
use wgmem::optim::Adam;
use wgmem::pressure::{PressureLevel, PressureMonitor, SimulatedSource};
use wgmem::testing::{FaultCounts, FaultPlan};
use wgmem::train::{AdaptationReason, TrainerState};
use wgmem::{Context, Error, MemoryConfig, Result, Trainer, TrainerConfig, WgpuBackend};

/// Rows per batch.
pub const BATCH: usize = 64;

/// What to inject.
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// Epochs of the digits' training split (23 steps each at batch 64).
    pub epochs: usize,
    /// Seeds the faults, the pressure levels and the limits.
    pub seed: u64,
    /// Probability that an allocation fails (the manager retries before giving up).
    pub allocation_rate: f64,
    /// Probability that a write fails.
    pub write_rate: f64,
    /// Probability that a read fails.
    pub read_rate: f64,
    /// Probability that a submit loses the device.
    pub loss_rate: f64,
    /// The first backend loses its device at this submit (1-based), and fails this write and
    /// this read, so a short soak is sure to see each fault.
    pub first_loss_at_submit: Option<u64>,
    pub first_write_failure_at: Option<u64>,
    pub first_read_failure_at: Option<u64>,
    /// Random pressure levels and hard limits every step.
    pub pressure_and_limits: bool,
}

/// What a soak did.
#[derive(Debug, Clone, Default)]
pub struct SoakFigures {
    pub steps_asked: u64,
    pub steps_done: u64,
    pub samples_asked: u64,
    pub samples_seen: u64,
    /// Faults the plans injected (summed over every backend the soak built).
    pub faults: FaultCounts,
    /// Errors `fit` (or a rebuild) returned and the soak recovered from, by kind.
    pub recovered_ooms: u64,
    pub recovered_transfers: u64,
    pub device_losses: u64,
    /// Epochs started again from the last saved state.
    pub epochs_redone: u64,
    /// Out-of-memory adaptations the trainer made (micro-batch halved, step retried).
    pub oom_adaptations: u64,
    pub pressure_changes: u64,
    /// Live bytes after the last epoch, and what parameters, gradients and optimizer state
    /// hold (measured right after the last trainer was built, plus the optimizer state).
    pub live_at_end: u64,
    pub baseline: u64,
    /// Live bytes once the last trainer is dropped (0 when nothing leaked).
    pub live_after_drop: u64,
    /// Mean training-set loss after the run, and of the fault-free reference.
    pub loss: f64,
    pub reference_loss: f64,
    pub seconds: f64,
    pub reference_seconds: f64,
}

impl SoakFigures {
    /// `|loss - reference| / reference`.
    pub fn relative_loss_difference(&self) -> f64 {
        (self.loss - self.reference_loss).abs() / self.reference_loss
    }
}

impl std::fmt::Display for SoakFigures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let row =
            |f: &mut std::fmt::Formatter<'_>, k: &str, v: String| writeln!(f, "| {k} | {v} |");
        writeln!(f, "| figure | value |")?;
        writeln!(f, "|---|---|")?;
        row(
            f,
            "steps done / asked",
            format!("{} / {}", self.steps_done, self.steps_asked),
        )?;
        row(
            f,
            "samples lost",
            format!("{}", self.samples_asked as i64 - self.samples_seen as i64),
        )?;
        row(
            f,
            "faults injected (alloc / write / read / lost-device refusals)",
            format!(
                "{} / {} / {} / {}",
                self.faults.allocations,
                self.faults.writes,
                self.faults.reads,
                self.faults.device_lost
            ),
        )?;
        row(
            f,
            "errors recovered (OOM / transfer / device lost)",
            format!(
                "{} / {} / {}",
                self.recovered_ooms, self.recovered_transfers, self.device_losses
            ),
        )?;
        row(
            f,
            "epochs redone from saved state",
            self.epochs_redone.to_string(),
        )?;
        row(
            f,
            "OOM adaptations inside fit",
            self.oom_adaptations.to_string(),
        )?;
        row(f, "pressure changes", self.pressure_changes.to_string())?;
        row(
            f,
            "live bytes at the end / baseline",
            format!("{} / {}", self.live_at_end, self.baseline),
        )?;
        row(f, "live bytes after drop", self.live_after_drop.to_string())?;
        row(
            f,
            "loss / fault-free loss (relative difference)",
            format!(
                "{:.6} / {:.6} ({:.1e})",
                self.loss,
                self.reference_loss,
                self.relative_loss_difference()
            ),
        )?;
        row(
            f,
            "wall time soak / reference",
            format!("{:.1} s / {:.1} s", self.seconds, self.reference_seconds),
        )
    }
}

fn trainer(ctx: &Arc<Context>, epochs: usize) -> Result<Trainer> {
    let model = Sequential::new()
        .with(Linear::new(ctx, 64, 32, 1)?.with_relu())
        .with(Linear::new(ctx, 32, 32, 2)?.with_relu())
        .with(Linear::new(ctx, 32, 10, 3)?);
    let config = TrainerConfig {
        epochs,
        batch_size: BATCH,
        seed: 3,
        recover_after: 2,
        ..TrainerConfig::default()
    };
    Trainer::new(Arc::clone(ctx), model, Box::new(Adam::new(2e-3)), config)
}

fn backend() -> Arc<WgpuBackend> {
    Arc::new(WgpuBackend::new().unwrap_or_else(|e| panic!("the soak needs an adapter: {e}")))
}

/// The fault-free run: (loss on `data` after `epochs`, the working set above the live bytes,
/// seconds).
pub fn reference(data: &Dataset, epochs: usize) -> (f64, u64, f64) {
    let started = Instant::now();
    let ctx = Context::new(backend(), MemoryConfig::default()).unwrap();
    let mut t = trainer(&ctx, epochs).unwrap();
    let report = t.fit(data, None, |_| {}).unwrap();
    let (loss, _) = t.evaluate(data).unwrap();
    let working_set = report.memory.peak_reserved_bytes - report.memory.live_bytes;
    (loss, working_set, started.elapsed().as_secs_f64())
}

/// One backend and context under a plan of their own (a lost device stays lost, so a rebuilt
/// backend gets a fresh plan with the same rates).
struct Device {
    plan: Arc<FaultPlan>,
    ctx: Arc<Context>,
}

impl Device {
    fn new(cfg: &SoakConfig, seed: u64) -> Self {
        let backend = backend();
        // Faults start once the context exists: building one is not what is soaked.
        let ctx = Context::new(Arc::clone(&backend), MemoryConfig::default()).unwrap();
        let plan = Arc::new(FaultPlan::new(seed));
        plan.set_allocation_failure_rate(cfg.allocation_rate);
        plan.set_write_failure_rate(cfg.write_rate);
        plan.set_read_failure_rate(cfg.read_rate);
        plan.set_device_loss_rate(cfg.loss_rate);
        backend.set_fault_plan(Some(Arc::clone(&plan)));
        Self { plan, ctx }
    }
}

fn add(total: &mut FaultCounts, more: FaultCounts) {
    total.allocations += more.allocations;
    total.writes += more.writes;
    total.reads += more.reads;
    total.device_lost += more.device_lost;
}

/// A trainer for `epochs` epochs restored to `state` (a fresh one for `None`), and the live
/// bytes right after it was built (parameters and gradients).
fn rebuild(
    ctx: &Arc<Context>,
    epochs: usize,
    state: Option<&TrainerState>,
) -> Result<(Trainer, u64)> {
    let mut t = trainer(ctx, epochs)?;
    let built = ctx.memory().stats().live_bytes;
    if let Some(state) = state {
        t.restore(state.clone())?;
    }
    Ok((t, built))
}

/// Runs the soak; `working_set` (from [`reference`]) scales the random hard limits.
pub fn soak(data: &Dataset, cfg: &SoakConfig, working_set: u64) -> Result<SoakFigures> {
    let started = Instant::now();
    let steps_per_epoch = data.len().div_ceil(BATCH) as u64;
    let mut fig = SoakFigures {
        steps_asked: cfg.epochs as u64 * steps_per_epoch,
        samples_asked: (cfg.epochs * data.len()) as u64,
        ..SoakFigures::default()
    };
    let mut seeds = cfg.seed;
    let mut device = Device::new(cfg, seeds);
    if let Some(n) = cfg.first_loss_at_submit {
        device.plan.lose_device_at_submit(n);
    }
    if let Some(n) = cfg.first_write_failure_at {
        device.plan.fail_write_at(n);
    }
    if let Some(n) = cfg.first_read_failure_at {
        device.plan.fail_read_at(n);
    }
    let mut rng = wgmem_soak_rng(cfg.seed ^ 0x5eed);
    let levels = [
        PressureLevel::Normal,
        PressureLevel::Warning,
        PressureLevel::Critical,
    ];
    let mut saved: Option<TrainerState> = None;
    let mut last = None;
    let mut epoch = 0;
    while epoch < cfg.epochs {
        device.ctx.memory().set_hard_limit(None)?;
        // The previous epoch's trainer goes first, so the new one's baseline is its own.
        drop(last.take());
        let attempt = (|| {
            let (mut t, built) = rebuild(&device.ctx, epoch + 1, saved.as_ref())?;
            let source = SimulatedSource::new("soak");
            let pressure = source.handle();
            let mut monitor = PressureMonitor::new();
            monitor.add_source(source);
            monitor.add_responder(t.pressure_responder());
            monitor.add_responder(Arc::new(device.ctx.memory().clone()));
            let memory = device.ctx.memory().clone();
            let result = t.fit(data, None, |s| {
                if !cfg.pressure_and_limits {
                    return;
                }
                // Normal 60% of the steps, Warning 30%, Critical 10%.
                let level = match rng() % 10 {
                    0..6 => levels[0],
                    6..9 => levels[1],
                    _ => levels[2],
                };
                pressure.set(level);
                monitor.poll();
                // A limit between 5% and 105% of the reference's working set above what is
                // live now, or none (one step in five).
                let limit = match rng() % 5 {
                    0 => None,
                    _ => {
                        let f = 0.05 + (rng() % 1000) as f64 / 1000.0;
                        Some(s.live_bytes + (working_set as f64 * f) as u64)
                    }
                };
                let _ = memory.set_hard_limit(limit);
            });
            fig.pressure_changes += monitor.counts().changes();
            let report = result?;
            memory.set_hard_limit(None)?;
            let state = t.state()?;
            Ok::<_, Error>((t, built, report, state))
        })();
        match attempt {
            Ok((t, built, report, state)) => {
                fig.oom_adaptations += report
                    .adaptations
                    .iter()
                    .filter(|a| a.reason == AdaptationReason::OutOfMemory)
                    .count() as u64;
                saved = Some(state);
                epoch += 1;
                last = Some((t, built));
            }
            Err(e) => {
                fig.epochs_redone += 1;
                match e {
                    Error::OutOfMemory(_) => fig.recovered_ooms += 1,
                    Error::Transfer { .. } => fig.recovered_transfers += 1,
                    Error::DeviceLost { .. } => {
                        fig.device_losses += 1;
                        add(&mut fig.faults, device.plan.faults());
                        last = None;
                        seeds += 1;
                        device = Device::new(cfg, seeds);
                    }
                    other => return Err(other),
                }
            }
        }
    }
    fig.seconds = started.elapsed().as_secs_f64();
    device.plan.clear_faults();
    add(&mut fig.faults, device.plan.faults());
    let (mut t, built) = last.expect("the last epoch finished");
    fig.steps_done = t.report().steps;
    fig.samples_seen = t.report().samples_seen as u64;
    fig.live_at_end = device.ctx.memory().stats().live_bytes;
    fig.baseline = built + t.optimizer().state_bytes();
    fig.loss = t.evaluate(data)?.0;
    drop(t);
    fig.live_after_drop = device.ctx.memory().stats().live_bytes;
    Ok(fig)
}

/// A small seeded generator (splitmix64), so the driver needs nothing from `tests/common`.
fn wgmem_soak_rng(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}
