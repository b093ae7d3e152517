//! The main job: train an MLP classifier on the GPU, adapting to memory.
//!
//! By default it trains on the embedded UCI handwritten digits (1,797 8x8 images, CC BY 4.0,
//! see data/README.md) and reports test accuracy, time per epoch and what memory did.
//!
//! ```sh
//! cargo run --release --example train
//! cargo run --release --example train -- --memory-limit 2M --checkpoint sqrt --epochs 5
//! cargo run --release --example train -- --precision mixed
//! ```
//!
//! Built with `--features mpi` and started by `mpirun -n N`, the same command trains data
//! parallel over N processes (one GPU each where there are several); `--batch-size` is the
//! global batch, `--zero1` shards Adam's moments, and rank 0 prints one report with every
//! rank's memory and its compute / communication time:
//!
//! ```sh
//! cargo build --release --features mpi --example train
//! mpirun -n 2 target/release/examples/train --epochs 5 --zero1
//! # a step benchmark: 784-4096x8-10 on synthetic data, batch 1024 per rank
//! mpirun -n 2 target/release/examples/train --synthetic 16384 --hidden 4096 --layers 8 \
//!     --batch-size 2048 --epochs 2
//! ```

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Read;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;
use wgmem::MemoryProfiler;
use wgmem::backend::parse_bytes;
use wgmem::checkpoint::CheckpointPolicy;
use wgmem::data::Dataset;
use wgmem::distributed::Collective;
use wgmem::memory::human_bytes;
use wgmem::nn::{Linear, Sequential};
use wgmem::optim::{Adam, Optimizer, Sgd};
use wgmem::pressure::{PressureLevel, PressureMonitor, SimulatedSource};
use wgmem::{Backend, Context, MemoryConfig, Trainer, TrainerConfig, WgpuBackend};

const DIGITS: &[u8] = include_bytes!("../data/digits.csv.gz");

#[derive(Parser, Debug)]
#[command(about = "Train an MLP on the GPU with memory-managed buffers")]
struct Args {
    /// CSV file (features, then the integer label, on each line); default: the embedded digits.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Width of the hidden layers.
    #[arg(long, default_value_t = 128)]
    hidden: usize,
    /// Number of hidden layers.
    #[arg(long, default_value_t = 2)]
    layers: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// sgd or adam.
    #[arg(long, default_value = "adam")]
    optimizer: String,
    /// none, sqrt, every:K or budget:BYTES.
    #[arg(long, default_value = "none")]
    checkpoint: String,
    /// Hard limit on GPU memory held by the run, e.g. 4M or 1G.
    #[arg(long)]
    memory_limit: Option<String>,
    /// Drive a scripted sequence of critical-pressure signals through the run.
    #[arg(long)]
    simulate_pressure: bool,
    /// Write a memory profile (Chrome trace JSON) here.
    #[arg(long)]
    profile: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Data parallel (under mpirun): shard Adam's moments over the ranks (ZeRO-1).
    #[arg(long)]
    zero1: bool,
    /// Data parallel: megabytes of gradients per all-reduce bucket.
    #[arg(long, default_value_t = 8)]
    bucket_mb: u64,
    /// f32, or mixed (f16 activations and working weights, f32 master weights and Adam state,
    /// dynamic loss scaling; needs SHADER_F16).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// Data parallel: what gradients travel as: none (f32), f16, or f16-ef (f16 with error
    /// feedback).
    #[arg(long, default_value = "none")]
    grad_compress: String,
    /// Data parallel: run the gradient exchange after the backward pass instead of
    /// overlapping it with the backward pass.
    #[arg(long)]
    no_overlap: bool,
    /// Instead of the digits, this many random samples of 784 features and 10 classes (for
    /// timing; nothing to learn).
    #[arg(long)]
    synthetic: Option<usize>,
}

fn load(args: &Args) -> wgmem::Result<Dataset> {
    if let Some(rows) = args.synthetic {
        if rows == 0 {
            return Err(wgmem::Error::InvalidArgument {
                what: "--synthetic",
                reason: "0 samples; give the number of random samples to train on, at least 1 \
                         (10 or more so every one of the 10 classes appears)"
                    .into(),
            });
        }
        return Dataset::synthetic(rows, 784, 10, args.seed);
    }
    match &args.data {
        Some(path) => Dataset::from_csv_file(path),
        None => {
            let mut text = String::new();
            flate2::read::GzDecoder::new(DIGITS).read_to_string(&mut text)?;
            Dataset::from_csv(&text)
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // MPI when started by mpirun (and built with --features mpi); one process otherwise.
    let collective: Rc<dyn Collective> = match wgmem::distributed::from_env() {
        Ok(c) => Rc::from(c),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = run(Args::parse(), &collective) {
        eprintln!("error: {e}");
        // The other ranks may be waiting for this one in a collective: end them all.
        collective.abort(1);
    }
}

fn run(args: Args, collective: &Rc<dyn Collective>) -> wgmem::Result<()> {
    let started = Instant::now();
    let (rank, world) = (collective.rank(), collective.world_size());
    // Only rank 0 talks.
    macro_rules! say {
        ($($t:tt)*) => { if rank == 0 { println!($($t)*); } };
    }
    let mut data = load(&args)?;
    data.normalize();
    let (train, test) = data.split(0.2, args.seed)?;
    let backend = Arc::new(WgpuBackend::new()?);
    if world > 1 {
        println!("rank {rank}/{world}: adapter {}", backend.adapter());
    } else {
        println!("adapter: {}", backend.adapter());
    }
    let limit = args.memory_limit.as_deref().map(parse_bytes).transpose()?;
    let config = MemoryConfig {
        hard_limit: limit,
        ..MemoryConfig::default()
    };
    let ctx = Context::new(backend, config)?;
    let profiler = args
        .profile
        .as_ref()
        .map(|_| Arc::new(MemoryProfiler::full()));
    if let Some(p) = &profiler {
        ctx.memory().set_profiler(Some(Arc::clone(p)));
        let timed = ctx.gpu().set_profiler(Some(Arc::clone(p)))?;
        println!(
            "profiling memory{}",
            if timed {
                " and kernel times"
            } else {
                " (no GPU timestamps on this adapter)"
            }
        );
    }

    let mut model = Sequential::new();
    let mut width = data.n_features();
    for i in 0..args.layers {
        model.push(Linear::new(&ctx, width, args.hidden, args.seed + i as u64)?.with_relu());
        width = args.hidden;
    }
    model.push(Linear::new(
        &ctx,
        width,
        data.n_classes(),
        args.seed + 1000,
    )?);
    let optimizer: Box<dyn Optimizer> = match args.optimizer.as_str() {
        "adam" => Box::new(Adam::new(args.lr)),
        "sgd" => Box::new(Sgd::new(args.lr, 0.9)),
        other => {
            return Err(wgmem::Error::InvalidArgument {
                what: "optimizer",
                reason: format!("'{other}'; use sgd or adam"),
            });
        }
    };
    let checkpoint: CheckpointPolicy = args.checkpoint.parse()?;
    say!(
        "data: {} train / {} test samples, {} features, {} classes; model: {}",
        train.len(),
        test.len(),
        data.n_features(),
        data.n_classes(),
        wgmem::nn::Module::name(&model)
    );
    let config = TrainerConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        checkpoint,
        zero1: args.zero1,
        bucket_bytes: args.bucket_mb.max(1) << 20,
        precision: args.precision.parse()?,
        overlap: !args.no_overlap,
        grad_compression: args.grad_compress.parse()?,
        ..TrainerConfig::default()
    };
    let mut trainer = Trainer::new(Arc::clone(&ctx), model, optimizer, config)?;
    if world > 1 {
        trainer = trainer.with_collective(Box::new(Rc::clone(collective)))?;
        say!(
            "data parallel over {world} ranks: {} samples per rank per step{}, gradients as {}, {}",
            args.batch_size.div_ceil(world),
            if args.zero1 { ", ZeRO-1" } else { "" },
            args.grad_compress,
            if args.no_overlap {
                "exchanged after the backward pass"
            } else {
                "exchange overlapped with the backward pass"
            }
        );
    }
    if let Some(limit) = limit {
        let fitted = trainer.fit_to_budget(&train, limit)?;
        say!("memory limit {}: micro-batch {fitted}", human_bytes(limit));
    }

    let steps_per_epoch = train.len().div_ceil(args.batch_size) as u64;
    let bar = if rank == 0 {
        ProgressBar::new(steps_per_epoch * args.epochs as u64)
    } else {
        ProgressBar::hidden()
    };
    let (mut step_seconds, mut step_comm, mut step_wait, mut timed_steps) =
        (0f64, 0f64, 0f64, 0u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} epoch {prefix} {msg}")
            .expect("a valid template"),
    );
    // Pressure: the manager's own budget source, the process footprint, and with
    // --simulate-pressure a scripted source; the manager evicts in grades and the trainer
    // shrinks its batch on critical.
    let mut monitor = PressureMonitor::new();
    monitor.add_source(ctx.memory().budget_source(limit));
    // The whole process footprint against the OS's limit (iOS, a cgroup) or the device budget
    // (not --memory-limit, which caps wgmem's bytes only): growth that is not wgmem's own.
    monitor.add_source(ctx.memory().footprint_source(None));
    let simulated = SimulatedSource::new("simulated");
    let script = simulated.handle();
    if args.simulate_pressure {
        monitor.add_source(simulated);
    }
    monitor.add_responder(Arc::new(ctx.memory().clone()));
    monitor.add_responder(trainer.pressure_responder());
    let report = trainer.fit(&train, Some(&test), |s| {
        if args.simulate_pressure {
            match s.step % 60 {
                10 => script.set(PressureLevel::Warning),
                20 => script.set(PressureLevel::Critical),
                30 => script.set(PressureLevel::Normal),
                _ => {}
            }
        }
        if let Some(change) = monitor.poll() {
            bar.println(format!("step {}: {change}", s.step));
        }
        // The first step of the run warms the pools and pipelines: not timed.
        if s.step > 1 {
            step_seconds += s.seconds;
            step_comm += s.comm_seconds;
            step_wait += s.wait_seconds;
            timed_steps += 1;
        }
        bar.set_prefix(s.epoch.to_string());
        bar.set_message(format!(
            "loss {:.4} acc {:5.1}% step {:5.1} ms live {} peak {} micro {}",
            s.loss,
            s.accuracy * 100.0,
            s.seconds * 1e3,
            human_bytes(s.live_bytes),
            human_bytes(s.peak_live_bytes),
            s.micro_batch
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();

    say!("{report}");
    let epoch_seconds: f64 =
        report.epochs.iter().map(|e| e.seconds).sum::<f64>() / report.epochs.len().max(1) as f64;
    say!(
        "time per epoch: {:.3} s; total {:.2} s",
        epoch_seconds,
        started.elapsed().as_secs_f64()
    );
    if timed_steps > 0 {
        let per = |x: f64| x / timed_steps as f64 * 1e3;
        let step = step_seconds / timed_steps as f64;
        say!(
            "step (after the first): {:.2} ms = compute {:.2} ms + gradient exchange {:.2} ms \
             ({:.0}%) + waiting for other ranks {:.2} ms; {:.0} samples/s in all, {:.0} per rank",
            step * 1e3,
            per(step_seconds - step_comm - step_wait),
            per(step_comm),
            100.0 * step_comm / step_seconds.max(1e-12),
            per(step_wait),
            args.batch_size as f64 / step,
            args.batch_size as f64 / step / world as f64
        );
    }
    if let Some(dp) = trainer.data_parallel().filter(|_| world > 1) {
        let steps = report.steps.max(1) as f64;
        say!(
            "gradient exchange on rank 0: {} per step sent to collectives, {:.2} GB/s \
             (GPU-host copies and collectives together); {:.2} ms per step of it inside the \
             collectives",
            human_bytes(dp.comm_bytes() / report.steps.max(1)),
            dp.comm_bytes() as f64 / dp.comm_seconds().max(1e-12) / 1e9,
            dp.collective_seconds() / steps * 1e3
        );
        say!(
            "gradient exchange per step on rank 0: {:.2} ms hidden behind the backward pass \
             (done while the GPU had layers queued; an upper bound), {:.2} ms exposed (the step \
             waited for it after the backward pass)",
            dp.hidden_seconds() / steps * 1e3,
            dp.exposed_seconds() / steps * 1e3
        );
    }
    match report.final_test_accuracy() {
        Some(acc) => say!("test accuracy: {:.2}%", acc * 100.0),
        None => say!("test accuracy: not measured"),
    }
    if let (Some(path), Some(p)) = (&args.profile, &profiler) {
        // Data parallel: one profile per rank (`trace.rank1.json`).
        let path = &if world > 1 {
            let stem = path.file_stem().unwrap_or_default().to_string_lossy();
            let ext = path
                .extension()
                .map(|e| format!(".{}", e.to_string_lossy()))
                .unwrap_or_default();
            path.with_file_name(format!("{stem}.rank{rank}{ext}"))
        } else {
            path.clone()
        };
        ctx.gpu().collect_kernel_times()?;
        println!("\nmemory by source:\n{}", p.by_source());
        println!("memory by tag:\n{}", p.by_tag());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let files = p.write_all(path)?;
        println!(
            "wrote {}, {}, {}",
            files.trace.display(),
            files.timeline.display(),
            files.classes.display()
        );
    }
    Ok(())
}
