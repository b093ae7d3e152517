//! Data-parallel training without MPI (lavapipe in CI): ranks are threads of this process,
//! joined by [`ThreadWorld`], an in-process [`Collective`] with the same shapes as MPI's, so
//! the trainer's sharding, bucketing and ZeRO-1 logic run for real on every `cargo test`.
//! The MPI transport itself is checked by `examples/mpi_check.rs` under `mpirun`.
//!
//! Covered: the thread world's collectives on odd lengths; ZeRO-1 in one process equals Adam
//! bit for bit; 2- and 3-rank training (with and without ZeRO-1, large and tiny buckets)
//! equals a one-process run on the whole batch within [`TOLERANCE`]; a rank that fails makes
//! every rank stop; a rank under memory pressure shrinks alone and the ranks stay equal; an
//! exchange that fails midway leaves its staging unmapped and back in the pool; the exchange
//! overlapped with the backward pass gives the same sums as the one after it, bit for bit
//! (micro-batches, checkpointing, tiny buckets). The f16 wire: `tests/grad_compress.rs`.

mod common;
#[path = "common/thread_world.rs"]
mod thread_world;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use thread_world::ThreadWorld;
use wgmem::data::Dataset;
use wgmem::distributed::{Collective, Local, Shards};
use wgmem::nn::{Linear, Module, Sequential};
use wgmem::optim::{Adam, Sgd};
use wgmem::train::TrainingReport;
use wgmem::{Context, Error, MemoryConfig, Trainer, TrainerConfig};

/// Largest parameter difference between a data-parallel run and the one-process run after
/// [`STEPS`] Adam steps at learning rate 1e-2: gradients are summed in another order, so the
/// runs agree to rounding, not bit for bit.
const TOLERANCE: f32 = 1e-5;
const STEPS: usize = 4;
const BATCH: usize = 61;

fn model(ctx: &Arc<Context>, seed: u64) -> Sequential {
    Sequential::new()
        .with(Linear::new(ctx, 64, 33, seed + 1).unwrap().with_relu())
        .with(Linear::new(ctx, 33, 10, seed + 2).unwrap())
}

fn parameters(trainer: &mut Trainer) -> Vec<f32> {
    let mut all = Vec::new();
    for p in trainer.model().parameters() {
        all.extend(p.value.to_vec().unwrap());
    }
    all
}

fn config(zero1: bool, bucket_bytes: u64) -> TrainerConfig {
    TrainerConfig {
        batch_size: BATCH,
        zero1,
        bucket_bytes,
        ..TrainerConfig::default()
    }
}

/// [`STEPS`] steps on the first batches of a fixed order; returns the parameters and losses.
fn train(
    trainer: &mut Trainer,
    data: &Dataset,
    mut before_step: impl FnMut(usize, &Trainer),
) -> (Vec<f32>, Vec<f32>) {
    let order = data.epoch_order(7);
    let mut losses = Vec::new();
    for (i, chunk) in order.chunks(BATCH).take(STEPS).enumerate() {
        before_step(i, trainer);
        losses.push(trainer.train_step(&data.subset(chunk).unwrap()).unwrap().0);
    }
    (parameters(trainer), losses)
}

fn single_process(data: &Dataset, zero1: bool) -> (Vec<f32>, Vec<f32>) {
    single_process_with_buckets(data, zero1, 0)
}

fn single_process_with_buckets(
    data: &Dataset,
    zero1: bool,
    bucket_bytes: u64,
) -> (Vec<f32>, Vec<f32>) {
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let mut trainer = Trainer::new(
        Arc::clone(&ctx),
        model(&ctx, 0),
        Box::new(Adam::new(1e-2)),
        config(zero1, bucket_bytes),
    )
    .unwrap();
    train(&mut trainer, data, |_, _| {})
}

/// Runs `world` ranks as threads, each on a GPU device of its own; rank `r` starts from seed
/// `100 r` (the broadcast must make them equal). Returns every rank's (params, losses).
fn data_parallel(
    world: usize,
    zero1: bool,
    bucket_bytes: u64,
    pressured_rank: Option<usize>,
) -> Vec<RankResult> {
    data_parallel_with(world, config(zero1, bucket_bytes), move |step, rank| {
        step == 1 && pressured_rank == Some(rank)
    })
}

/// [`data_parallel`] with any trainer config; `pressured(step, rank)` says where to signal
/// memory pressure (which halves the micro-batch) before a step.
fn data_parallel_with(
    world: usize,
    config: TrainerConfig,
    pressured: impl Fn(usize, usize) -> bool + Clone + Send + 'static,
) -> Vec<RankResult> {
    let data = Arc::new(common::digits());
    let handles: Vec<_> = ThreadWorld::new(world)
        .into_iter()
        .map(|c| {
            let data = Arc::clone(&data);
            let (config, pressured) = (config.clone(), pressured.clone());
            std::thread::spawn(move || {
                let ctx =
                    Context::new(common::fresh_gpu_backend(), MemoryConfig::default()).unwrap();
                let rank = c.rank();
                let mut trainer = Trainer::new(
                    Arc::clone(&ctx),
                    model(&ctx, 100 * rank as u64),
                    Box::new(Adam::new(1e-2)),
                    config,
                )
                .unwrap()
                .with_collective(Box::new(c))
                .unwrap();
                let (p, l) = train(&mut trainer, &data, |step, t| {
                    if pressured(step, rank) {
                        t.pressure_flag().store(true, Ordering::SeqCst);
                    }
                });
                // The exchange maps and unmaps staging every step: a wrong order would be a
                // wgpu validation error (and lost work); its staging goes back to the pool.
                assert_eq!(ctx.backend().uncaptured_errors(), 0, "rank {rank}");
                let stats = ctx.memory().stats();
                assert_eq!(
                    stats.live_for_tag(wgmem::distributed::COMM),
                    0,
                    "rank {rank}"
                );
                assert!(
                    stats.peak_for_tag(wgmem::distributed::COMM) > 0,
                    "rank {rank}"
                );
                RankResult {
                    params: p,
                    losses: l,
                    report: trainer.report().clone(),
                    hidden_seconds: trainer.data_parallel().unwrap().hidden_seconds(),
                    micro_batch: trainer.micro_batch(),
                    optimizer_bytes: trainer.optimizer_state_bytes(),
                }
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// What a rank thread hands back (a `Trainer` holds its collective and stays in its thread).
struct RankResult {
    params: Vec<f32>,
    /// Gradient exchange done from the backward pass's hooks.
    hidden_seconds: f64,
    losses: Vec<f32>,
    report: TrainingReport,
    micro_batch: usize,
    optimizer_bytes: u64,
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn thread_world_collectives_match_local_sums_on_odd_lengths() {
    let world = 3;
    let n = 10;
    let handles: Vec<_> = ThreadWorld::new(world)
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let r = c.rank();
                let mine: Vec<f32> = (0..n).map(|i| (i * 10 + r) as f32).collect();
                let shards = Shards::blocks(n, world);
                let mut send = mine.clone();
                send.resize(shards.padded_len(), 0.0);
                let mut block = vec![0.0; shards.padded_len() / world];
                c.reduce_scatter(&send, &mut block).unwrap();
                let mut whole = vec![0.0; shards.padded_len()];
                c.all_gather(&block, &mut whole).unwrap();
                whole.truncate(n);
                whole
            })
        })
        .collect();
    let expected: Vec<f32> = (0..n).map(|i| (i * 30 + 3) as f32).collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
}

#[test]
fn zero1_in_one_process_equals_adam_bit_for_bit() {
    let data = common::digits();
    let (adam, adam_losses) = single_process(&data, false);
    let (zero, zero_losses) = single_process(&data, true);
    assert_eq!(adam, zero);
    assert_eq!(adam_losses, zero_losses);
    // In chunks of 250 values, each with moments of its own.
    let (chunked, _) = single_process_with_buckets(&data, true, 1000);
    assert_eq!(adam, chunked);
}

#[test]
fn zero1_needs_adam() {
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let err = Trainer::new(
        Arc::clone(&ctx),
        model(&ctx, 0),
        Box::new(Sgd::new(0.1, 0.0)),
        config(true, 0),
    )
    .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument { what: "zero1", .. }));
}

fn assert_equals_single_process(world: usize, zero1: bool, bucket_bytes: u64) {
    let (reference, ref_losses) = single_process(&common::digits(), false);
    let ranks = data_parallel(world, zero1, bucket_bytes, None);
    // The shards add up to the batches.
    let rows: u64 = ranks.iter().map(|r| r.report.local_samples).sum();
    assert_eq!(rows, (STEPS * BATCH) as u64);
    for (rank, r) in ranks.into_iter().enumerate() {
        let diff = max_diff(&r.params, &reference);
        eprintln!(
            "world {world}, zero1 {zero1}, bucket {bucket_bytes}: rank {rank} max diff {diff:e}"
        );
        assert!(
            diff <= TOLERANCE,
            "rank {rank}: parameters differ by {diff:e}"
        );
        assert!(max_diff(&r.losses, &ref_losses) <= 1e-4);
        assert_eq!(r.report.steps, STEPS as u64);
        assert_eq!(r.report.samples_seen, STEPS * BATCH);
    }
}

#[test]
fn two_ranks_equal_one_process_on_the_whole_batch() {
    assert_equals_single_process(2, false, 32 << 20);
}

#[test]
fn three_ranks_with_tiny_buckets_equal_one_process() {
    assert_equals_single_process(3, false, 1000);
}

#[test]
fn zero1_over_two_ranks_equals_one_process() {
    assert_equals_single_process(2, true, 32 << 20);
}

#[test]
fn zero1_over_three_ranks_with_tiny_buckets_equals_one_process() {
    assert_equals_single_process(3, true, 1000);
}

#[test]
fn zero1_shards_optimizer_memory_by_the_world_size() {
    let ranks = data_parallel(2, true, 32 << 20, None);
    let params: u64 = ranks[0].params.len() as u64 * 4;
    for r in &ranks {
        let bytes = r.optimizer_bytes;
        // Two moments of half the parameters (rounded up to the pool's size class).
        assert!(bytes >= params, "{bytes} < {params}");
        assert!(bytes as f64 <= 1.10 * params as f64, "{bytes} vs {params}");
    }
}

#[test]
fn pressure_on_one_rank_shrinks_only_its_micro_batch_and_ranks_stay_equal() {
    let ranks = data_parallel(2, false, 32 << 20, Some(1));
    let (r0, r1) = (&ranks[0], &ranks[1]);
    assert_eq!(
        r0.params, r1.params,
        "the ranks must hold the same parameters"
    );
    assert!(r0.report.adaptations.is_empty());
    assert_eq!(r1.report.adaptations.len(), 1);
    assert_eq!(r0.report.peer_adaptations, 1);
    assert!(r1.micro_batch < r0.micro_batch);
}

#[test]
fn local_collective_changes_nothing() {
    let data = common::digits();
    let (reference, _) = single_process(&data, false);
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let mut trainer = Trainer::new(
        Arc::clone(&ctx),
        model(&ctx, 0),
        Box::new(Adam::new(1e-2)),
        config(false, 0),
    )
    .unwrap()
    .with_collective(Box::new(Local))
    .unwrap();
    let (params, _) = train(&mut trainer, &data, |_, _| {});
    assert_eq!(params, reference);
}

#[test]
fn a_rank_that_fails_makes_every_rank_stop_at_the_same_step() {
    let data = Arc::new(common::digits());
    let handles: Vec<_> = ThreadWorld::new(2)
        .into_iter()
        .map(|c| {
            let data = Arc::clone(&data);
            std::thread::spawn(move || {
                let ctx =
                    Context::new(common::fresh_gpu_backend(), MemoryConfig::default()).unwrap();
                let rank = c.rank();
                let mut trainer = Trainer::new(
                    Arc::clone(&ctx),
                    model(&ctx, 0),
                    Box::new(Adam::new(1e-2)),
                    config(false, 0),
                )
                .unwrap()
                .with_collective(Box::new(c))
                .unwrap();
                let order = data.epoch_order(7);
                let mut outcomes = Vec::new();
                for (step, chunk) in order.chunks(BATCH).take(3).enumerate() {
                    if step == 1 && rank == 1 {
                        // Nothing more fits: even a micro-batch of one row runs out of memory.
                        let live = ctx.memory().stats().live_bytes;
                        ctx.memory().set_hard_limit(Some(live + 1)).unwrap();
                    }
                    match trainer.train_step(&data.subset(chunk).unwrap()) {
                        Ok(_) => outcomes.push("ok".to_string()),
                        Err(e) => {
                            outcomes.push(match e {
                                Error::OutOfMemory(_) => "oom".into(),
                                Error::Collective { .. } => "peer failed".into(),
                                other => other.to_string(),
                            });
                            break;
                        }
                    }
                }
                outcomes
            })
        })
        .collect();
    let outcomes: Vec<Vec<String>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(outcomes[0], ["ok", "peer failed"]);
    assert_eq!(outcomes[1], ["ok", "oom"]);
}

/// One process, whose all-reduce fails from its `fail_from`-th call on (a transport error).
struct FailingWorld {
    calls: std::cell::Cell<usize>,
    fail_from: usize,
}

impl Collective for FailingWorld {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        2
    }
    fn all_reduce(&self, _data: &mut [f32]) -> wgmem::Result<()> {
        self.calls.set(self.calls.get() + 1);
        if self.calls.get() >= self.fail_from {
            return Err(Error::Collective {
                op: "all_reduce",
                reason: "injected".into(),
            });
        }
        Ok(())
    }
    fn all_reduce_u64(&self, _data: &mut [u64]) -> wgmem::Result<()> {
        Ok(())
    }
    fn broadcast(&self, _data: &mut [f32], _root: usize) -> wgmem::Result<()> {
        Ok(())
    }
    fn reduce_scatter(&self, send: &[f32], recv: &mut [f32]) -> wgmem::Result<()> {
        recv.copy_from_slice(&send[..recv.len()]);
        Ok(())
    }
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> wgmem::Result<()> {
        recv[..send.len()].copy_from_slice(send);
        Ok(())
    }
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> wgmem::Result<()> {
        recv[..send.len()].copy_from_slice(send);
        Ok(())
    }
    fn barrier(&self) -> wgmem::Result<()> {
        Ok(())
    }
}

#[test]
fn an_exchange_that_fails_midway_leaves_no_mapped_staging_behind() {
    use wgmem::distributed::{COMM, DataParallel};
    // Its own device, so the count of uncaptured errors is this test's alone.
    let ctx = Context::new(common::fresh_gpu_backend(), MemoryConfig::default()).unwrap();
    let mut m = model(&ctx, 7);
    let fill = |m: &mut Sequential| {
        for (i, p) in m.parameters().into_iter().enumerate() {
            wgmem::compute::fill(ctx.gpu(), p.grad.raw(), p.grad.len(), i as f32 + 0.5).unwrap();
        }
    };
    fill(&mut m);
    // 1000-byte buckets: many buckets, so the failure comes with maps pending and granted.
    for fail_from in [1, 2, 3, 5] {
        let world = FailingWorld {
            calls: Default::default(),
            fail_from,
        };
        let mut dp = DataParallel::new(Box::new(world), 1000);
        let err = dp.all_reduce_gradients(&ctx, &m.parameters()).unwrap_err();
        assert!(matches!(err, Error::Collective { .. }), "{err}");
    }
    assert_eq!(ctx.memory().stats().live_for_tag(COMM), 0);
    // The staging went back to the pool unmapped: the next exchange reuses it.
    let hits = ctx.memory().stats().pool_hits;
    fill(&mut m);
    let mut dp = DataParallel::new(Box::new(Local), 1000);
    dp.all_reduce_gradients(&ctx, &m.parameters()).unwrap();
    assert!(
        ctx.memory().stats().pool_hits > hits,
        "staging reused from the pool"
    );
    for (i, p) in m.parameters().into_iter().enumerate() {
        let g = p.grad.to_vec().unwrap();
        assert!(g.iter().all(|&v| v == i as f32 + 0.5), "parameter {i}");
    }
    wgmem::Backend::wait_idle(&**ctx.backend()).unwrap();
    assert_eq!(ctx.backend().uncaptured_errors(), 0);
}

/// Bit patterns, so that `assert_eq!` compares floats bit for bit (NaN included).
fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn overlapped_exchange_equals_the_exchange_after_backward_bit_for_bit() {
    use wgmem::checkpoint::CheckpointPolicy;
    // (world, bucket bytes, checkpointing): 1000-byte buckets cut through parameters and
    // layers; every-layer checkpointing runs the hooks between recomputed segments.
    for (world, bucket, checkpoint) in [
        (2, 1000, CheckpointPolicy::None),
        (3, 1000, CheckpointPolicy::EveryK(1)),
        (3, 32 << 20, CheckpointPolicy::None),
    ] {
        let run = |overlap: bool| {
            let config = TrainerConfig {
                overlap,
                checkpoint,
                ..config(false, bucket)
            };
            // Pressure before every step halves every rank's micro-batch (30, 15, 7, 3 rows):
            // several micro-batches per step, and only the last one's backward may send.
            data_parallel_with(world, config, |_, _| true)
        };
        let (with, without) = (run(true), run(false));
        for (rank, (a, b)) in with.iter().zip(&without).enumerate() {
            assert!(
                a.micro_batch < BATCH / world,
                "micro-batches were accumulated"
            );
            assert_eq!(
                bits(&a.params),
                bits(&b.params),
                "world {world} rank {rank}"
            );
            assert_eq!(bits(&a.losses), bits(&b.losses));
            assert!(
                a.hidden_seconds > 0.0,
                "the overlapped run exchanged from its hooks"
            );
            assert_eq!(b.hidden_seconds, 0.0, "the other did not");
        }
    }
}

#[test]
fn a_rank_whose_step_failed_still_takes_part_in_every_bucket_of_an_open_exchange() {
    use wgmem::distributed::{COMM, DataParallel};
    // Rank 0 sends buckets from its backward hooks and finishes; rank 1's step failed before
    // its backward: it finishes with `ok == false` and reduces zeros, host only. Neither hangs,
    // and rank 0 ends with its own gradients (plus rank 1's zeros), exactly.
    let handles: Vec<_> = ThreadWorld::new(2)
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let ctx =
                    Context::new(common::fresh_gpu_backend(), MemoryConfig::default()).unwrap();
                let rank = c.rank();
                let mut m = model(&ctx, 5);
                for (i, p) in m.parameters().into_iter().enumerate() {
                    let v = (i + 1) as f32 * 0.25;
                    wgmem::compute::fill(ctx.gpu(), p.grad.raw(), p.grad.len(), v).unwrap();
                }
                let layer_values: Vec<usize> = m
                    .layers_mut()
                    .iter_mut()
                    .map(|l| l.parameters().iter().map(|p| p.grad.len()).sum())
                    .collect();
                let grads = m
                    .parameters()
                    .iter()
                    .map(|p| (p.grad.raw().clone(), p.grad.len()))
                    .collect();
                let mut dp = DataParallel::new(Box::new(c), 1000);
                dp.begin_exchange(&ctx, grads, &layer_values).unwrap();
                if rank == 0 {
                    dp.backward_done(&ctx, 1).unwrap();
                    assert!(dp.exchange_started());
                    dp.backward_done(&ctx, 0).unwrap();
                }
                assert!(dp.finish_exchange(&ctx, rank == 0).unwrap());
                assert!(!dp.exchange_started());
                let grads: Vec<Vec<f32>> = m
                    .parameters()
                    .iter()
                    .map(|p| p.grad.to_vec().unwrap())
                    .collect();
                assert_eq!(ctx.memory().stats().live_for_tag(COMM), 0);
                assert_eq!(ctx.backend().uncaptured_errors(), 0);
                grads
            })
        })
        .collect();
    let grads: Vec<Vec<Vec<f32>>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, g) in grads[0].iter().enumerate() {
        let v = (i + 1) as f32 * 0.25;
        assert!(g.iter().all(|&x| x == v), "rank 0, parameter {i}");
    }
}
