//! Train a small GPT on real English text, on the GPU, then sample from it.
//!
//! By default it trains on the embedded King James Version (public domain, from the Debian
//! package `bible-kjv-text`; see data/README.md), byte by byte: the first 90% trains, the last
//! 10% validates. The default model (6 layers, 6 heads, width 384, context 256: 10.8M
//! parameters) suits a laptop; AdamW (decay on matrices only), clipping at norm 1, warmup then
//! cosine decay.
//!
//! ```sh
//! cargo run --release --example gpt
//! cargo run --release --example gpt -- --steps 200 --layers 2 --width 128 --context 128
//! cargo run --release --example gpt -- --data my.txt --checkpoint sqrt --memory-limit 4G
//! cargo run --release --example gpt -- --precision mixed
//! ```
//!
//! It prints `val loss at step 0: X` first and `val loss: Y` last, each on its own line, with
//! the median step time and a generated sample between them. `--precision mixed` trains with
//! f16 activations and working weights (f32 master weights, gradients and AdamW state, dynamic
//! loss scaling; needs SHADER_F16); evaluation and sampling then run in f16 too. `benches/gpt.sh` runs it beside
//! the PyTorch reference (`benches/reference/torch_gpt.py`).

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::Read;
use std::sync::Arc;
use wgmem::backend::parse_bytes;
use wgmem::checkpoint::CheckpointPolicy;
use wgmem::memory::human_bytes;
use wgmem::nn::{GptConfig, generate};
use wgmem::optim::{Adam, ClipGradNorm, LrSchedule, Scheduled};
use wgmem::profile::MemoryProfiler;
use wgmem::text::{ByteTokenizer, Split, TextCorpus};
use wgmem::train::Precision;
use wgmem::{
    Backend, Context, Gpu, KernelChecks, MemoryConfig, Trainer, TrainerConfig, WgpuBackend,
};

const KJV: &[u8] = include_bytes!("../data/kjv.txt.gz");

#[derive(Parser, Debug)]
#[command(about = "Train a GPT on text with memory-managed GPU buffers")]
struct Args {
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    steps: u64,
    /// Transformer blocks.
    #[arg(long, default_value_t = 6)]
    layers: usize,
    /// Attention heads (must divide the width).
    #[arg(long, default_value_t = 6)]
    heads: usize,
    /// Features of the residual stream.
    #[arg(long, default_value_t = 384)]
    width: usize,
    /// Tokens (bytes) per window.
    #[arg(long, default_value_t = 256)]
    context: usize,
    /// Windows per optimizer step.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Peak learning rate (after the warmup; the cosine ends at a tenth of it).
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Warmup steps (default: a tenth of the steps).
    #[arg(long)]
    warmup: Option<u64>,
    /// AdamW's weight decay (on weight matrices and embeddings only).
    #[arg(long, default_value_t = 0.1)]
    weight_decay: f32,
    /// Clip gradients to this global norm.
    #[arg(long, default_value_t = 1.0)]
    clip: f32,
    /// Dropout in the blocks.
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// A text file to train on (any bytes); default: the embedded KJV.
    #[arg(long)]
    data: Option<std::path::PathBuf>,
    /// none, sqrt, every:K or budget:BYTES.
    #[arg(long, default_value = "none")]
    checkpoint: String,
    /// Hard limit on GPU memory held by the run, e.g. 512M or 4G.
    #[arg(long)]
    memory_limit: Option<String>,
    /// Evaluate on the validation split every this many steps.
    #[arg(long, default_value_t = 100)]
    eval_every: u64,
    /// Validation windows (non-overlapping, from the start of the split) per evaluation.
    #[arg(long, default_value_t = 64)]
    eval_windows: usize,
    /// Bytes of text to generate at the end.
    #[arg(long, default_value_t = 300)]
    sample: usize,
    /// Seed of the weights, the window order and the sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// f32, or mixed (f16 activations and working weights, f32 master weights, gradients and
    /// AdamW state, dynamic loss scaling; needs SHADER_F16).
    #[arg(long, default_value = "f32")]
    precision: String,
    /// The pool's in-flight ratio (`MemoryConfig::in_flight_ratio`): a buffer is created beside
    /// one the GPU still uses only while reserved stays within this multiple of peak live;
    /// `inf` never waits for the GPU.
    #[arg(long, default_value_t = MemoryConfig::default().in_flight_ratio)]
    in_flight_ratio: f64,
    /// naga's runtime checks on wgmem's kernels: no-loop-bounding (the default: index and
    /// division checks kept; see `KernelChecks`) or full (loop counters too).
    #[arg(long, default_value = "no-loop-bounding")]
    kernel_checks: String,
    /// Time every kernel (timestamp queries) from the fourth step on; print the GPU time per
    /// kernel at the end and write a memory profile with this prefix (`PREFIX.json` and two SVG plots).
    /// Step times then include the waits for the timestamps.
    #[arg(long)]
    profile: Option<std::path::PathBuf>,
}

fn load(args: &Args) -> wgmem::Result<TextCorpus> {
    match &args.data {
        Some(path) => TextCorpus::from_file(path),
        None => {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(KJV).read_to_end(&mut text)?;
            TextCorpus::from_bytes(&text)
        }
    }
}

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> wgmem::Result<()> {
    let precision: Precision = args.precision.parse()?;
    let corpus = load(&args)?;
    let train = corpus.windows(Split::Train, args.context, args.context)?;
    let val = corpus
        .windows(Split::Validation, args.context, args.context)?
        .first(args.eval_windows);
    let backend = Arc::new(WgpuBackend::new()?);
    println!("adapter: {}", backend.adapter());
    let limit = args.memory_limit.as_deref().map(parse_bytes).transpose()?;
    let checks: KernelChecks = args.kernel_checks.parse()?;
    let ctx = Context::with_gpu(
        Gpu::with_checks(backend, checks)?,
        MemoryConfig {
            hard_limit: limit,
            in_flight_ratio: args.in_flight_ratio,
            ..MemoryConfig::default()
        },
    )?;
    let profiler = args
        .profile
        .as_ref()
        .map(|_| Arc::new(MemoryProfiler::full()));
    if let Some(p) = &profiler {
        ctx.memory().set_profiler(Some(Arc::clone(p)));
        if !ctx.gpu().set_profiler(Some(Arc::clone(p)))? {
            println!("this device has no timestamp queries: no kernel times");
        }
    }
    let gpt = GptConfig {
        vocab: ByteTokenizer::VOCAB,
        layers: args.layers,
        heads: args.heads,
        width: args.width,
        context: args.context,
        dropout: args.dropout,
        seed: args.seed,
    };
    let model = gpt.build(&ctx)?;
    let warmup = args
        .warmup
        .unwrap_or(args.steps / 10)
        .clamp(1, args.steps.max(1));
    let schedule = LrSchedule::warmup_cosine(args.lr, args.lr / 10.0, warmup, args.steps)?;
    let adamw = Adam::adamw(args.lr, args.weight_decay);
    let optimizer = Scheduled::new(
        Box::new(ClipGradNorm::new(Box::new(adamw), args.clip)?),
        schedule,
    );
    println!(
        "data: {} train / {} validation bytes, {} train windows of {}, {} validation windows; \
         model: {} layers, {} heads, width {}, {:.2}M parameters; precision {}",
        corpus.tokens(Split::Train).len(),
        corpus.tokens(Split::Validation).len(),
        train.len(),
        args.context,
        val.len(),
        args.layers,
        args.heads,
        args.width,
        gpt.parameter_count() as f64 / 1e6,
        match precision {
            Precision::F32 => "f32",
            Precision::Mixed => "mixed (f16, dynamic loss scaling)",
        }
    );
    let config = TrainerConfig {
        epochs: 1,
        batch_size: args.batch_size,
        seed: args.seed,
        checkpoint: args.checkpoint.parse::<CheckpointPolicy>()?,
        precision,
        ..TrainerConfig::default()
    };
    let mut trainer = Trainer::new(Arc::clone(&ctx), model, Box::new(optimizer), config)?;
    if let Some(limit) = limit {
        let fitted = trainer.fit_to_budget(&train, limit)?;
        println!("memory limit {}: micro-batch {fitted}", human_bytes(limit));
    }

    let bar = ProgressBar::new(args.steps);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}").expect("a valid template"),
    );
    let tokens_per_step = (args.batch_size * args.context) as f64;
    let mut step_seconds = Vec::new();
    let evaluations = trainer.train_steps_evaluating(
        &train,
        &val,
        args.steps,
        args.eval_every.max(1),
        |s| {
            step_seconds.push(s.seconds);
            if let (Some(p), 3) = (&profiler, step_seconds.len()) {
                // The first steps compile pipelines and fill the pools: time the rest.
                let _ = ctx.gpu().collect_kernel_times();
                p.reset();
            }
            bar.set_message(format!(
                "loss {:.4} {:.0} tok/s live {} peak {} micro {}",
                s.loss,
                tokens_per_step / s.seconds.max(1e-9),
                human_bytes(s.live_bytes),
                human_bytes(s.peak_live_bytes),
                s.micro_batch
            ));
            bar.inc(1);
        },
        |e| {
            // Printed past the bar (which draws nothing when stdout is not a terminal).
            bar.suspend(|| {
                if e.step == 0 {
                    println!("val loss at step 0: {:.4}", e.loss);
                } else {
                    println!(
                        "step {}: val loss {:.4}, accuracy {:.1}%",
                        e.step,
                        e.loss,
                        e.accuracy * 100.0
                    );
                }
            });
        },
    )?;
    bar.finish_and_clear();

    // The first steps warm the pools and pipelines: the median is over the rest.
    let mut timed: Vec<f64> = step_seconds.iter().skip(3).copied().collect();
    if timed.is_empty() {
        timed = step_seconds.clone();
    }
    timed.sort_by(f64::total_cmp);
    if let Some(&median) = timed.get(timed.len() / 2) {
        println!(
            "step time: {:.2} ms (median of {} steps, batch {}, context {}); tokens/s: {:.0}",
            median * 1e3,
            timed.len(),
            args.batch_size,
            args.context,
            tokens_per_step / median
        );
    }
    let stats = ctx.memory().stats();
    println!(
        "memory: peak live {}, peak reserved {}, {} waits for the GPU (in-flight ratio {}); micro-batch {}{}",
        human_bytes(stats.peak_live_bytes),
        human_bytes(stats.peak_reserved_bytes),
        stats.pending_waits,
        args.in_flight_ratio,
        trainer.micro_batch(),
        match trainer.report().adaptations.len() {
            0 => String::new(),
            n => format!(" after {n} adaptations"),
        }
    );

    if let (Some(p), Some(prefix)) = (&profiler, &args.profile) {
        ctx.gpu().collect_kernel_times()?;
        let kernels = p.by_kernel();
        let steps = step_seconds.len().saturating_sub(3).max(1) as f64;
        println!(
            "GPU time by kernel over the last {steps} steps ({:.2} ms per step; checks {}):\n{kernels}",
            kernels.total().as_secs_f64() * 1e3 / steps,
            ctx.gpu().checks_label()
        );
        let files = p.write_all(prefix)?;
        println!("profile: {}", files.trace.display());
    }

    if let Some(scale) = trainer.report().loss_scale {
        println!(
            "mixed precision: {} steps skipped on f16 overflow, final loss scale {scale}",
            trainer.report().overflow_skipped_steps
        );
    }

    let prompt: Vec<u32> = corpus.tokens(Split::Validation)[..args.context.min(64)].to_vec();
    let text = generate(
        trainer.model(),
        &ctx,
        &prompt,
        args.context,
        args.sample,
        0.8,
        args.seed,
    )?;
    println!(
        "sample (prompt: the first {} bytes of the validation split):\n{}{}\n",
        prompt.len(),
        ByteTokenizer.decode(&prompt)?,
        ByteTokenizer.decode(&text)?
    );
    let last = evaluations
        .last()
        .expect("one evaluation after the last step");
    println!("val loss: {:.4}", last.loss);
    Ok(())
}
