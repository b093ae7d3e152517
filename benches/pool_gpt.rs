//! Live against reserved bytes, step by step, for a small GPT, and where the reserve goes.
//!
//! The pool's contract is bounded waste: reserved (live + cached) should stay a small multiple
//! of live. This trains the `examples/gpt.rs` model at a size lavapipe manages, evaluating every
//! `--eval-every` steps, and prints per step the live bytes, the peak live and peak reserved
//! bytes within the step, and the cache at its end. Then it replays the profiler's events up to
//! the moment reserved bytes peaked and prints, per size class, the bytes live and cached
//! (free, waiting for reuse) there, the rounding waste of the live ones (class minus request)
//! and which tags and sources they came from.
//!
//! ```sh
//! cargo bench --bench pool_gpt -- --steps 6 --batch-size 8
//! cargo bench --bench pool_gpt -- --in-flight-ratio inf   # the pool before the in-flight rule
//! ```
//!
//! On a machine without a GPU the adapter is lavapipe (software Vulkan): it prints its name.
//! Cached buffers are attributed to the tag and source of the buffer last released into their
//! class (the pool reuses most recent first), so attribution of cached bytes is approximate
//! where a class mixes sources; the byte totals are exact.

use clap::Parser;
use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use wgmem::memory::human_bytes;
use wgmem::nn::GptConfig;
use wgmem::optim::Adam;
use wgmem::profile::{Event, EventKind, MemoryProfiler, location_string};
use wgmem::text::{ByteTokenizer, Split, TextCorpus};
use wgmem::train::Precision;
use wgmem::{Backend, Context, Gpu, MemoryConfig, Trainer, TrainerConfig, WgpuBackend};

const KJV: &[u8] = include_bytes!("../data/kjv.txt.gz");

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 6)]
    steps: u64,
    #[arg(long, default_value_t = 2)]
    layers: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 128)]
    width: usize,
    #[arg(long, default_value_t = 128)]
    context: usize,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 2)]
    eval_every: u64,
    #[arg(long, default_value_t = 2)]
    eval_windows: usize,
    /// f32 or mixed.
    #[arg(long, default_value = "f32")]
    precision: String,
    /// The pool's in-flight ratio (`MemoryConfig::in_flight_ratio`); `inf` is the pool before
    /// that rule (a request never waits for the GPU).
    #[arg(long, default_value_t = MemoryConfig::default().in_flight_ratio)]
    in_flight_ratio: f64,
    /// The pool's reuse cap (`MemoryConfig::max_reuse_ratio`).
    #[arg(long, default_value_t = MemoryConfig::default().max_reuse_ratio)]
    max_reuse_ratio: f64,
    /// Size classes listed in the breakdown (largest reserved first).
    #[arg(long, default_value_t = 16)]
    top: usize,
    /// cargo bench passes --bench.
    #[arg(long, hide = true)]
    bench: bool,
}

#[derive(Default, Clone)]
struct ClassRow {
    live: u64,
    requested_live: u64,
    cached: u64,
    /// tag @ source -> (live bytes, cached bytes)
    origins: BTreeMap<String, (u64, u64)>,
}

type Origin = String;

/// Replays events up to and including `until` (an index into `events`).
fn replay(events: &[Event], until: usize) -> BTreeMap<u64, ClassRow> {
    let mut live: BTreeMap<u64, (u64, u64, Origin)> = BTreeMap::new();
    let mut cached: BTreeMap<u64, Vec<Origin>> = BTreeMap::new();
    for e in &events[..=until] {
        let origin = || format!("{} @ {}", e.tag, location_string(e.location));
        match e.kind {
            EventKind::Alloc => {
                live.insert(e.buffer, (e.size, e.requested, origin()));
            }
            EventKind::PoolHit => {
                let from = cached.entry(e.size).or_default();
                from.pop();
                live.insert(e.buffer, (e.size, e.requested, origin()));
            }
            EventKind::Free => {
                live.remove(&e.buffer);
                cached.entry(e.size).or_default().push(origin());
            }
            EventKind::Evict => {
                let from = cached.entry(e.size).or_default();
                if !from.is_empty() {
                    from.remove(0);
                }
            }
            _ => {}
        }
    }
    let mut rows: BTreeMap<u64, ClassRow> = BTreeMap::new();
    for (class, requested, origin) in live.values() {
        let row = rows.entry(*class).or_default();
        row.live += class;
        row.requested_live += requested;
        row.origins.entry(origin.clone()).or_default().0 += class;
    }
    for (class, list) in &cached {
        for origin in list {
            let row = rows.entry(*class).or_default();
            row.cached += class;
            row.origins.entry(origin.clone()).or_default().1 += class;
        }
    }
    rows
}

/// Why misses missed: for each pool miss (a new buffer), whether a buffer of the same class was
/// cached then (so it was still pending on the GPU, or of another usage), or one of a larger
/// class within 2x (too large for the reuse cap), or nothing fitting at all. Also the sum over
/// classes of each class's own peak of live bytes, which is what an exact-class pool with no
/// eviction ends up holding.
fn print_misses(events: &[Event]) {
    let mut cached: BTreeMap<u64, u64> = BTreeMap::new();
    let mut live: BTreeMap<u64, u64> = BTreeMap::new();
    let mut class_peak: BTreeMap<u64, u64> = BTreeMap::new();
    let (mut same, mut larger, mut none) = ((0u64, 0u64), (0u64, 0u64), (0u64, 0u64));
    for e in events {
        match e.kind {
            EventKind::Alloc => {
                let c = e.size;
                let bucket = if cached.get(&c).copied().unwrap_or(0) > 0 {
                    &mut same
                } else if cached.range(c + 1..=2 * c).any(|(_, n)| *n > 0) {
                    &mut larger
                } else {
                    &mut none
                };
                bucket.0 += 1;
                bucket.1 += c;
            }
            EventKind::PoolHit => *cached.entry(e.size).or_default() -= 1,
            EventKind::Free => *cached.entry(e.size).or_default() += 1,
            EventKind::Evict => *cached.entry(e.size).or_default() -= 1,
            _ => continue,
        }
        let l = live.entry(e.size).or_default();
        match e.kind {
            EventKind::Alloc | EventKind::PoolHit => *l += e.size,
            EventKind::Free => *l -= e.size,
            _ => {}
        }
        let p = class_peak.entry(e.size).or_default();
        *p = (*p).max(*l);
    }
    println!(
        "misses: {} ({}) with the same class cached (pending or other usage); {} ({}) with only a \
         larger class within 2x cached; {} ({}) with nothing near cached",
        same.0,
        human_bytes(same.1),
        larger.0,
        human_bytes(larger.1),
        none.0,
        human_bytes(none.1)
    );
    println!(
        "sum over classes of each class's peak live bytes: {}",
        human_bytes(class_peak.values().sum())
    );
}

fn print_breakdown(events: &[Event], top: usize) {
    let Some((at, peak)) = events
        .iter()
        .enumerate()
        .filter(|(_, e)| !matches!(e.kind, EventKind::Scope { .. } | EventKind::Kernel { .. }))
        .max_by_key(|(i, e)| (e.account.reserved(), std::cmp::Reverse(*i)))
    else {
        println!("no memory events recorded");
        return;
    };
    let rows = replay(events, at);
    let (live, cached): (u64, u64) = rows
        .values()
        .fold((0, 0), |a, r| (a.0 + r.live, a.1 + r.cached));
    let waste: u64 = rows.values().map(|r| r.live - r.requested_live).sum();
    println!(
        "\nat the reserved peak (event {at} of {}): live {} cached {} reserved {} \
         (replay: live {} cached {}); rounding waste of live {}",
        events.len(),
        human_bytes(peak.account.live),
        human_bytes(peak.account.cached),
        human_bytes(peak.account.reserved()),
        human_bytes(live),
        human_bytes(cached),
        human_bytes(waste),
    );
    let mut sorted: Vec<(&u64, &ClassRow)> = rows.iter().collect();
    sorted.sort_by_key(|(c, r)| (std::cmp::Reverse(r.live + r.cached), **c));
    println!(
        "| class | live | cached | reserved | rounding waste | top origins (tag @ source: live / cached) |"
    );
    println!("|---|---|---|---|---|---|");
    for (class, r) in sorted.iter().take(top) {
        let mut origins: Vec<(&String, &(u64, u64))> = r.origins.iter().collect();
        origins.sort_by_key(|(k, v)| (std::cmp::Reverse(v.0 + v.1), (*k).clone()));
        let names: Vec<String> = origins
            .iter()
            .take(3)
            .map(|(k, v)| format!("{k}: {} / {}", human_bytes(v.0), human_bytes(v.1)))
            .collect();
        println!(
            "| {} | {} | {} | {} | {} | {} |",
            human_bytes(**class),
            human_bytes(r.live),
            human_bytes(r.cached),
            human_bytes(r.live + r.cached),
            human_bytes(r.live - r.requested_live),
            names.join("; ")
        );
    }
    println!("({} classes in all)", rows.len());
}

fn main() -> wgmem::Result<()> {
    let args = Args::parse();
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(KJV).read_to_end(&mut text)?;
    let corpus = TextCorpus::from_bytes(&text)?;
    let train = corpus.windows(Split::Train, args.context, args.context)?;
    let val = corpus
        .windows(Split::Validation, args.context, args.context)?
        .first(args.eval_windows);
    let backend = Arc::new(WgpuBackend::new()?);
    println!("adapter: {}", backend.adapter());
    let memory_config = MemoryConfig {
        in_flight_ratio: args.in_flight_ratio,
        max_reuse_ratio: args.max_reuse_ratio,
        ..MemoryConfig::default()
    };
    let ctx = Context::with_gpu(Gpu::new(backend)?, memory_config)?;
    let profiler = Arc::new(MemoryProfiler::full());
    ctx.memory().set_profiler(Some(Arc::clone(&profiler)));
    let gpt = GptConfig {
        vocab: ByteTokenizer::VOCAB,
        layers: args.layers,
        heads: args.heads,
        width: args.width,
        context: args.context,
        dropout: 0.0,
        seed: 0,
    };
    let model = gpt.build(&ctx)?;
    let precision: Precision = args.precision.parse()?;
    let config = TrainerConfig {
        epochs: 1,
        batch_size: args.batch_size,
        precision,
        ..TrainerConfig::default()
    };
    let optimizer = Box::new(Adam::adamw(1e-3, 0.1));
    let mut trainer = Trainer::new(Arc::clone(&ctx), model, optimizer, config)?;
    println!(
        "model: {} layers, width {}, heads {}, context {}, batch {}, precision {}; eval every {} steps on {} windows; in-flight ratio {}, reuse cap {}",
        args.layers,
        args.width,
        args.heads,
        args.context,
        args.batch_size,
        args.precision,
        args.eval_every,
        val.len(),
        args.in_flight_ratio,
        args.max_reuse_ratio
    );
    println!(
        "| step | live at end | peak live | peak reserved | reserved / live | cached at end | hits | misses | waits | seconds |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let memory = ctx.memory().clone();
    memory.reset_peaks();
    let mut last = memory.stats();
    trainer.train_steps_evaluating(
        &train,
        &val,
        args.steps,
        args.eval_every.max(1),
        |s| {
            let now = memory.stats();
            println!(
                "| {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {:.2} |",
                s.step,
                human_bytes(now.live_bytes),
                human_bytes(now.peak_live_bytes),
                human_bytes(now.peak_reserved_bytes),
                now.peak_reserved_bytes as f64 / now.peak_live_bytes.max(1) as f64,
                human_bytes(now.cached_bytes),
                now.pool_hits - last.pool_hits,
                now.pool_misses - last.pool_misses,
                now.pending_waits - last.pending_waits,
                s.seconds,
            );
            memory.reset_peaks();
            last = now;
        },
        |_| {},
    )?;
    let stats = memory.stats();
    println!(
        "whole run: peak live {}, peak reserved {}, evictions {}",
        human_bytes(profiler_peak(&profiler).0),
        human_bytes(profiler_peak(&profiler).1),
        stats.evictions
    );
    if profiler.dropped_events() > 0 {
        println!(
            "warning: the profiler dropped {} events",
            profiler.dropped_events()
        );
    }
    print_misses(&profiler.events());
    print_breakdown(&profiler.events(), args.top);
    Ok(())
}

/// (peak live, peak reserved) over the recorded events.
fn profiler_peak(p: &MemoryProfiler) -> (u64, u64) {
    p.timeline().iter().fold((0, 0), |a, t| {
        (a.0.max(t.account.live), a.1.max(t.account.reserved()))
    })
}
