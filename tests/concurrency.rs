//! Concurrency: threads sharing one MemoryManager (over a fault-injecting host backend, with a
//! hard limit and a pressure thread), and threads each training their own Context on the one
//! shared GPU backend (lavapipe in CI). Nothing is lost: every buffer a thread holds keeps
//! what the thread wrote (no buffer is handed out twice), every failure is typed, the account
//! is exact when the threads are done, nothing leaks, and concurrent training reaches the
//! same parameters as training alone.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use wgmem::data::Dataset;
use wgmem::memory::MemoryManager;
use wgmem::nn::{Linear, Module, Sequential};
use wgmem::optim::Sgd;
use wgmem::pressure::PressureLevel;
use wgmem::testing::FaultyBackend;
use wgmem::{BufferUsage, Context, Error, HostBackend, MemoryConfig, Trainer, TrainerConfig};

const THREADS: usize = 8;
const OPS: usize = 3000;

#[test]
fn threads_sharing_a_manager_under_faults_lose_nothing_and_keep_the_account_exact() {
    let backend = Arc::new(FaultyBackend::new(HostBackend::new(), 99));
    backend.set_allocation_failure_rate(0.05);
    backend.set_write_failure_rate(0.02);
    let manager = MemoryManager::with_config(
        Arc::clone(&backend),
        MemoryConfig::default().with_hard_limit(4 << 20),
    )
    .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let typed_errors = Arc::new(AtomicU64::new(0));
    // A pressure thread: Warning and Critical responses run while the others allocate.
    let pressure = {
        let (m, done) = (manager.clone(), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !done.load(Ordering::SeqCst) {
                let level = [PressureLevel::Warning, PressureLevel::Critical][(i % 2) as usize];
                m.respond_to_pressure(level);
                i += 1;
                std::thread::yield_now();
            }
            i
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (m, errors) = (manager.clone(), Arc::clone(&typed_errors));
            std::thread::spawn(move || {
                let mut rng = common::Rng::new(t as u64);
                let mut held: Vec<(wgmem::ManagedBuffer<_>, Option<u8>)> = Vec::new();
                let typed = |e: Error| {
                    assert!(
                        matches!(e, Error::OutOfMemory(_) | Error::Transfer { .. }),
                        "thread {t}: {e}"
                    );
                    errors.fetch_add(1, Ordering::Relaxed);
                };
                for i in 0..OPS {
                    match rng.next_u64() % 4 {
                        0 | 1 => {
                            let size = 4 + rng.next_u64() % (128 << 10);
                            match m.acquire(size, BufferUsage::Storage, "worker") {
                                Ok(b) => held.push((b, None)),
                                Err(e) => typed(e),
                            }
                        }
                        2 if !held.is_empty() => {
                            let k = (rng.next_u64() as usize) % held.len();
                            held.swap_remove(k);
                        }
                        _ if !held.is_empty() => {
                            let k = (rng.next_u64() as usize) % held.len();
                            let (b, mark) = &mut held[k];
                            let byte = (t * 31 + i) as u8;
                            let len = (b.requested() / 4 * 4) as usize;
                            if let Some(expected) = *mark {
                                let mut out = vec![0u8; len];
                                b.read(0, &mut out).unwrap();
                                assert!(
                                    out.iter().all(|&x| x == expected),
                                    "thread {t}: a held buffer was changed by someone else"
                                );
                            }
                            *mark = None;
                            match b.write(0, &vec![byte; len]) {
                                Ok(()) => *mark = Some(byte),
                                Err(e) => typed(e),
                            }
                        }
                        _ => {}
                    }
                }
                held.iter().map(|(b, _)| b.size()).sum::<u64>()
            })
        })
        .collect();
    // Each worker returns (after dropping its buffers) what it held at the end.
    let held_at_end: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    done.store(true, Ordering::SeqCst);
    let pressure_responses = pressure.join().unwrap();
    let s = manager.stats();
    eprintln!(
        "{THREADS} threads x {OPS} operations: {} typed errors, faults {:?}, {pressure_responses} \
         pressure responses; {} bytes held when the threads finished, all returned; stats: {s}",
        typed_errors.load(Ordering::Relaxed),
        backend.faults(),
        held_at_end
    );
    assert_eq!(s.live_bytes, 0);
    assert_eq!(s.requested_live_bytes, 0);
    assert_eq!(s.cached_bytes, backend.allocated_bytes());
    assert!(s.peak_reserved_bytes <= 4 << 20, "the hard limit held");
    assert!(backend.faults().allocations > 0);
    manager.clear_cache();
    assert_eq!(backend.allocated_bytes(), 0);
    assert_eq!(backend.live_buffers(), 0);
}

/// Trains `steps` steps with shuffle seed `seed` on a context of its own; returns the
/// parameters' bits and the context's live bytes before and after.
fn train(data: &Dataset, seed: u64, steps: u64) -> (Vec<Vec<u32>>, u64, u64) {
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let model = Sequential::new()
        .with(Linear::new(&ctx, 64, 32, 1).unwrap().with_relu())
        .with(Linear::new(&ctx, 32, 10, 2).unwrap());
    let config = TrainerConfig {
        batch_size: 64,
        seed,
        ..TrainerConfig::default()
    };
    let mut t = Trainer::new(
        Arc::clone(&ctx),
        model,
        Box::new(Sgd::new(0.05, 0.9)),
        config,
    )
    .unwrap();
    let before = ctx.memory().stats().live_bytes;
    t.train_steps(data, steps, |_| {}).unwrap();
    let after = ctx.memory().stats().live_bytes - t.optimizer().state_bytes();
    let params = t
        .model()
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
        .collect();
    drop(t);
    assert_eq!(ctx.memory().stats().live_bytes, 0);
    (params, before, after)
}

#[test]
fn threads_training_on_one_gpu_reach_the_same_parameters_as_alone() {
    let data = Arc::new(common::digits_split().0);
    let alone: Vec<_> = (0..3).map(|seed| train(&data, seed, 10)).collect();
    let together: Vec<_> = (0..3)
        .map(|seed| {
            let data = Arc::clone(&data);
            std::thread::spawn(move || train(&data, seed, 10))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    for (seed, (a, b)) in alone.iter().zip(&together).enumerate() {
        assert_eq!(
            a.0, b.0,
            "seed {seed}: concurrent training changed the result"
        );
        assert_eq!(
            b.1, b.2,
            "seed {seed}: live bytes back to parameters and gradients"
        );
    }
    assert_ne!(alone[0].0, alone[1].0, "the seeds give different runs");
}
