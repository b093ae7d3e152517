//! Acquire/release latency: a pool hit against the backend's raw allocation, for sizes
//! 256 B to 256 MiB, with p50 and p99. Prints a table.
//!
//! `cargo bench --bench pool` runs on the host backend and, when an adapter exists, on the
//! GPU (on a machine without a GPU that is lavapipe, a software driver: label it so).
//! On the device machine: `pool --gpu-only` (see BENCHMARKS.md for the exact command).

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;
use wgmem::memory::{MemoryManager, human_bytes};
use wgmem::{Backend, BufferUsage, HostBackend, WgpuBackend};

const SIZES: [u64; 5] = [256, 64 << 10, 1 << 20, 16 << 20, 256 << 20];

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summarize(mut ns: Vec<f64>) -> (f64, f64) {
    ns.sort_by(f64::total_cmp);
    (percentile(&ns, 0.5), percentile(&ns, 0.99))
}

fn iterations(size: u64) -> usize {
    if size >= 256 << 20 {
        30
    } else if size >= 16 << 20 {
        200
    } else {
        2000
    }
}

/// Raw backend allocation (timed) and free (untimed).
fn raw_allocate<B: Backend>(backend: &B, size: u64) -> (f64, f64) {
    let mut ns = Vec::new();
    for _ in 0..iterations(size) {
        let t = Instant::now();
        let buffer = black_box(
            backend
                .allocate(size, BufferUsage::Storage)
                .expect("allocate"),
        );
        ns.push(t.elapsed().as_nanos() as f64);
        backend.free(buffer);
    }
    summarize(ns)
}

/// Pool hit: acquire (timed) and release (timed separately) after one warm-up miss.
fn pool_hit<B: Backend>(manager: &MemoryManager<B>, size: u64) -> ((f64, f64), (f64, f64)) {
    drop(
        manager
            .acquire(size, BufferUsage::Storage, "bench")
            .expect("warm-up"),
    );
    let misses = manager.stats().pool_misses;
    let (mut acquire, mut release) = (Vec::new(), Vec::new());
    for _ in 0..iterations(size).max(2000) {
        let t = Instant::now();
        let buffer = black_box(
            manager
                .acquire(size, BufferUsage::Storage, "bench")
                .expect("hit"),
        );
        acquire.push(t.elapsed().as_nanos() as f64);
        let t = Instant::now();
        drop(buffer);
        release.push(t.elapsed().as_nanos() as f64);
    }
    assert_eq!(
        manager.stats().pool_misses,
        misses,
        "every acquisition after the first must hit"
    );
    manager.clear_cache();
    (summarize(acquire), summarize(release))
}

/// wgpu's own `create_buffer`, the reference in DESIGN.md.
fn create_buffer(backend: &WgpuBackend, size: u64) -> (f64, f64) {
    let mut ns = Vec::new();
    let usage =
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    for _ in 0..iterations(size) {
        let t = Instant::now();
        let buffer = black_box(backend.device().create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size,
            usage,
            mapped_at_creation: false,
        }));
        ns.push(t.elapsed().as_nanos() as f64);
        drop(buffer);
    }
    summarize(ns)
}

fn us(ns: f64) -> String {
    format!("{:.2}", ns / 1000.0)
}

fn run<B: Backend>(label: &str, backend: Arc<B>, reference: impl Fn(&B, u64) -> (f64, f64)) {
    let manager = MemoryManager::new(Arc::clone(&backend));
    println!("\n{label}: {}", backend.adapter());
    println!(
        "| size | reference p50 us | p99 us | pool hit acquire p50 us | p99 us | release p50 us | p99 us | speed-up (p50) |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for size in SIZES {
        if size > backend.capabilities().max_buffer_size {
            continue;
        }
        let (r50, r99) = reference(&backend, size);
        let ((a50, a99), (f50, f99)) = pool_hit(&manager, size);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.0}x |",
            human_bytes(size),
            us(r50),
            us(r99),
            us(a50),
            us(a99),
            us(f50),
            us(f99),
            r50 / a50
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let gpu_only = args.iter().any(|a| a == "--gpu-only");
    if !gpu_only {
        run(
            "host backend (reference: HostBackend::allocate, a zeroed host allocation)",
            Arc::new(HostBackend::new()),
            raw_allocate,
        );
    }
    match WgpuBackend::new() {
        Ok(gpu) => {
            let gpu = Arc::new(gpu);
            run(
                "wgpu backend (reference: WgpuBackend::allocate, create_buffer inside an OOM error scope)",
                Arc::clone(&gpu),
                raw_allocate,
            );
            run(
                "wgpu backend (reference: bare device.create_buffer)",
                gpu,
                create_buffer,
            );
        }
        Err(e) => println!("\nno GPU adapter: {e}"),
    }
}
