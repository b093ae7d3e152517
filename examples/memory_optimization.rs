//! What each memory tool does, measured: pooling, gradient checkpointing, and a simulated
//! pressure sequence, each printing what it did to memory.
//!
//! ```sh
//! cargo run --release --example memory_optimization
//! ```

use std::sync::Arc;
use wgmem::checkpoint::{CheckpointPolicy, GradientCheckpointer};
use wgmem::memory::human_bytes;
use wgmem::nn::{Linear, Module, Sequential, softmax_cross_entropy};
use wgmem::pressure::{PressureLevel, PressureMonitor, SimulatedSource};
use wgmem::tensor::tags;
use wgmem::{Backend, BufferUsage, Context, MemoryConfig, WgpuBackend};

fn main() -> wgmem::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let backend = Arc::new(WgpuBackend::new()?);
    println!("adapter: {}\n", backend.adapter());

    pooling(&backend)?;
    checkpointing(&backend)?;
    pressure(&backend)?;
    Ok(())
}

/// The same three sizes, acquired and released for 50 "steps".
fn pooling(backend: &Arc<WgpuBackend>) -> wgmem::Result<()> {
    println!("1. Pooling: 50 steps of three buffers (1 MiB, 300 KB, 4 KB)");
    let ctx = Context::new(Arc::clone(backend), MemoryConfig::default())?;
    let before = backend.buffers_created();
    for _ in 0..50 {
        let bufs = [1 << 20, 300_000, 4_000]
            .map(|s| ctx.memory().acquire(s, BufferUsage::Storage, "step"));
        for b in bufs {
            b?;
        }
    }
    let s = ctx.memory().stats();
    println!(
        "   buffers created: {} for 150 acquisitions; hit rate {:.1}%; reserved {} for {} requested at peak\n",
        backend.buffers_created() - before,
        s.hit_rate() * 100.0,
        human_bytes(s.peak_reserved_bytes),
        human_bytes((1 << 20) + 300_000 + 4_000)
    );
    Ok(())
}

/// One training step of a 24-layer MLP under each checkpoint policy.
fn checkpointing(backend: &Arc<WgpuBackend>) -> wgmem::Result<()> {
    println!("2. Gradient checkpointing: 24 layers of 256, batch 64, one step");
    let ctx = Context::new(Arc::clone(backend), MemoryConfig::default())?;
    let mut model = Sequential::new();
    for i in 0..23 {
        model.push(Linear::new(&ctx, 256, 256, i)?.with_relu());
    }
    model.push(Linear::new(&ctx, 256, 10, 99)?);
    let x: Vec<f32> = (0..64 * 256)
        .map(|i| ((i * 37 % 101) as f32 / 101.0) - 0.5)
        .collect();
    let labels: Vec<u32> = (0..64).map(|i| i % 10).collect();
    let mut none_peak = 0;
    for policy in [
        CheckpointPolicy::None,
        CheckpointPolicy::SqrtN,
        CheckpointPolicy::EveryK(2),
    ] {
        let mut ck = GradientCheckpointer::new(policy);
        let input = Arc::new(ctx.from_slice(&x, &[64, 256], tags::DATA)?);
        let y = ctx.upload_u32(&labels, tags::DATA)?;
        if policy != CheckpointPolicy::None {
            ck.prepare(&mut model, &input)?;
        }
        ctx.memory().reset_peaks();
        let loss = ck.forward_backward(&mut model, input, |logits| {
            let out = softmax_cross_entropy(&logits, &y, 64)?;
            Ok((out.grad, out.loss))
        })?;
        let peak = ctx.memory().stats().peak_for_tag(tags::ACTIVATIONS);
        if policy == CheckpointPolicy::None {
            none_peak = peak;
        }
        let kept = ck.plan().map_or(model.len(), |p| p.boundaries.len());
        println!(
            "   {policy:?}: loss {:.4}, inputs kept {kept}, activation peak {} ({:.0}% of none)",
            loss.to_vec()?[0],
            human_bytes(peak),
            peak as f64 / none_peak as f64 * 100.0
        );
        for p in model.parameters() {
            p.zero_grad()?;
        }
    }
    println!();
    Ok(())
}

/// Normal -> Warning -> Critical -> Normal with 8 MiB cached and a cleanup callback.
fn pressure(backend: &Arc<WgpuBackend>) -> wgmem::Result<()> {
    println!("3. Memory pressure (simulated source)");
    let ctx = Context::new(Arc::clone(backend), MemoryConfig::default())?;
    let memory = ctx.memory();
    let bufs: Vec<_> = (0..8)
        .map(|_| memory.acquire(1 << 20, BufferUsage::Storage, "cache"))
        .collect::<Result<_, _>>()?;
    drop(bufs);
    memory.register_cleanup("example cache", 0, |req| {
        println!(
            "   cleanup callback called ({:?}), cached then: {}",
            req.reason,
            human_bytes(req.stats.cached_bytes)
        );
    });
    let source = SimulatedSource::new("simulated");
    let level = source.handle();
    let mut monitor = PressureMonitor::new();
    monitor.add_source(source);
    monitor.add_responder(Arc::new(memory.clone()));
    println!(
        "   start: cached {}",
        human_bytes(memory.stats().cached_bytes)
    );
    for next in [
        PressureLevel::Warning,
        PressureLevel::Critical,
        PressureLevel::Normal,
    ] {
        level.set(next);
        if let Some(change) = monitor.poll() {
            let s = memory.stats();
            println!(
                "   {change}: cached {}, evictions so far {}",
                human_bytes(s.cached_bytes),
                s.evictions
            );
        }
    }
    println!(
        "   pressure events counted: {}",
        memory.stats().pressure_events
    );
    Ok(())
}
