//! Training-step time and memory: the MLP of DESIGN.md's targets, and gradient checkpointing
//! on a deep MLP. Prints tables; run on the device machine for the H200 figures (see
//! BENCHMARKS.md), or here on lavapipe with `--small` (figures labeled as such).
//!
//! - MLP: batch 1024, 784-4096x8-10, Adam, fp32; one step = upload of the batch, forward,
//!   loss, backward, Adam, and the loss read back. Median of the timed steps after warm-up.
//!   Also: create_buffer calls per steady-state step (target 0), pool waste (peak reserved /
//!   peak live, target <= 1.10) and the manager's share of the step (acquisitions x the
//!   measured hit latency).
//! - Checkpointing: 32 layers, hidden 2048, batch 512: activation peak (from the manager's
//!   account) and step time for none, sqrt(n) and budgets.
//!
//! `--kernels` prints the GPU time per kernel of the MLP step; `--mlp-only` stops after it. `--checks full` compiles the kernels with all of naga's runtime checks (default: without its
//! loop counters, as `Context::new`). `--precision mixed` runs every table in mixed precision, as the trainer's `Precision::Mixed`
//! step does: f16 inputs, working weights, activations and activation gradients; the loss
//! gradient scaled (fixed 2^16 here), the GPU overflow check over every gradient with its one
//! 4-byte read, and the fused unscale + Adam + f16-copy update.

use std::sync::Arc;
use std::time::Instant;
use wgmem::checkpoint::{CheckpointPolicy, GradientCheckpointer};
use wgmem::memory::human_bytes;
use wgmem::nn::{Linear, Module, Sequential, softmax_cross_entropy_scaled};
use wgmem::optim::{Adam, Optimizer};
use wgmem::tensor::tags;
use wgmem::{Backend, Context, DType, Gpu, KernelChecks, MemoryConfig, WgpuBackend};

/// The loss scale of the mixed step (the trainer's default initial scale).
const LOSS_SCALE: f32 = 65536.0;

/// A context with the kernel checks `--checks full|no-loop-bounding` asks for (default: what
/// `Context::new` uses, no-loop-bounding).
fn context(backend: &Arc<WgpuBackend>) -> Arc<Context> {
    let args: Vec<String> = std::env::args().collect();
    let checks = args
        .windows(2)
        .find(|w| w[0] == "--checks")
        .map(|w| {
            w[1].parse::<KernelChecks>()
                .expect("--checks full|no-loop-bounding")
        })
        .unwrap_or_default();
    let gpu = Gpu::with_checks(Arc::clone(backend), checks).unwrap();
    Context::with_gpu(gpu, MemoryConfig::default()).unwrap()
}

/// `--precision mixed` on the command line.
fn mixed() -> bool {
    static MIXED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *MIXED.get_or_init(|| {
        let args: Vec<String> = std::env::args().collect();
        args.windows(2)
            .any(|w| w[0] == "--precision" && w[1] == "mixed")
            || args.iter().any(|a| a == "--precision=mixed")
    })
}

struct Shape {
    batch: usize,
    inputs: usize,
    hidden: usize,
    layers: usize,
    classes: usize,
}

fn mlp(ctx: &Arc<Context>, s: &Shape) -> Sequential {
    let mut m = Sequential::new();
    let mut w = s.inputs;
    for i in 0..s.layers {
        m.push(Linear::new(ctx, w, s.hidden, i as u64).unwrap().with_relu());
        w = s.hidden;
    }
    m.push(Linear::new(ctx, w, s.classes, 99).unwrap());
    if mixed() {
        m.set_precision(DType::F16).unwrap();
    }
    m
}

fn data(s: &Shape) -> (Vec<f32>, Vec<u32>) {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let x = (0..s.batch * s.inputs).map(|_| next()).collect();
    let y = (0..s.batch).map(|i| (i % s.classes) as u32).collect();
    (x, y)
}

/// One full step; returns the loss.
fn step(
    ctx: &Arc<Context>,
    model: &mut Sequential,
    opt: &mut dyn Optimizer,
    ck: &mut GradientCheckpointer,
    x: &[f32],
    y: &[u32],
    s: &Shape,
) -> f32 {
    let dtype = if mixed() { DType::F16 } else { DType::F32 };
    let scale = if mixed() { LOSS_SCALE } else { 1.0 };
    let xt = Arc::new(
        ctx.from_slice_of(x, &[s.batch, s.inputs], dtype, tags::DATA)
            .unwrap(),
    );
    let labels = ctx.upload_u32(y, tags::DATA).unwrap();
    let out = ck
        .forward_backward(model, xt, |logits| {
            let out = softmax_cross_entropy_scaled(&logits, &labels, s.batch, scale)?;
            Ok((out.grad, out.loss))
        })
        .unwrap();
    if mixed() {
        let flag = ctx.upload_u32(&[0], tags::SCRATCH).unwrap();
        for p in model.parameters() {
            wgmem::compute::check_finite(ctx.gpu(), p.grad.raw(), p.grad.len(), flag.raw())
                .unwrap();
        }
        if ctx.read_u32(&flag, 1).unwrap()[0] == 0 {
            opt.step_mixed(model.parameters(), 1.0 / scale).unwrap();
        } else {
            model
                .parameters()
                .iter()
                .for_each(|p| p.zero_grad().unwrap());
        }
    } else {
        opt.step(model.parameters()).unwrap();
    }
    out.to_vec().unwrap()[0]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn hit_latency_ns(ctx: &Arc<Context>) -> f64 {
    let m = ctx.memory();
    drop(
        m.acquire(1 << 20, wgmem::BufferUsage::Storage, "probe")
            .unwrap(),
    );
    let t = Instant::now();
    for _ in 0..10_000 {
        drop(
            m.acquire(1 << 20, wgmem::BufferUsage::Storage, "probe")
                .unwrap(),
        );
    }
    t.elapsed().as_nanos() as f64 / 10_000.0
}

fn mlp_step(backend: &Arc<WgpuBackend>, s: &Shape, warmup: usize, timed: usize) {
    let ctx = context(backend);
    let mut model = mlp(&ctx, s);
    let mut opt = Adam::new(1e-4);
    let mut ck = GradientCheckpointer::new(CheckpointPolicy::None);
    let (x, y) = data(s);
    for _ in 0..warmup {
        step(&ctx, &mut model, &mut opt, &mut ck, &x, &y, s);
    }
    ctx.memory().reset_peaks();
    let created = backend.buffers_created();
    let allocs = ctx.memory().stats().allocations;
    let mut times = Vec::new();
    let mut loss = 0.0;
    for _ in 0..timed {
        let t = Instant::now();
        loss = step(&ctx, &mut model, &mut opt, &mut ck, &x, &y, s);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let stats = ctx.memory().stats();
    let per_step_allocs = (stats.allocations - allocs) as f64 / timed as f64;
    let ms = median(times);
    let hit = hit_latency_ns(&ctx);
    let flops = 3.0 * model.forward_flops(s.batch) as f64;
    println!(
        "| MLP {}-{}x{}-{} batch {} Adam{} | {:.2} ms | {:.1} TFLOP/s | {} | {:.3} | {:.0} x {:.0} ns = {:.3}% | loss {:.4} |",
        s.inputs,
        s.hidden,
        s.layers,
        s.classes,
        s.batch,
        if mixed() { ", mixed" } else { "" },
        ms,
        flops / ms / 1e9,
        (backend.buffers_created() - created) / timed as u64,
        stats.peak_reserved_bytes as f64 / stats.peak_live_bytes as f64,
        per_step_allocs,
        hit,
        per_step_allocs * hit / (ms * 1e6) * 100.0,
        loss
    );
    if std::env::args().any(|a| a == "--kernels") {
        // GPU time per kernel over 5 more steps (timestamp queries; the steps then wait for them).
        let profiler = Arc::new(wgmem::profile::MemoryProfiler::full());
        if ctx.gpu().set_profiler(Some(Arc::clone(&profiler))).unwrap() {
            for _ in 0..5 {
                step(&ctx, &mut model, &mut opt, &mut ck, &x, &y, s);
            }
            ctx.gpu().collect_kernel_times().unwrap();
            println!("GPU time by kernel over 5 steps:\n{}", profiler.by_kernel());
            ctx.gpu().set_profiler(None).unwrap();
        }
    }
}

/// Step time with the profiler off, tracking, full, and full with GPU kernel timing; the modes
/// are interleaved step by step so drift affects them alike.
fn profiler_overhead(backend: &Arc<WgpuBackend>, s: &Shape, timed: usize) {
    use wgmem::MemoryProfiler;
    use wgmem::profile::ProfileMode;
    let ctx = context(backend);
    let mut model = mlp(&ctx, s);
    let mut opt = Adam::new(1e-4);
    let mut ck = GradientCheckpointer::new(CheckpointPolicy::None);
    let (x, y) = data(s);
    let profiler = Arc::new(MemoryProfiler::full());
    ctx.memory().set_profiler(Some(Arc::clone(&profiler)));
    for _ in 0..3 {
        step(&ctx, &mut model, &mut opt, &mut ck, &x, &y, s);
    }
    let modes = [
        ("off", ProfileMode::Off, false),
        ("tracking", ProfileMode::Tracking, false),
        ("full", ProfileMode::Full, false),
        ("full + kernel times", ProfileMode::Full, true),
    ];
    let mut times = vec![Vec::new(); modes.len()];
    for _ in 0..timed {
        for (i, (_, mode, kernels)) in modes.iter().enumerate() {
            profiler.set_mode(*mode);
            ctx.gpu()
                .set_profiler(kernels.then(|| Arc::clone(&profiler)))
                .unwrap();
            let t = Instant::now();
            step(&ctx, &mut model, &mut opt, &mut ck, &x, &y, s);
            times[i].push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    println!(
        "\nProfiler overhead on the MLP step ({} steps per mode, interleaved)",
        timed
    );
    println!("| mode | step (median) | vs off |");
    println!("|---|---|---|");
    let off = median(times[0].clone());
    for (i, (name, _, _)) in modes.iter().enumerate() {
        let ms = median(times[i].clone());
        println!(
            "| {name} | {ms:.2} ms | {:+.2}% |",
            (ms / off - 1.0) * 100.0
        );
    }
}

fn checkpointing(backend: &Arc<WgpuBackend>, s: &Shape, timed: usize) {
    let ctx = context(backend);
    let mut model = mlp(&ctx, s);
    let mut opt = Adam::new(1e-5);
    let (x, y) = data(s);
    let mut run = |policy: CheckpointPolicy, reference: Option<(u64, f64)>| -> (u64, f64, u64) {
        let mut ck = GradientCheckpointer::new(policy);
        for _ in 0..2 {
            step(&ctx, &mut model, &mut opt, &mut ck, &x, &y, s);
        }
        let mut times = Vec::new();
        let mut peak = 0;
        for _ in 0..timed {
            ctx.memory().reset_peaks();
            let t = Instant::now();
            step(&ctx, &mut model, &mut opt, &mut ck, &x, &y, s);
            times.push(t.elapsed().as_secs_f64() * 1e3);
            peak = peak.max(ctx.memory().stats().peak_for_tag(tags::ACTIVATIONS));
        }
        let ms = median(times);
        let smallest = wgmem::checkpoint::plan::smallest_feasible_budget(ck.profile());
        let plan = ck
            .plan()
            .map(|p| format!("{} kept", p.boundaries.len()))
            .unwrap_or_else(|| "all kept".into());
        let (saved, slower) = match reference {
            Some((p0, t0)) => (
                format!("{:.0}%", (1.0 - peak as f64 / p0 as f64) * 100.0),
                format!("{:+.0}%", (ms / t0 - 1.0) * 100.0),
            ),
            None => ("-".into(), "-".into()),
        };
        println!(
            "| {policy:?} | {plan} | {} | {saved} | {ms:.2} ms | {slower} |",
            human_bytes(peak)
        );
        (peak, ms, smallest)
    };
    println!(
        "\nCheckpointing: {} layers, hidden {}, batch {}, Adam{}",
        s.layers + 1,
        s.hidden,
        s.batch,
        if mixed() { ", mixed precision" } else { "" }
    );
    println!("| policy | plan | activation peak | saved | step | step time vs none |");
    println!("|---|---|---|---|---|---|");
    let (peak, ms, _) = run(CheckpointPolicy::None, None);
    let none = (peak, ms);
    let (_, _, least) = run(CheckpointPolicy::SqrtN, Some(none));
    for fraction in [0.5, 0.4, 0.3] {
        let budget = ((none.0 as f64 * fraction) as u64).max(least);
        run(CheckpointPolicy::Budget(budget), Some(none));
    }
}

fn main() {
    let backend = Arc::new(WgpuBackend::new().expect("a GPU adapter"));
    // A software adapter (lavapipe, llvmpipe) runs the reduced sizes: the full ones take hours.
    let software = backend.adapter().device_type == "Cpu";
    let small = software || std::env::args().any(|a| a == "--small");
    println!(
        "adapter: {}{}",
        backend.adapter(),
        if software {
            " (software driver: reduced sizes; not GPU figures)"
        } else if small {
            " (--small: reduced sizes)"
        } else {
            ""
        }
    );
    let (mlp_shape, ck_shape, timed) = if small {
        (
            Shape {
                batch: 64,
                inputs: 784,
                hidden: 256,
                layers: 8,
                classes: 10,
            },
            Shape {
                batch: 32,
                inputs: 256,
                hidden: 128,
                layers: 31,
                classes: 10,
            },
            5,
        )
    } else {
        (
            Shape {
                batch: 1024,
                inputs: 784,
                hidden: 4096,
                layers: 8,
                classes: 10,
            },
            Shape {
                batch: 512,
                inputs: 2048,
                hidden: 2048,
                layers: 31,
                classes: 10,
            },
            20,
        )
    };
    println!(
        "| model | step (median) | achieved | create_buffer / step | peak reserved / peak live | manager share of step | |"
    );
    println!("|---|---|---|---|---|---|---|");
    mlp_step(&backend, &mlp_shape, 3, timed);
    if std::env::args().any(|a| a == "--mlp-only") {
        return;
    }
    profiler_overhead(&backend, &mlp_shape, timed);
    checkpointing(&backend, &ck_shape, timed.min(10));
}
