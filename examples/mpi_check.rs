//! Checks the MPI collectives and data-parallel training; run under `mpirun -n 2` (or more).
//!
//! ```sh
//! cargo build --release --features mpi --example mpi_check
//! mpirun -n 2 target/release/examples/mpi_check
//! ```
//!
//! 1. Collectives on odd lengths (1, 7, 1000, 4099 values), against sums computed locally:
//!    all-reduce, reduce-scatter and all-gather through the padded block layout
//!    ([`Shards::blocks`]), broadcast from the last rank, the `u64` variants, a barrier.
//! 2. Training: a few Adam steps on the digits with an uneven batch (61 rows), data parallel
//!    over all ranks, with and without ZeRO-1; every rank compares its parameters with a
//!    one-process run of the same steps on the whole batch (trained here, on the same GPU)
//!    within [`TOLERANCE`]: the sums of the gradients are taken in a different order, so
//!    they agree to rounding, not bit for bit.
//!
//! 3. The exchange overlapped with the backward pass equals the one after it bit for bit;
//!    the f16 wire (with and without error feedback) stays within [`F16_TOLERANCE`] of the
//!    one-process run, and the f16 sum itself is exact on values f16 holds exactly.
//!
//! Rank 0 prints `N passed, M failed`; the process exits with status 1 when any check failed
//! on any rank.

use std::io::Read;
use std::rc::Rc;
use std::sync::Arc;
use wgmem::data::Dataset;
use wgmem::distributed::{Collective, GradCompression, Local, Mpi, Shards};
use wgmem::nn::{Linear, Module, Sequential};
use wgmem::optim::Adam;
use wgmem::{Context, MemoryConfig, Trainer, TrainerConfig, WgpuBackend};

const DIGITS: &[u8] = include_bytes!("../data/digits.csv.gz");

/// Largest difference allowed between a parameter of the data-parallel run and of the
/// one-process run, after [`STEPS`] Adam steps at learning rate 1e-2 (each step moves a
/// parameter by at most about 1e-2, so this is rounding, not a different update).
const TOLERANCE: f32 = 1e-5;
/// The same over an f16 wire: a gradient component below f16's range (6e-8) is flushed, and
/// Adam turns even such a component into an update of up to half its learning rate, so a
/// parameter may differ by up to `lr / 2` a step; elsewhere the relative rounding of 2^-11
/// moves updates by far less.
const F16_TOLERANCE: f32 = STEPS as f32 * 0.5e-2;
const STEPS: usize = 5;
const BATCH: usize = 61;

struct Checks {
    passed: u64,
    failed: u64,
    rank: usize,
}

impl Checks {
    fn check(&mut self, name: &str, ok: bool, detail: impl std::fmt::Display) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            eprintln!("rank {}: FAILED {name}: {detail}", self.rank);
        }
    }
}

/// Rank `r`'s test values: distinct per rank and position, exact in f32 sums.
fn values(rank: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + rank * 13) % 101) as f32 - 50.0 + rank as f32 * 0.5)
        .collect()
}

fn collectives(c: &dyn Collective, checks: &mut Checks) -> wgmem::Result<()> {
    let (rank, world) = (c.rank(), c.world_size());
    for n in [1usize, 7, 1000, 4099] {
        let expected: Vec<f32> = (0..n)
            .map(|i| (0..world).map(|r| values(r, n)[i]).sum())
            .collect();
        // all-reduce
        let mut x = values(rank, n);
        c.all_reduce(&mut x)?;
        checks.check(&format!("all_reduce n={n}"), x == expected, "sum differs");
        // reduce-scatter over the padded block layout
        let shards = Shards::blocks(n, world);
        let mut send = values(rank, n);
        send.resize(shards.padded_len(), 0.0);
        let mut recv = vec![0.0; shards.padded_len() / world];
        c.reduce_scatter(&send, &mut recv)?;
        let own = shards.range(rank);
        let ok = recv[..own.len()] == expected[own.clone()]
            && recv[own.len()..].iter().all(|&v| v == 0.0);
        checks.check(&format!("reduce_scatter n={n}"), ok, "block differs");
        // all-gather the reduced blocks back into the whole vector
        let mut whole = vec![0.0; shards.padded_len()];
        c.all_gather(&recv, &mut whole)?;
        checks.check(
            &format!("all_gather n={n}"),
            whole[..n] == expected[..],
            "gathered vector differs",
        );
        // broadcast from the last rank
        let mut b = values(rank, n);
        c.broadcast(&mut b, world - 1)?;
        checks.check(
            &format!("broadcast n={n}"),
            b == values(world - 1, n),
            "not the root's values",
        );
    }
    let mut u = vec![rank as u64 + 1, 1 << 40];
    c.all_reduce_u64(&mut u)?;
    let sum = (world * (world + 1) / 2) as u64;
    checks.check(
        "all_reduce_u64",
        u == [sum, world as u64 * (1 << 40)],
        format!("{u:?}"),
    );
    let mut g = vec![0u64; world];
    c.all_gather_u64(&[rank as u64 * 3], &mut g)?;
    checks.check(
        "all_gather_u64",
        g == (0..world as u64).map(|r| r * 3).collect::<Vec<_>>(),
        format!("{g:?}"),
    );
    checks.check(
        "all_gather rejects a wrong length",
        c.all_gather(&[1.0], &mut vec![0.0; world + 1]).is_err(),
        "accepted",
    );
    // The f16 sum (MPI's user-defined operation): integers and halves below 2^10 are exact.
    for n in [1usize, 7, 4099] {
        let bits = |v: &[f32]| -> Vec<u16> {
            v.iter()
                .map(|&x| half::f16::from_f32(x).to_bits())
                .collect()
        };
        let expected: Vec<f32> = (0..n)
            .map(|i| (0..world).map(|r| values(r, n)[i]).sum())
            .collect();
        let mut recv = vec![0u16; n];
        c.all_reduce_f16(&bits(&values(rank, n)), &mut recv)?;
        checks.check(
            &format!("all_reduce_f16 n={n}"),
            recv == bits(&expected),
            "sum differs",
        );
    }
    c.barrier()?;
    Ok(())
}

/// The model, initialised from `seed` (rank-dependent in the data-parallel runs: the
/// broadcast from rank 0 must make the ranks equal).
fn model(ctx: &Arc<Context>, seed: u64) -> wgmem::Result<Sequential> {
    Ok(Sequential::new()
        .with(Linear::new(ctx, 64, 33, seed + 1)?.with_relu())
        .with(Linear::new(ctx, 33, 10, seed + 2)?))
}

fn parameters(trainer: &mut Trainer) -> wgmem::Result<Vec<f32>> {
    let mut all = Vec::new();
    for p in trainer.model().parameters() {
        all.extend(p.value.to_vec()?);
    }
    Ok(all)
}

fn train(
    ctx: &Arc<Context>,
    data: &Dataset,
    collective: Box<dyn Collective>,
    zero1: bool,
    bucket_bytes: u64,
    wire: (bool, GradCompression),
) -> wgmem::Result<(Vec<f32>, Vec<f32>)> {
    let config = TrainerConfig {
        batch_size: BATCH,
        zero1,
        bucket_bytes,
        overlap: wire.0,
        grad_compression: wire.1,
        ..TrainerConfig::default()
    };
    let seed = 100 * collective.rank() as u64;
    let mut trainer = Trainer::new(
        Arc::clone(ctx),
        model(ctx, seed)?,
        Box::new(Adam::new(1e-2)),
        config,
    )?
    .with_collective(collective)?;
    let order = data.epoch_order(7);
    let mut losses = Vec::new();
    for chunk in order.chunks(BATCH).take(STEPS) {
        losses.push(trainer.train_step(&data.subset(chunk)?)?.0);
    }
    Ok((parameters(&mut trainer)?, losses))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn main() {
    // Shared by the runs below (MPI initializes once per process).
    let mpi = Rc::new(Mpi::init().expect("MPI initializes"));
    let mut checks = Checks {
        passed: 0,
        failed: 0,
        rank: mpi.rank(),
    };
    if let Err(e) = run(&mpi, &mut checks) {
        checks.check("run", false, e);
    }
    let mut totals = [checks.passed, checks.failed];
    mpi.all_reduce_u64(&mut totals).expect("the totals reduce");
    if mpi.rank() == 0 {
        println!(
            "{} ranks: {} passed, {} failed",
            mpi.world_size(),
            totals[0],
            totals[1]
        );
    }
    drop(mpi);
    std::process::exit(i32::from(totals[1] > 0));
}

fn run(mpi: &Rc<Mpi>, checks: &mut Checks) -> wgmem::Result<()> {
    collectives(&**mpi, checks)?;

    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS).read_to_string(&mut text)?;
    let mut data = Dataset::from_csv(&text)?;
    data.normalize();
    let ctx = Context::new(Arc::new(WgpuBackend::new()?), MemoryConfig::default())?;
    let plain = (true, GradCompression::None);
    let (reference, ref_losses) = train(&ctx, &data, Box::new(Local), false, 0, plain)?;
    for (name, zero1, bucket) in [
        ("data parallel, 32 MiB buckets", false, 32 << 20),
        ("data parallel, 1000-byte buckets", false, 1000),
        ("ZeRO-1, 32 MiB buckets", true, 32 << 20),
        ("ZeRO-1, 1000-byte buckets", true, 1000),
    ] {
        let (params, losses) = train(&ctx, &data, Box::new(Rc::clone(mpi)), zero1, bucket, plain)?;
        let diff = max_diff(&params, &reference);
        checks.check(
            name,
            params.len() == reference.len() && diff <= TOLERANCE,
            format!("max parameter difference {diff:e} (tolerance {TOLERANCE:e})"),
        );
        let loss_diff = max_diff(&losses, &ref_losses);
        checks.check(
            &format!("{name}: losses"),
            loss_diff <= 1e-4,
            format!("max loss difference {loss_diff:e}"),
        );
        if mpi.rank() == 0 {
            println!(
                "{name}: max parameter difference {diff:.2e}, loss difference {loss_diff:.2e}"
            );
        }
    }
    // The exchange overlapped with the backward pass sums exactly what the one after it does.
    let mine = |wire| train(&ctx, &data, Box::new(Rc::clone(mpi)), false, 1000, wire);
    let (overlapped, _) = mine(plain)?;
    let (after, _) = mine((false, GradCompression::None))?;
    let same = overlapped
        .iter()
        .map(|v| v.to_bits())
        .eq(after.iter().map(|v| v.to_bits()));
    checks.check(
        "overlapped exchange equals the exchange after the backward pass, bit for bit",
        same,
        format!("max difference {:e}", max_diff(&overlapped, &after)),
    );
    // The f16 wire: within F16_TOLERANCE of the one-process run.
    for compression in [GradCompression::F16, GradCompression::F16ErrorFeedback] {
        let (params, losses) = mine((true, compression))?;
        let (diff, loss_diff) = (
            max_diff(&params, &reference),
            max_diff(&losses, &ref_losses),
        );
        checks.check(
            &format!("{compression:?} wire, 1000-byte buckets"),
            diff <= F16_TOLERANCE && loss_diff <= 1e-2,
            format!("max parameter difference {diff:e} (tolerance {F16_TOLERANCE:e}), loss {loss_diff:e}"),
        );
        if mpi.rank() == 0 {
            println!(
                "{compression:?} wire: max parameter difference {diff:.2e}, loss difference {loss_diff:.2e}"
            );
        }
    }
    let errors = ctx.backend().uncaptured_errors();
    checks.check(
        "no wgpu validation errors",
        errors == 0,
        format!("{errors} uncaptured wgpu errors"),
    );
    let comm_live = ctx.memory().stats().live_for_tag(wgmem::distributed::COMM);
    checks.check(
        "exchange staging returned to the pool",
        comm_live == 0,
        format!("{comm_live} bytes still live under the comm tag"),
    );
    Ok(())
}
