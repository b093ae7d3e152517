//! Zero-copy on unified memory: storage buffers mapped directly for writes and reads.
//!
//! On the GPU backend (lavapipe in CI: a CPU device, so unified, with
//! `MAPPABLE_PRIMARY_BUFFERS`), a backend with zero-copy and one without write and read the same
//! random bytes at unaligned offsets and lengths, through tensors, and through a kernel, and
//! must give the same bytes; the transfer counters show which path each took. On
//! `HostBackend` with completion held back, a write or read made while a submission is in
//! flight never takes the direct path, and does once the work has completed.

mod common;

use std::sync::Arc;
use wgmem::backend::TransferCounts;
use wgmem::compute::copy;
use wgmem::{
    Backend, BufferUsage, Context, Error, Gpu, HostBackend, MemoryConfig, WgpuBackend,
    WgpuBackendOptions,
};

fn backend(zero_copy: bool) -> Arc<WgpuBackend> {
    let backend = WgpuBackend::with_options(WgpuBackendOptions {
        zero_copy: Some(zero_copy),
        ..WgpuBackendOptions::default()
    })
    .expect("the GPU tests need an adapter");
    eprintln!(
        "GPU test runs on: {} (zero-copy {})",
        backend.adapter(),
        backend.zero_copy()
    );
    Arc::new(backend)
}

/// Random bytes from the shared generator.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = common::Rng::new(seed);
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn lavapipe_is_unified_and_grants_zero_copy() {
    let direct = backend(true);
    let staged = backend(false);
    assert!(direct.capabilities().unified_memory);
    assert!(
        direct.zero_copy(),
        "a CPU adapter ({}) offers MAPPABLE_PRIMARY_BUFFERS; zero-copy should be on",
        direct.adapter()
    );
    assert!(!staged.zero_copy());
}

#[test]
fn direct_writes_and_reads_give_the_same_bytes_as_staging() {
    let direct = backend(true);
    let staged = backend(false);
    let size = 3 * 4096 + 20; // not a multiple of anything the backends align to
    let (a, b) = (
        direct.allocate(size, BufferUsage::Storage).unwrap(),
        staged.allocate(size, BufferUsage::Storage).unwrap(),
    );
    // Writes at offsets that are multiples of 8 (mappable) and of 4 only (staged even with
    // zero-copy), of lengths that are multiples of 4.
    for (i, (offset, len)) in [
        (0u64, 4096usize),
        (8, 1000),
        (4, 36),
        (4104, 8192),
        (12284, 20),
    ]
    .into_iter()
    .enumerate()
    {
        let data = bytes(i as u64, len);
        direct.write(&a, offset, &data).unwrap();
        staged.write(&b, offset, &data).unwrap();
    }
    // Reads of the whole buffer and of unaligned pieces.
    for (offset, len) in [(0u64, size as usize), (1, 7), (13, 4099), (size - 3, 3)] {
        let (mut x, mut y) = (vec![0u8; len], vec![1u8; len]);
        direct.read(&a, offset, &mut x).unwrap();
        staged.read(&b, offset, &mut y).unwrap();
        assert_eq!(x, y, "read of {len} bytes at {offset}");
    }
    // The write at offset 4 goes through the queue; until a submit carries it, later writes
    // must queue behind it (a mapped write would land first), and the first read submits it
    // through the staged path. After that, reads map.
    let counts = direct.transfer_counts();
    assert_eq!(
        (counts.direct_writes, counts.staged_writes),
        (2, 3),
        "{counts:?}"
    );
    assert_eq!(
        (counts.direct_reads, counts.staged_reads),
        (3, 1),
        "{counts:?}"
    );
    let none = staged.transfer_counts();
    assert_eq!((none.direct_writes, none.direct_reads), (0, 0), "{none:?}");
    direct.free(a);
    staged.free(b);
}

#[test]
fn a_kernel_sees_a_direct_write_and_a_direct_read_sees_the_kernel() {
    let direct = backend(true);
    let gpu = Gpu::new(Arc::clone(&direct)).unwrap();
    let n = 1000usize;
    let input: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
    let (src, dst) = (
        direct.allocate(4 * n as u64, BufferUsage::Storage).unwrap(),
        direct.allocate(4 * n as u64, BufferUsage::Storage).unwrap(),
    );
    direct.write(&src, 0, bytemuck::cast_slice(&input)).unwrap();
    copy(&gpu, &src, &dst, n).unwrap();
    let mut out = vec![0f32; n];
    direct
        .read(&dst, 0, bytemuck::cast_slice_mut(&mut out))
        .unwrap();
    assert_eq!(out, input);
    // A second write while the copy's result is read back: ordering holds either way.
    let twice: Vec<f32> = input.iter().map(|x| 2.0 * x).collect();
    direct.write(&src, 0, bytemuck::cast_slice(&twice)).unwrap();
    copy(&gpu, &src, &dst, n).unwrap();
    direct
        .read(&dst, 0, bytemuck::cast_slice_mut(&mut out))
        .unwrap();
    assert_eq!(out, twice);
    let counts = direct.transfer_counts();
    assert!(
        counts.direct_writes >= 1 && counts.direct_reads >= 1,
        "{counts:?}"
    );
}

#[test]
fn tensors_upload_and_read_the_same_values_with_and_without_zero_copy() {
    let rows = 37;
    let cols = 29;
    let mut rng = common::Rng::new(7);
    let values = rng.vec(rows * cols);
    let labels: Vec<u32> = (0..rows as u32).map(|i| i * 3 % 10).collect();
    let mut seen = Vec::new();
    for zero_copy in [true, false] {
        let ctx = Context::new(backend(zero_copy), MemoryConfig::default()).unwrap();
        let t = ctx.from_slice(&values, &[rows, cols], "data").unwrap();
        let l = ctx.upload_u32(&labels, "labels").unwrap();
        seen.push((t.to_vec().unwrap(), ctx.read_u32(&l, rows).unwrap()));
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0].0, values);
    assert_eq!(seen[0].1, labels);
}

#[test]
fn bad_input_is_a_typed_error_on_the_direct_path_too() {
    let direct = backend(true);
    let buffer = direct.allocate(64, BufferUsage::Storage).unwrap();
    assert!(matches!(
        direct.write(&buffer, 60, &[0; 8]),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        direct.write(&buffer, 2, &[0; 4]),
        Err(Error::Misaligned { .. })
    ));
    let mut out = [0u8; 8];
    assert!(matches!(
        direct.read(&buffer, 60, &mut out),
        Err(Error::OutOfBounds { .. })
    ));
    // A failed call leaves nothing mapped: the buffer still works both ways.
    direct.write(&buffer, 0, &[9; 8]).unwrap();
    direct.read(&buffer, 0, &mut out).unwrap();
    assert_eq!(out, [9; 8]);
}

#[test]
fn a_buffer_in_flight_is_not_mapped_on_the_host_backend() {
    let host = HostBackend::new().with_zero_copy(true);
    let buffer = host.allocate(64, BufferUsage::Storage).unwrap();
    let other = host.allocate(64, BufferUsage::Storage).unwrap();
    let mut out = [0u8; 8];

    // Idle: both directions map.
    host.write(&buffer, 0, &[1; 8]).unwrap();
    host.read(&buffer, 0, &mut out).unwrap();
    assert_eq!(host.last_submission(), 0, "a direct write submits nothing");
    assert_eq!(counts(&host), (1, 0, 1, 0));

    // Work in flight (a copy whose completion is held back): neither maps.
    host.hold_completion(true);
    host.copy(&other, 0, &buffer, 8, 8).unwrap();
    assert!(host.completed_submission() < host.last_submission());
    host.write(&buffer, 16, &[2; 8]).unwrap();
    host.read(&buffer, 16, &mut out).unwrap();
    assert_eq!(out, [2; 8]);
    assert_eq!(counts(&host), (1, 1, 1, 1));
    // The staged write is itself work in flight.
    assert_eq!(host.last_submission(), 2);

    // Completed: the next ones map again.
    host.complete_all();
    host.write(&buffer, 24, &[3; 8]).unwrap();
    host.read(&buffer, 24, &mut out).unwrap();
    assert_eq!(out, [3; 8]);
    assert_eq!(counts(&host), (2, 1, 2, 1));
    host.hold_completion(false);

    // A buffer no submission uses maps even while work is in flight.
    host.hold_completion(true);
    host.copy(&other, 0, &buffer, 8, 8).unwrap();
    host.write_unused(&other, 0, &[4; 8]).unwrap();
    assert_eq!(counts(&host), (3, 1, 2, 1));
    host.hold_completion(false);

    // Without zero-copy every transfer is staged.
    let plain = HostBackend::new();
    let b = plain.allocate(8, BufferUsage::Storage).unwrap();
    plain.write(&b, 0, &[1; 8]).unwrap();
    plain.read(&b, 0, &mut out).unwrap();
    assert_eq!(counts(&plain), (0, 1, 0, 1));
}

/// `(direct writes, staged writes, direct reads, staged reads)`.
fn counts(host: &HostBackend) -> (u64, u64, u64, u64) {
    let TransferCounts {
        direct_writes,
        staged_writes,
        direct_reads,
        staged_reads,
    } = host.transfer_counts();
    (direct_writes, staged_writes, direct_reads, staged_reads)
}

#[test]
fn the_trainer_maps_its_batches_directly_and_learns_the_same_as_with_staging() {
    use wgmem::data::Dataset;
    use wgmem::nn::{Linear, Sequential};
    use wgmem::optim::Sgd;
    use wgmem::{Trainer, TrainerConfig};

    let (rows, features) = (101, 13);
    let mut rng = common::Rng::new(11);
    let x = rng.vec(rows * features);
    let labels: Vec<u32> = (0..rows as u32).map(|i| i % 3).collect();
    let data = Dataset::new(x, labels, features).unwrap();
    let mut runs = Vec::new();
    for zero_copy in [true, false] {
        let backend = backend(zero_copy);
        let ctx = Context::new(Arc::clone(&backend), MemoryConfig::default()).unwrap();
        let model = Sequential::new()
            .with(Linear::new(&ctx, features, 17, 1).unwrap().with_relu())
            .with(Linear::new(&ctx, 17, 3, 2).unwrap());
        let config = TrainerConfig {
            epochs: 2,
            batch_size: 32,
            ..TrainerConfig::default()
        };
        let mut trainer = Trainer::new(
            Arc::clone(&ctx),
            model,
            Box::new(Sgd::new(0.1, 0.9)),
            config,
        )
        .unwrap();
        let before = backend.transfer_counts();
        let report = trainer.fit(&data, None, |_| {}).unwrap();
        let during = backend.transfer_counts();
        eprintln!("zero-copy {zero_copy}: {during:?}\n{report}");
        runs.push((
            report
                .epochs
                .iter()
                .map(|e| e.train_loss)
                .collect::<Vec<_>>(),
            during.direct_writes - before.direct_writes,
            report.steps,
        ));
        if cfg!(target_os = "linux") {
            assert!(
                report.memory.footprint.is_some(),
                "the report shows the footprint"
            );
        }
    }
    let (direct_losses, direct_writes, steps) = &runs[0];
    let (staged_losses, staged_direct, _) = &runs[1];
    // The same bytes reach the kernels, so the same losses come out, to the bit.
    assert_eq!(direct_losses, staged_losses);
    // Each step uploads its features and labels into buffers just taken from the pool, which
    // no submission uses: they map even with the last step's update still in flight.
    assert!(
        *direct_writes >= 2 * *steps,
        "{direct_writes} direct writes in {steps} steps"
    );
    assert_eq!(*staged_direct, 0);
}

#[test]
fn a_pooled_buffer_maps_until_it_is_lent_to_the_gpu() {
    use wgmem::MemoryManager;
    let host = Arc::new(HostBackend::new().with_zero_copy(true));
    let manager = MemoryManager::new(Arc::clone(&host));
    let busy = manager.acquire(64, BufferUsage::Storage, "busy").unwrap();
    let fresh = manager.acquire(64, BufferUsage::Storage, "fresh").unwrap();
    host.hold_completion(true);
    host.copy(fresh.raw(), 0, busy.raw(), 0, 8).unwrap(); // work in flight that uses both
    let upload = manager.acquire(64, BufferUsage::Storage, "upload").unwrap();
    // Just acquired, never lent out: mapped although work is in flight.
    upload.write(0, &[5; 64]).unwrap();
    assert_eq!(counts(&host), (1, 0, 0, 0));
    // Lent to that work: staged.
    fresh.write(0, &[6; 64]).unwrap();
    assert_eq!(counts(&host), (1, 1, 0, 0));
    let mut out = [0u8; 64];
    upload.read(0, &mut out).unwrap();
    assert_eq!(out, [5; 64]);
    host.hold_completion(false);
}
