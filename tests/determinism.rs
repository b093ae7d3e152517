//! Training is deterministic: the same run gives bit-identical losses, alone or with other
//! trainings running concurrently on the same shared backend (their batches interleave in one
//! command stream; a buffer released by one must never be reused or invalidated while another's
//! recorded work still needs it). Also checks that no wgpu validation error was raised.
mod common;
use std::sync::Arc;
use wgmem::nn::{Linear, Sequential};
use wgmem::optim::Sgd;
use wgmem::{Context, MemoryConfig, Trainer, TrainerConfig};

fn run(own: bool) -> Vec<f64> {
    let (train, _) = common::digits_split();
    let backend = if own {
        common::fresh_gpu_backend()
    } else {
        common::gpu_backend()
    };
    let ctx = Context::new(backend, MemoryConfig::default()).unwrap();
    let model = Sequential::new()
        .with(Linear::new(&ctx, 64, 128, 1).unwrap().with_relu())
        .with(Linear::new(&ctx, 128, 128, 2).unwrap().with_relu())
        .with(Linear::new(&ctx, 128, 10, 3).unwrap());
    let mut t = Trainer::new(
        Arc::clone(&ctx),
        model,
        Box::new(Sgd::new(0.05, 0.9)),
        TrainerConfig {
            epochs: 2,
            batch_size: 64,
            ..Default::default()
        },
    )
    .unwrap();
    let mut losses = vec![];
    t.fit(&train, None, |s| losses.push(s.loss as f64)).unwrap();
    losses
}

#[test]
fn same_losses_run_after_run() {
    let a = run(true);
    let b = run(true);
    let first = a.iter().zip(&b).position(|(x, y)| x != y);
    assert_eq!(
        first,
        None,
        "first difference at step {first:?}: {:?} vs {:?}",
        first.map(|i| a[i]),
        first.map(|i| b[i])
    );
}

#[test]
fn same_losses_with_concurrent_runs_on_one_backend() {
    let h: Vec<_> = (0..3).map(|_| std::thread::spawn(|| run(false))).collect();
    let r: Vec<Vec<f64>> = h.into_iter().map(|h| h.join().unwrap()).collect();
    for other in &r[1..] {
        let first = r[0].iter().zip(other).position(|(x, y)| x != y);
        assert_eq!(first, None, "first difference at step {first:?}");
    }
    assert_eq!(
        common::gpu_backend().uncaptured_errors(),
        0,
        "wgpu reported validation errors"
    );
}
