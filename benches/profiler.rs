//! Cost of the profiler on the manager's hot path: acquire + release of a pooled buffer on
//! `HostBackend` (a pool hit and a release each time), with no profiler, a profiler attached
//! but off, tracking only, and full (event log). Prints p50 / p90 per pair in ns and the
//! ratio of p50 to the no-profiler case.
//!
//! Run: `cargo bench --bench profiler`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use wgmem::profile::{MemoryProfiler, ProfileMode};
use wgmem::{BufferUsage, HostBackend, MemoryManager};

const PAIRS_PER_SAMPLE: usize = 1000;
const SAMPLES: usize = 300;

/// Nanoseconds per acquire + release pair, one value per sample, sorted.
fn measure(manager: &MemoryManager<HostBackend>, scoped: Option<&MemoryProfiler>) -> Vec<f64> {
    let sizes = [64 << 10, 256 << 10, 4 << 10, 1 << 20];
    let mut samples = Vec::with_capacity(SAMPLES);
    for s in 0..SAMPLES + SAMPLES / 10 {
        let _scope = scoped.map(|p| p.scope("bench"));
        let start = Instant::now();
        for i in 0..PAIRS_PER_SAMPLE {
            let b = manager
                .acquire(sizes[i % sizes.len()], BufferUsage::Storage, "bench")
                .unwrap();
            black_box(&b);
            drop(b);
        }
        let ns = start.elapsed().as_nanos() as f64 / PAIRS_PER_SAMPLE as f64;
        if s >= SAMPLES / 10 {
            samples.push(ns); // the first tenth is warm-up
        }
    }
    samples.sort_by(f64::total_cmp);
    samples
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let cases: [(&str, Option<ProfileMode>, bool); 5] = [
        ("no profiler", None, false),
        ("attached, off", Some(ProfileMode::Off), false),
        ("tracking", Some(ProfileMode::Tracking), false),
        ("full", Some(ProfileMode::Full), false),
        ("full, in a scope", Some(ProfileMode::Full), true),
    ];
    let mut rows = Vec::new();
    for (name, mode, scoped) in cases {
        let manager = MemoryManager::new(Arc::new(HostBackend::new()));
        let profiler = mode.map(|m| Arc::new(MemoryProfiler::new(m, 1 << 16)));
        manager.set_profiler(profiler.clone());
        let samples = measure(&manager, profiler.as_deref().filter(|_| scoped));
        rows.push((name, percentile(&samples, 0.5), percentile(&samples, 0.9)));
    }
    let base = rows[0].1;
    println!(
        "acquire + release (pool hit) on HostBackend, {SAMPLES} samples of {PAIRS_PER_SAMPLE} pairs"
    );
    println!("| mode | p50 ns/pair | p90 ns/pair | p50 vs no profiler |");
    println!("|---|---:|---:|---:|");
    for (name, p50, p90) in rows {
        println!("| {name} | {p50:.0} | {p90:.0} | {:.2}x |", p50 / base);
    }
}
