//! Zero-copy against staging: host-to-buffer uploads and buffer-to-host reads, GB/s.
//!
//! Two backends on the same adapter in the same run: one with zero-copy (storage buffers
//! mapped directly where the adapter is unified and offers `MAPPABLE_PRIMARY_BUFFERS`), one
//! without (the queue's staging and a GPU copy for writes; a readback buffer and a GPU copy for
//! reads). Each figure is the median of `REPEATS` timings:
//! - upload: `write` of the whole buffer, then `wait_idle`, so the staged path's GPU copy is
//!   counted (the data is then in the buffer, as a kernel would need it);
//! - read: `read` of the whole buffer after a write (it waits for that work first).
//!
//! Both paths are checked to give back the bytes written before anything is timed.
//!
//! Run: `cargo bench --bench zero_copy` (`-- --small` for sizes up to 16 MiB). On a discrete
//! GPU zero-copy stays off and both columns measure the staging path.

use std::sync::Arc;
use std::time::Instant;
use wgmem::{Backend, BufferUsage, WgpuBackend, WgpuBackendOptions};

const REPEATS: usize = 9;

fn backend(zero_copy: bool) -> Arc<WgpuBackend> {
    Arc::new(
        WgpuBackend::with_options(WgpuBackendOptions {
            zero_copy: Some(zero_copy),
            ..WgpuBackendOptions::default()
        })
        .expect("a GPU adapter"),
    )
}

/// Median seconds of `f` over `REPEATS` runs, after one warm-up run.
fn median(mut f: impl FnMut()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..REPEATS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[REPEATS / 2]
}

/// `(upload GB/s, read GB/s)` for a buffer of `size` bytes on `b`.
fn measure(b: &WgpuBackend, size: usize) -> (f64, f64) {
    let data: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
    let buffer = b
        .allocate(size as u64, BufferUsage::Storage)
        .expect("allocate");
    let mut out = vec![0u8; size];
    b.write(&buffer, 0, &data).expect("write");
    b.read(&buffer, 0, &mut out).expect("read");
    assert!(out == data, "the bytes read back differ from those written");
    let upload = median(|| {
        b.write(&buffer, 0, &data).expect("write");
        b.wait_idle().expect("wait");
    });
    let read = median(|| b.read(&buffer, 0, &mut out).expect("read"));
    b.free(buffer);
    let gbps = |s: f64| size as f64 / s / 1e9;
    (gbps(upload), gbps(read))
}

fn main() {
    let staged = backend(false);
    let direct = backend(true);
    println!("adapter: {}", direct.adapter());
    println!(
        "unified memory: {}, zero-copy granted: {}",
        direct.capabilities().unified_memory,
        direct.zero_copy()
    );
    let small = std::env::args().any(|a| a == "--small");
    let sizes: &[usize] = if small {
        &[64 << 10, 1 << 20, 16 << 20]
    } else {
        &[64 << 10, 1 << 20, 16 << 20, 64 << 20]
    };
    println!("| size | op | staged GB/s | zero-copy GB/s | speed-up |");
    println!("|---|---|---|---|---|");
    for &size in sizes {
        let (su, sr) = measure(&staged, size);
        let (du, dr) = measure(&direct, size);
        let label = wgmem::memory::human_bytes(size as u64);
        println!("| {label} | upload | {su:.2} | {du:.2} | {:.2}x |", du / su);
        println!("| {label} | read | {sr:.2} | {dr:.2} | {:.2}x |", dr / sr);
    }
    let counts = direct.transfer_counts();
    println!(
        "zero-copy backend: {} direct / {} staged writes, {} direct / {} staged reads",
        counts.direct_writes, counts.staged_writes, counts.direct_reads, counts.staged_reads
    );
}
