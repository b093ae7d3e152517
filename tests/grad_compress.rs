//! The f16 wire of the gradient exchange (`GradCompression`), on lavapipe: the pack and unpack
//! kernels against the `half` crate bit for bit (odd lengths, subnormals, ties, the range's
//! edges) and on bad input; sums over a thread world within the stated tolerance, in half the
//! bytes; error feedback carrying rounding to the next exchange; and training on the digits to
//! the accuracy of the f32 exchange.

mod common;
#[path = "common/thread_world.rs"]
mod thread_world;

use std::sync::Arc;
use thread_world::ThreadWorld;
use wgmem::distributed::Collective;
use wgmem::nn::{Linear, Module, Sequential};
use wgmem::optim::Adam;
use wgmem::{Context, Error, MemoryConfig, Trainer, TrainerConfig};

const BATCH: usize = 61;

fn model(ctx: &Arc<Context>, seed: u64) -> Sequential {
    Sequential::new()
        .with(Linear::new(ctx, 64, 33, seed + 1).unwrap().with_relu())
        .with(Linear::new(ctx, 33, 10, seed + 2).unwrap())
}

/// Bit patterns, so that `assert_eq!` compares floats bit for bit.
fn bits(values: &[f32]) -> Vec<u32> {
    values.iter().map(|v| v.to_bits()).collect()
}

/// A rank's f16 wire error bound for sums of `world` values `g_r`: each value rounded once to
/// f16 (relative 2^-11 with round to nearest, 2^-10 allowed for other rounding), and the sum
/// rounded to f16 at each of at most `world` additions; subnormals add 2^-24 absolute each.
fn f16_tolerance(world: usize, abs_sum: f64) -> f64 {
    (2 * world) as f64 * (2f64.powi(-10) * abs_sum + 2f64.powi(-24))
}

#[test]
fn pack_and_unpack_f16_round_to_nearest_even_on_odd_lengths() {
    let gpu = common::gpu();
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let mut rng = common::Rng::new(5);
    for n in [1usize, 2, 7, 1001] {
        let mut x: Vec<f32> = (0..n).map(|_| (rng.uniform() - 0.5) * 6.0).collect();
        // Subnormals in f16, ties to even, the range's edges, zeros.
        let edges = [
            1e-7,
            -3e-9,
            2f32.powi(-25),
            3.0 * 2f32.powi(-25),
            1e6,
            -65519.0,
            65520.0,
            f32::INFINITY,
            -0.0,
            1.0 + 2f32.powi(-11),
            1.0 + 3.0 * 2f32.powi(-11),
            6.1e-5,
        ];
        for (v, e) in x.iter_mut().zip(edges) {
            *v = e;
        }
        let wide = ctx.from_slice(&x, &[n], "test").unwrap();
        let narrow = ctx.zeros(&[wgmem::compute::f16_words(n)], "test").unwrap();
        let back = ctx.zeros(&[n], "test").unwrap();
        wgmem::compute::pack_f16(&gpu, wide.raw(), narrow.raw(), None, n).unwrap();
        wgmem::compute::unpack_f16(&gpu, narrow.raw(), back.raw(), n).unwrap();
        let got = back.to_vec().unwrap();
        for (i, (&g, &v)) in got.iter().zip(&x).enumerate() {
            // Round to nearest even, as the half crate (the reference) does; clamped.
            let reference = half::f16::from_f32(v.clamp(-65504.0, 65504.0)).to_f32();
            assert_eq!(
                g.to_bits(),
                reference.to_bits(),
                "n {n} value {i}: {v} came back as {g}, not {reference}"
            );
        }
        // The packed words are little-endian halves: value 2i in the low half.
        let words = ctx
            .read_u32(narrow.buffer(), wgmem::compute::f16_words(n))
            .unwrap();
        let low = half::f16::from_bits(words[0] as u16).to_f32();
        assert_eq!(low, got[0]);
    }
    // Bad input: a packed buffer far too small for the values (the pool rounds sizes up),
    // and the same buffer as source and destination.
    let wide = ctx.zeros(&[10_000], "test").unwrap();
    let narrow = ctx.zeros(&[4], "test").unwrap();
    assert!(matches!(
        wgmem::compute::pack_f16(&gpu, wide.raw(), narrow.raw(), None, 10_000),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        wgmem::compute::unpack_f16(&gpu, wide.raw(), wide.raw(), 100),
        Err(Error::SameBuffer)
    ));
    assert!("f8".parse::<wgmem::distributed::GradCompression>().is_err());
}

/// Each rank of `world` fills its gradients with its own random values and runs one f16
/// exchange; returns every rank's (gradients before, gradients after, bytes sent).
fn f16_exchange(
    world: usize,
    compression: wgmem::distributed::GradCompression,
    exchanges: usize,
) -> Vec<(Vec<f32>, Vec<f32>, u64)> {
    use wgmem::distributed::DataParallel;
    let handles: Vec<_> = ThreadWorld::new(world)
        .into_iter()
        .map(|c| {
            std::thread::spawn(move || {
                let ctx =
                    Context::new(common::fresh_gpu_backend(), MemoryConfig::default()).unwrap();
                let rank = c.rank();
                let mut m = model(&ctx, rank as u64);
                let mut rng = common::Rng::new(11 + rank as u64);
                let mut before = Vec::new();
                for p in m.parameters() {
                    let mut v: Vec<f32> = (0..p.grad.len())
                        .map(|_| (rng.uniform() - 0.5) * 0.02)
                        .collect();
                    v[0] = 3e-8 * (rank + 1) as f32; // below f16's normal range
                    p.grad.write(&v).unwrap();
                    before.extend(v);
                }
                // 1000-byte buckets: several, cutting through parameters.
                let mut dp = DataParallel::new(Box::new(c), 1000).with_compression(compression);
                let mut after = vec![0f32; before.len()];
                for _ in 0..exchanges {
                    // The same gradient every time (error feedback carries what rounding lost).
                    let mut at = 0;
                    for p in m.parameters() {
                        p.grad.write(&before[at..at + p.grad.len()]).unwrap();
                        at += p.grad.len();
                    }
                    dp.all_reduce_gradients(&ctx, &m.parameters()).unwrap();
                    let mut at = 0;
                    for p in m.parameters() {
                        for (a, g) in after[at..].iter_mut().zip(p.grad.to_vec().unwrap()) {
                            *a += g;
                        }
                        at += p.grad.len();
                    }
                }
                assert_eq!(ctx.backend().uncaptured_errors(), 0);
                (before, after, dp.comm_bytes())
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn f16_exchange_sums_within_the_stated_tolerance_in_half_the_bytes() {
    use wgmem::distributed::GradCompression;
    let world = 3;
    let ranks = f16_exchange(world, GradCompression::F16, 1);
    let f32_ranks = f16_exchange(world, GradCompression::None, 1);
    let n = ranks[0].0.len();
    let mut rounded = 0;
    for (rank, (_, after, bytes)) in ranks.iter().enumerate() {
        assert_eq!(*bytes, 2 * n as u64, "two bytes a value");
        assert_eq!(f32_ranks[rank].2, 4 * n as u64);
        for (i, &got) in after.iter().enumerate() {
            let exact: f64 = ranks.iter().map(|r| f64::from(r.0[i])).sum();
            let abs_sum: f64 = ranks.iter().map(|r| f64::from(r.0[i]).abs()).sum();
            let err = (f64::from(got) - exact).abs();
            assert!(
                err <= f16_tolerance(world, abs_sum),
                "rank {rank} value {i}: {got} vs {exact} (error {err:e})"
            );
            rounded += usize::from(got != f32_ranks[rank].1[i]);
        }
        // Every rank holds the same sums.
        assert_eq!(bits(after), bits(&ranks[0].1));
    }
    assert!(
        rounded > n,
        "the f16 wire rounds ({rounded} of {} values)",
        n * world
    );
}

#[test]
fn error_feedback_carries_rounding_to_the_next_exchange() {
    use wgmem::distributed::GradCompression;
    // Two exchanges of the same gradients: with feedback, the second sends what the first
    // lost, so their total is 2 x the gradient to one rounding; without, each loses it. One
    // rank, so that no rounding of the sum over ranks (which feedback does not cover) blurs it.
    let world = 1;
    let total_error = |compression| {
        let ranks = f16_exchange(world, compression, 2);
        let n = ranks[0].0.len();
        (0..n)
            .map(|i| {
                let exact: f64 = ranks.iter().map(|r| f64::from(r.0[i])).sum();
                (f64::from(ranks[0].1[i]) - 2.0 * exact).abs()
            })
            .sum::<f64>()
    };
    let (plain, feedback) = (
        total_error(GradCompression::F16),
        total_error(GradCompression::F16ErrorFeedback),
    );
    eprintln!("summed error over two exchanges: f16 {plain:e}, f16 with feedback {feedback:e}");
    assert!(feedback < 0.75 * plain, "{feedback:e} vs {plain:e}");
}

#[test]
fn f16_training_reaches_the_accuracy_of_f32_on_the_digits() {
    use wgmem::distributed::GradCompression;
    let accuracy = |compression: GradCompression| {
        let data = Arc::new(common::digits());
        let handles: Vec<_> = ThreadWorld::new(2)
            .into_iter()
            .map(|c| {
                let data = Arc::clone(&data);
                std::thread::spawn(move || {
                    let ctx =
                        Context::new(common::fresh_gpu_backend(), MemoryConfig::default()).unwrap();
                    let config = TrainerConfig {
                        batch_size: BATCH,
                        grad_compression: compression,
                        ..TrainerConfig::default()
                    };
                    let mut trainer = Trainer::new(
                        Arc::clone(&ctx),
                        model(&ctx, 3),
                        Box::new(Adam::new(1e-2)),
                        config,
                    )
                    .unwrap()
                    .with_collective(Box::new(c))
                    .unwrap();
                    for epoch in 0..3 {
                        for chunk in data.epoch_order(epoch).chunks(BATCH) {
                            trainer.train_step(&data.subset(chunk).unwrap()).unwrap();
                        }
                    }
                    trainer.evaluate(&*data).unwrap().1
                })
            })
            .collect();
        let acc: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(acc[0], acc[1], "ranks hold the same model");
        acc[0]
    };
    let (full, half_wire) = (
        accuracy(GradCompression::None),
        accuracy(GradCompression::F16ErrorFeedback),
    );
    eprintln!("digits accuracy after 3 epochs: f32 {full:.4}, f16 with feedback {half_wire:.4}");
    assert!(full > 0.9, "f32 run trains ({full})");
    assert!(
        (full - half_wire).abs() <= 0.02,
        "f32 {full} vs f16 {half_wire}"
    );
}
