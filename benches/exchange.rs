//! The gradient exchange of data-parallel training, stage by stage. Run under MPI, one
//! process per GPU (`mpirun -n 2 ./exchange`; see BENCHMARKS.md for the device command), or
//! with `--small` here on lavapipe (figures labeled as such). `--hidden N --layers N` resize
//! the model, `--buckets 2,8,32` picks bucket sizes in MiB, `--mpi-only` skips the GPU stages.
//!
//! For the parameters of the MLP of DESIGN.md (784-4096x8-10, 120.7 M values, 460.5 MiB),
//! medians over the timed repetitions, rank 0's clock:
//! - `MPI all-reduce`: host memory only, bucket after bucket: the collective's own ceiling;
//! - `GPU->host read`: `Backend::read` of every gradient (one staging chunk at a time);
//! - `sequential`: the plain way, per bucket of each tensor: read it, all-reduce in place,
//!   write it back (the reference);
//! - `pipelined`: `DataParallel::all_reduce_gradients` (mapped staging, copies in flight),
//!   with the share of it spent inside MPI.
//!
//! Every rank checks the pipelined sum against the sum it expects (each rank's gradient is
//! its rank + 1), so a fast wrong answer cannot pass.

use mpi::collective::SystemOperation;
use mpi::traits::{Communicator, CommunicatorCollectives};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use wgmem::distributed::{DataParallel, Mpi};
use wgmem::nn::{Linear, Module, Sequential};
use wgmem::{Backend, Context, MemoryConfig, WgpuBackend};

fn mlp(ctx: &Arc<Context>, inputs: usize, hidden: usize, layers: usize) -> Sequential {
    let mut m = Sequential::new();
    let mut w = inputs;
    for i in 0..layers {
        m.push(Linear::new(ctx, w, hidden, i as u64).unwrap().with_relu());
        w = hidden;
    }
    m.push(Linear::new(ctx, w, 10, 99).unwrap());
    m
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> wgmem::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let small = args.iter().any(|a| a == "--small");
    let flag = |name: &str, default: usize| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1)?.parse().ok())
            .unwrap_or(default)
    };
    // `--buckets 2,8,32` (MiB) picks the bucket sizes; `--mpi-only` skips the GPU stages.
    let buckets: Vec<usize> = args
        .iter()
        .position(|a| a == "--buckets")
        .and_then(|i| args.get(i + 1))
        .map(|list| list.split(',').filter_map(|v| v.parse().ok()).collect())
        .unwrap_or_else(|| vec![8, 32, 128]);
    let mpi_only = args.iter().any(|a| a == "--mpi-only");
    let (hidden, layers, reps) = if small {
        (flag("--hidden", 256), flag("--layers", 2), 3)
    } else {
        (flag("--hidden", 4096), flag("--layers", 8), 7)
    };
    let mpi = Rc::new(Mpi::init()?);
    let world = mpi::topology::SimpleCommunicator::world();
    let (rank, size) = (world.rank(), world.size());
    let ctx = Context::new(Arc::new(WgpuBackend::new()?), MemoryConfig::default())?;
    let mut model = mlp(&ctx, 784, hidden, layers);
    let total: usize = model.parameters().iter().map(|p| p.grad.len()).sum();
    let fill = |model: &mut Sequential| -> wgmem::Result<()> {
        for p in model.parameters() {
            wgmem::compute::fill(ctx.gpu(), p.grad.raw(), p.grad.len(), (rank + 1) as f32)?;
        }
        ctx.backend().wait_idle()
    };
    let expected = (size * (size + 1) / 2) as f32;
    if rank == 0 {
        println!(
            "{} | {size} ranks | {total} values ({:.1} MiB){}",
            ctx.backend().adapter(),
            (total * 4) as f64 / (1 << 20) as f64,
            if small {
                " | --small: lavapipe-sized"
            } else {
                ""
            }
        );
        println!("| bucket | stage | median ms | GB/s per rank | of which MPI ms |");
        println!("|---|---|---|---|---|");
    }
    let gbs = |ms: f64| (total * 4) as f64 / (ms * 1e6);
    let row = |bucket: &str, stage: &str, ms: f64, mpi_ms: Option<f64>| {
        if rank == 0 {
            let m = mpi_ms.map_or("-".into(), |v| format!("{v:.1}"));
            println!("| {bucket} | {stage} | {ms:.1} | {:.2} | {m} |", gbs(ms));
        }
    };

    // GPU -> host read of every gradient, no MPI.
    let mut host = vec![0f32; total];
    let mut times = Vec::new();
    for _ in 0..if mpi_only { 0 } else { reps } {
        fill(&mut model)?;
        let t = Instant::now();
        let mut at = 0;
        for p in model.parameters() {
            let n = p.grad.len();
            ctx.backend().read(
                p.grad.raw(),
                0,
                bytemuck::cast_slice_mut(&mut host[at..at + n]),
            )?;
            at += n;
        }
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    if !mpi_only {
        row("-", "GPU->host read (Backend::read)", median(times), None);
    }

    for bucket_mib in buckets {
        let bucket = bucket_mib << 18;
        let label = format!("{bucket_mib} MiB");
        // MPI alone, host memory.
        let mut recv = vec![0f32; bucket];
        let mut times = Vec::new();
        for _ in 0..reps {
            world.barrier();
            let t = Instant::now();
            for chunk in host.chunks(bucket) {
                world.all_reduce_into(chunk, &mut recv[..chunk.len()], SystemOperation::sum());
            }
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        row(
            &label,
            "MPI all-reduce, host memory only",
            median(times),
            None,
        );
        if mpi_only {
            continue;
        }

        // Sequential reference: read, reduce in place, write, bucket by bucket per tensor.
        let mut times = Vec::new();
        for _ in 0..reps {
            fill(&mut model)?;
            world.barrier();
            let t = Instant::now();
            for p in model.parameters() {
                let n = p.grad.len();
                for start in (0..n).step_by(bucket) {
                    let len = bucket.min(n - start);
                    let part = &mut recv[..len];
                    let off = (start * 4) as u64;
                    ctx.backend()
                        .read(p.grad.raw(), off, bytemuck::cast_slice_mut(part))?;
                    world.all_reduce_into(&part.to_vec()[..], part, SystemOperation::sum());
                    ctx.backend()
                        .write(p.grad.raw(), off, bytemuck::cast_slice(part))?;
                }
            }
            ctx.backend().wait_idle()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        row(
            &label,
            "sequential read / all-reduce / write",
            median(times),
            None,
        );

        // The pipeline.
        let mut dp = DataParallel::new(Box::new(Rc::clone(&mpi)), (bucket * 4) as u64);
        let (mut times, mut mpi_times) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            fill(&mut model)?;
            world.barrier();
            let before = dp.collective_seconds();
            let t = Instant::now();
            dp.all_reduce_gradients(&ctx, &model.parameters())?;
            ctx.backend().wait_idle()?;
            times.push(t.elapsed().as_secs_f64() * 1e3);
            mpi_times.push((dp.collective_seconds() - before) * 1e3);
        }
        row(
            &label,
            "pipelined (DataParallel)",
            median(times),
            Some(median(mpi_times)),
        );
        let mut wrong = 0usize;
        for p in model.parameters() {
            let mut v = vec![0f32; p.grad.len()];
            ctx.backend()
                .read(p.grad.raw(), 0, bytemuck::cast_slice_mut(&mut v))?;
            wrong += v.iter().filter(|&&x| x != expected).count();
        }
        if wrong > 0 {
            eprintln!("rank {rank}: {wrong} of {total} reduced values are not {expected}");
            std::process::exit(1);
        }
    }
    Ok(())
}
