//! The manager's activation peak of ONE causal self-attention layer (forward with saving, then
//! backward) against the context length, fused kernels against the naive reference. Prints a
//! table; the fused peak per token should stay flat (linear growth), the naive one grows with
//! the context (its `batch * heads * seq²` probabilities are saved, and as many score
//! gradients are scratch in backward).
//!
//! `cargo bench --bench attention_memory -- [--batch B] [--width C] [--heads H] [--naive-up-to T]`
//! (defaults: batch 1, width 64, heads 2: sized for lavapipe; the figures are bytes from the
//! memory manager's account, the same on any adapter).

use clap::Parser;
use std::sync::Arc;
use std::time::Instant;
use wgmem::memory::human_bytes;
use wgmem::nn::{AttentionKernel, CausalSelfAttention, Module};
use wgmem::tensor::tags;
use wgmem::{Backend, Context, MemoryConfig, WgpuBackend};

#[derive(Parser)]
struct Args {
    /// Sequences per batch.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Features of the layer.
    #[arg(long, default_value_t = 64)]
    width: usize,
    /// Heads.
    #[arg(long, default_value_t = 2)]
    heads: usize,
    /// The longest context the naive kernels run at.
    #[arg(long, default_value_t = 2048)]
    naive_up_to: usize,
    /// Context lengths.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024,2048")]
    seq: Vec<usize>,
    // `cargo bench` passes --bench.
    #[arg(long, hide = true)]
    bench: bool,
}

struct Measured {
    activations: u64,
    scratch: u64,
    seconds: f64,
}

fn measure(
    ctx: &Arc<Context>,
    args: &Args,
    seq: usize,
    kernel: AttentionKernel,
) -> wgmem::Result<Measured> {
    let mut layer = CausalSelfAttention::new(ctx, args.width, args.heads, 7)?.with_kernel(kernel);
    let shape = [args.batch, seq, args.width];
    let n = shape.iter().product::<usize>();
    let values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let x = Arc::new(ctx.from_slice(&values, &shape, tags::ACTIVATIONS)?);
    let dy = ctx.from_slice(&values, &shape, tags::ACTIVATIONS)?;
    ctx.backend().wait_idle()?;
    ctx.memory().reset_peaks();
    let start = Instant::now();
    let y = layer.forward(x, true)?;
    drop(y);
    let dx = layer.backward(dy, true)?;
    drop(dx);
    ctx.backend().wait_idle()?;
    let seconds = start.elapsed().as_secs_f64();
    let stats = ctx.memory().stats();
    Ok(Measured {
        activations: stats.peak_for_tag(tags::ACTIVATIONS),
        scratch: stats.peak_for_tag(tags::SCRATCH),
        seconds,
    })
}

fn main() -> wgmem::Result<()> {
    let args = Args::parse();
    let backend = Arc::new(WgpuBackend::new()?);
    println!("adapter: {}", backend.adapter());
    println!(
        "one CausalSelfAttention layer, batch {}, width {}, {} heads (head size {}), fp32, forward (saving) + backward",
        args.batch,
        args.width,
        args.heads,
        args.width / args.heads.max(1)
    );
    let ctx = Context::new(backend, MemoryConfig::default())?;
    println!();
    println!(
        "| T | fused activation peak | per token | fused scratch peak | naive activation peak | per token | naive scratch peak | fused s | naive s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for &seq in &args.seq {
        let fused = measure(&ctx, &args, seq, AttentionKernel::Fused)?;
        let naive = if seq <= args.naive_up_to {
            Some(measure(&ctx, &args, seq, AttentionKernel::Naive)?)
        } else {
            None
        };
        let per = |b: u64| human_bytes(b / seq as u64);
        let (na, np, ns, nt) = match &naive {
            Some(m) => (
                human_bytes(m.activations),
                per(m.activations),
                human_bytes(m.scratch),
                format!("{:.2}", m.seconds),
            ),
            None => ("not run".into(), "-".into(), "-".into(), "-".into()),
        };
        println!(
            "| {seq} | {} | {} | {} | {na} | {np} | {ns} | {:.2} | {nt} |",
            human_bytes(fused.activations),
            per(fused.activations),
            human_bytes(fused.scratch),
            fused.seconds,
        );
    }
    Ok(())
}
