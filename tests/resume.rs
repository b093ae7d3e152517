//! Saving and resuming a training run (lavapipe in CI): a run saved after N steps and resumed
//! by a fresh trainer reaches bit-identical parameters to the run that went on (SGD with
//! momentum and Adam, across an epoch boundary, through `fit` too); a lost device is a
//! `DeviceLost` error and the run resumes on a new device from the file; a state that does not
//! fit the model, or a corrupt file, is a typed error that changes nothing.

mod common;

use std::sync::Arc;
use wgmem::nn::{Linear, Module, Sequential};
use wgmem::optim::{Adam, Optimizer, Sgd};
use wgmem::train::TrainerState;
use wgmem::{Context, Error, MemoryConfig, Trainer, TrainerConfig, WgpuBackend};

fn model(ctx: &Arc<Context>, hidden: usize) -> Sequential {
    Sequential::new()
        .with(Linear::new(ctx, 64, hidden, 1).unwrap().with_relu())
        .with(Linear::new(ctx, hidden, 10, 2).unwrap())
}

fn trainer(ctx: &Arc<Context>, optimizer: Box<dyn Optimizer>, epochs: usize) -> Trainer {
    let config = TrainerConfig {
        epochs,
        batch_size: 64,
        seed: 11,
        ..TrainerConfig::default()
    };
    Trainer::new(Arc::clone(ctx), model(ctx, 32), optimizer, config).unwrap()
}

fn params(t: &mut Trainer) -> Vec<Vec<u32>> {
    t.model()
        .parameters()
        .iter()
        .map(|p| {
            p.value
                .to_vec()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

fn state_file(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wgmem-resume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn resume_is_bit_identical(make: fn() -> Box<dyn Optimizer>, name: &str) {
    let data = common::digits_split().0;
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    // 1437 samples in batches of 64: 23 steps an epoch, so 20 + 10 crosses an epoch.
    let (n, m) = (20, 10);
    let mut first = trainer(&ctx, make(), 2);
    first.train_steps(&data, n, |_| {}).unwrap();
    let path = state_file(name);
    first.save_state(&path).unwrap();
    first.train_steps(&data, m, |_| {}).unwrap();
    let p1 = params(&mut first);

    let mut second = trainer(&ctx, make(), 2);
    assert_ne!(params(&mut second), params(&mut first));
    second.load_state(&path).unwrap();
    assert_eq!(second.report().steps, n);
    assert_eq!(second.position(), (0, 20));
    second.train_steps(&data, m, |_| {}).unwrap();
    assert_eq!(second.position(), (1, 7));
    assert_eq!(params(&mut second), p1, "{name}: resumed parameters differ");
    assert_eq!(second.report().steps, n + m);
    assert_eq!(
        second.optimizer().state_counters(),
        first.optimizer().state_counters()
    );
}

#[test]
fn resuming_sgd_with_momentum_is_bit_identical() {
    resume_is_bit_identical(|| Box::new(Sgd::new(0.05, 0.9)), "sgd.state");
}

#[test]
fn resuming_adam_is_bit_identical() {
    resume_is_bit_identical(|| Box::new(Adam::new(2e-3)), "adam.state");
}

#[test]
fn fit_resumed_mid_epoch_ends_where_an_uninterrupted_fit_ends() {
    let data = common::digits_split().0;
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let mut whole = trainer(&ctx, Box::new(Adam::new(2e-3)), 2);
    let full = whole.fit(&data, None, |_| {}).unwrap();
    let mut part = trainer(&ctx, Box::new(Adam::new(2e-3)), 2);
    part.train_steps(&data, 30, |_| {}).unwrap();
    let path = state_file("fit.state");
    part.save_state(&path).unwrap();
    let mut rest = trainer(&ctx, Box::new(Adam::new(2e-3)), 2);
    rest.load_state(&path).unwrap();
    let report = rest.fit(&data, None, |_| {}).unwrap();
    assert_eq!(report.steps, full.steps);
    assert_eq!(report.samples_seen, full.samples_seen);
    assert_eq!(params(&mut rest), params(&mut whole));
}

#[test]
fn a_lost_device_is_a_typed_error_and_the_run_resumes_on_a_new_device() {
    let data = common::digits_split().0;
    // Reference: 12 steps without interruption, on the shared device.
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let mut reference = trainer(&ctx, Box::new(Adam::new(2e-3)), 1);
    reference.train_steps(&data, 12, |_| {}).unwrap();
    let expected = params(&mut reference);

    // A device of its own, lost after 8 steps and a save.
    let doomed = Context::new(common::fresh_gpu_backend(), MemoryConfig::default()).unwrap();
    let mut run = trainer(&doomed, Box::new(Adam::new(2e-3)), 1);
    run.train_steps(&data, 8, |_| {}).unwrap();
    let path = state_file("lost.state");
    run.save_state(&path).unwrap();
    doomed.backend().device().destroy();
    let err = run.train_steps(&data, 1, |_| {}).unwrap_err();
    assert!(matches!(err, Error::DeviceLost { .. }), "{err:?}");
    assert!(err.to_string().contains("resume from saved state"), "{err}");
    assert_eq!(run.report().steps, 8, "no step counted after the loss");
    drop(run);

    // A new backend, a fresh trainer, the saved state: the last 4 steps.
    let backend = Arc::new(WgpuBackend::new().unwrap());
    let ctx = Context::new(backend, MemoryConfig::default()).unwrap();
    let mut resumed = trainer(&ctx, Box::new(Adam::new(2e-3)), 1);
    resumed.load_state(&path).unwrap();
    resumed.train_steps(&data, 4, |_| {}).unwrap();
    assert_eq!(params(&mut resumed), expected);
}

#[test]
fn a_state_that_does_not_fit_or_is_corrupt_is_a_typed_error_and_changes_nothing() {
    let data = common::digits_split().0;
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let mut t = trainer(&ctx, Box::new(Sgd::new(0.05, 0.9)), 1);
    t.train_steps(&data, 2, |_| {}).unwrap();
    let path = state_file("fit-check.state");
    t.save_state(&path).unwrap();

    // Another model width.
    let mut wide = Trainer::new(
        Arc::clone(&ctx),
        model(&ctx, 48),
        Box::new(Sgd::new(0.05, 0.9)),
        TrainerConfig::default(),
    )
    .unwrap();
    let before = params(&mut wide);
    assert!(matches!(wide.load_state(&path), Err(Error::Shape { .. })));
    assert_eq!(params(&mut wide), before);
    assert_eq!(wide.report().steps, 0);

    // Another optimizer kind: Adam cannot take SGD's state.
    let mut adam = trainer(&ctx, Box::new(Adam::new(1e-3)), 1);
    let before = params(&mut adam);
    assert!(matches!(
        adam.load_state(&path),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(params(&mut adam), before);

    // A truncated and a flipped file.
    let bytes = std::fs::read(&path).unwrap();
    let cut = state_file("cut.state");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = t.load_state(&cut).unwrap_err();
    assert!(matches!(e, Error::StateFile { .. }), "{e}");
    assert!(e.to_string().contains("cut.state"), "{e}");
    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 1;
    std::fs::write(&cut, &flipped).unwrap();
    assert!(matches!(t.load_state(&cut), Err(Error::StateFile { .. })));
    std::fs::write(&cut, b"not a state file").unwrap();
    assert!(matches!(t.load_state(&cut), Err(Error::StateFile { .. })));
    // A missing file is named, with what the OS said.
    let e = t.load_state(state_file("missing.state")).unwrap_err();
    assert!(
        matches!(&e, Error::File { op: "read", source, .. }
            if source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert!(e.to_string().contains("missing.state"), "{e}");
    // The decoded state is the one saved.
    let s = TrainerState::load(&path).unwrap();
    assert_eq!((s.steps, s.epoch, s.batch_in_epoch, s.seed), (2, 0, 2, 11));
    assert_eq!(s.arrays.len(), 4 + 4, "4 parameters and their velocities");
}
