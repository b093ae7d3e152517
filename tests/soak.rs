//! Soak: the Trainer on the digits for 3 epochs (69 steps, lavapipe in CI) while a seeded
//! simulated pressure source moves through random levels every step (the memory manager and
//! the trainer respond) and a seeded random hard limit, changed every step, makes allocations
//! fail mid-step. Checked at the end: every step asked for was done and every sample seen,
//! the live bytes are back to the baseline (parameters, gradients, optimizer state), nothing
//! is left after the trainer is dropped, and the loss matches a run without faults within the
//! tolerance stated below.
//!
//! Why a hard limit and not the fault wrapper: `Context` is built on `WgpuBackend`, so
//! [`wgmem::testing::FaultyBackend`] cannot sit under the trainer. A limit below the need
//! fails allocations through the same manager ladder (evict, wait, clean up, out-of-memory)
//! and reaches the trainer as the same `OutOfMemory` a full device gives; the backend-level
//! faults are soaked on the memory layer in `tests/faults.rs` (20 000 operations).

mod common;

use std::sync::Arc;
use wgmem::nn::{Linear, Sequential};
use wgmem::optim::Adam;
use wgmem::pressure::{PressureLevel, PressureMonitor, SimulatedSource};
use wgmem::train::AdaptationReason;
use wgmem::{Context, MemoryConfig, Trainer, TrainerConfig};

const EPOCHS: usize = 3;

fn trainer(ctx: &Arc<Context>) -> Trainer {
    let model = Sequential::new()
        .with(Linear::new(ctx, 64, 32, 1).unwrap().with_relu())
        .with(Linear::new(ctx, 32, 32, 2).unwrap().with_relu())
        .with(Linear::new(ctx, 32, 10, 3).unwrap());
    let config = TrainerConfig {
        epochs: EPOCHS,
        batch_size: 64,
        seed: 3,
        recover_after: 2,
        ..TrainerConfig::default()
    };
    Trainer::new(Arc::clone(ctx), model, Box::new(Adam::new(2e-3)), config).unwrap()
}

/// Relative difference allowed between the final training loss with and without faults.
/// Micro-batches sum the same gradients in another order, so the runs differ by rounding,
/// which Adam carries from step to step; the measured difference here is below 1e-6.
const LOSS_TOLERANCE: f64 = 1e-2;

#[test]
fn training_under_random_pressure_and_failing_allocations_loses_nothing() {
    let data = common::digits_split().0;
    let steps_per_epoch = data.len().div_ceil(64) as u64;

    // Reference: no pressure, no limit.
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let mut reference = trainer(&ctx);
    let ref_report = reference.fit(&data, None, |_| {}).unwrap();
    let (ref_loss, _) = reference.evaluate(&data).unwrap();
    let working_set = ref_report.memory.peak_reserved_bytes - ref_report.memory.live_bytes;
    drop(reference);

    // The soak.
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let mut t = trainer(&ctx);
    let baseline_before = ctx.memory().stats().live_bytes;
    let source = SimulatedSource::new("soak");
    let pressure = source.handle();
    let mut monitor = PressureMonitor::new();
    monitor.add_source(source);
    monitor.add_responder(t.pressure_responder());
    monitor.add_responder(Arc::new(ctx.memory().clone()));
    let memory = ctx.memory().clone();
    let mut rng = common::Rng::new(2026);
    let mut limits_set = 0u64;
    let levels = [
        PressureLevel::Normal,
        PressureLevel::Warning,
        PressureLevel::Critical,
    ];
    let report = t
        .fit(&data, None, |s| {
            // Normal 60% of the steps, Warning 30%, Critical 10%.
            let level = match rng.next_u64() % 10 {
                0..6 => levels[0],
                6..9 => levels[1],
                _ => levels[2],
            };
            pressure.set(level);
            monitor.poll();
            // A limit between 5% and 105% of the reference's working set above what is live
            // now, or none (one step in five).
            let limit = match rng.next_u64() % 5 {
                0 => None,
                _ => {
                    let f = 0.05 + (rng.next_u64() % 1000) as f64 / 1000.0;
                    Some(s.live_bytes + (working_set as f64 * f) as u64)
                }
            };
            memory.set_hard_limit(limit).unwrap();
            limits_set += 1;
        })
        .unwrap();
    memory.set_hard_limit(None).unwrap();
    let stats = ctx.memory().stats();
    let ooms_survived = report
        .adaptations
        .iter()
        .filter(|a| a.reason == AdaptationReason::OutOfMemory)
        .count();
    let pressure_changes = monitor.counts().changes();
    let (loss, _) = t.evaluate(&data).unwrap();
    let baseline = baseline_before + t.optimizer().state_bytes();
    eprintln!(
        "soak: {} steps ({} asked), {} samples; {pressure_changes} pressure changes, \
         {limits_set} limits set, {} failed allocations (manager OOMs), {ooms_survived} \
         out-of-memory adaptations, {} adaptations in all; live at the end {} B (baseline {} B); \
         loss {loss:.6} vs {ref_loss:.6} without faults (relative difference {:.1e})",
        report.steps,
        EPOCHS as u64 * steps_per_epoch,
        report.samples_seen,
        stats.ooms,
        report.adaptations.len(),
        stats.live_bytes,
        baseline,
        (loss - ref_loss).abs() / ref_loss,
    );
    assert_eq!(report.steps, EPOCHS as u64 * steps_per_epoch);
    assert_eq!(report.samples_seen, EPOCHS * data.len());
    assert!(stats.ooms > 0, "the limits made allocations fail");
    assert!(ooms_survived > 0 && pressure_changes > 10);
    assert_eq!(
        stats.live_bytes, baseline,
        "live bytes back to the baseline"
    );
    assert!(
        (loss - ref_loss).abs() <= LOSS_TOLERANCE * ref_loss,
        "loss {loss} vs {ref_loss} without faults"
    );
    drop(t);
    assert_eq!(ctx.memory().stats().live_bytes, 0);
    ctx.memory().clear_cache();
    assert_eq!(ctx.memory().stats().reserved_bytes(), 0);
}
