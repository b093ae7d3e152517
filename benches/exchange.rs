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
//!   with the share of it spent inside MPI; `pipelined f16` the same with the f16 wire
//!   (`GradCompression::F16`: packed on the GPU, half the bytes through MPI);
//! - the host leg's stages on their own, one bucket at a time over all the gradients, no MPI:
//!   `read from a mapping` (memcpy out of a mapped `MAP_READ` buffer), `write into a mapping`
//!   (memcpy into a mapped `MAP_WRITE` buffer), `host reduce` (the sum of two host vectors,
//!   what a two-rank all-reduce computes), and `MPI all-reduce f16` (the user-defined half
//!   sum over host memory): the ceilings the pipelined rows are held to.
//!
//! Every rank checks the pipelined sum against the sum it expects (each rank's gradient is
//! its rank + 1), so a fast wrong answer cannot pass.

use mpi::collective::SystemOperation;
use mpi::traits::{Communicator, CommunicatorCollectives};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use wgmem::distributed::{DataParallel, GradCompression, Mpi};
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
        let half_host: Vec<u16> = host
            .iter()
            .map(|&v| half::f16::from_f32(v).to_bits())
            .collect();
        let mut half_recv = vec![0u16; bucket];
        let mut times = Vec::new();
        for _ in 0..reps {
            world.barrier();
            let t = Instant::now();
            for chunk in half_host.chunks(bucket) {
                wgmem::distributed::Collective::all_reduce_f16(
                    &*mpi,
                    chunk,
                    &mut half_recv[..chunk.len()],
                )?;
            }
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
        row(
            &label,
            "MPI all-reduce f16, host memory only",
            median(times),
            None,
        );

        if mpi_only {
            continue;
        }

        host_leg(&ctx, &host, bucket, reps, &label, &row)?;

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

        // The pipeline, f32 then the f16 wire (sums of small integers are exact in f16).
        for compression in [GradCompression::None, GradCompression::F16] {
            let mut dp = DataParallel::new(Box::new(Rc::clone(&mpi)), (bucket * 4) as u64)
                .with_compression(compression);
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
            let stage = match compression {
                GradCompression::None => "pipelined (DataParallel)",
                _ => "pipelined f16 (DataParallel, --grad-compress f16)",
            };
            row(&label, stage, median(times), Some(median(mpi_times)));
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
    }
    Ok(())
}

/// Prints one table row: bucket, stage, milliseconds, and of them in MPI.
type Row<'a> = dyn Fn(&str, &str, f64, Option<f64>) + 'a;

/// The host leg's stages alone over every gradient value, `bucket` values at a time: memcpy
/// out of a mapped readback buffer, memcpy into a mapped upload buffer, and the sum of two
/// host vectors (no MPI).
fn host_leg(
    ctx: &Context,
    host: &[f32],
    bucket: usize,
    reps: usize,
    label: &str,
    row: &Row<'_>,
) -> wgmem::Result<()> {
    let device = ctx.backend().device();
    let bytes = (bucket * 4) as u64;
    let make = |usage| {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("host leg"),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    };
    let down = make(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
    let up = make(wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC);
    let map = |buffer: &wgpu::Buffer, mode| -> wgmem::Result<()> {
        buffer.slice(..).map_async(mode, |_| {});
        device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| wgmem::Error::Map(e.to_string()))?;
        Ok(())
    };
    let (mut read, mut write, mut reduce) = (Vec::new(), Vec::new(), Vec::new());
    let mut out = vec![0f32; bucket];
    for _ in 0..reps {
        let (mut r, mut w, mut s) = (0.0, 0.0, 0.0);
        for chunk in host.chunks(bucket) {
            let n = (chunk.len() * 4) as u64;
            map(&down, wgpu::MapMode::Read)?;
            {
                let view = down
                    .slice(..n)
                    .get_mapped_range()
                    .map_err(|e| wgmem::Error::Map(e.to_string()))?;
                let t = Instant::now();
                bytemuck::cast_slice_mut(&mut out[..chunk.len()]).copy_from_slice(&view);
                r += t.elapsed().as_secs_f64();
            }
            down.unmap();
            map(&up, wgpu::MapMode::Write)?;
            {
                let mut view = up
                    .slice(..n)
                    .get_mapped_range_mut()
                    .map_err(|e| wgmem::Error::Map(e.to_string()))?;
                let t = Instant::now();
                view.copy_from_slice(bytemuck::cast_slice(chunk));
                w += t.elapsed().as_secs_f64();
            }
            up.unmap();
            let t = Instant::now();
            for (o, v) in out.iter_mut().zip(chunk) {
                *o += *v;
            }
            s += t.elapsed().as_secs_f64();
            std::hint::black_box(&out);
        }
        read.push(r * 1e3);
        write.push(w * 1e3);
        reduce.push(s * 1e3);
    }
    row(label, "read from a mapping (memcpy)", median(read), None);
    row(label, "write into a mapping (memcpy)", median(write), None);
    row(label, "host reduce (a += b)", median(reduce), None);
    Ok(())
}
