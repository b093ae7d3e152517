//! One conformance suite for every [`Backend`]: the same test bodies run on `HostBackend` and
//! on `WgpuBackend` (lavapipe in CI), through the `conformance!` macro at the bottom.
//! They pin down the rules in `wgmem::backend`'s module docs: size checks, zeroed memory,
//! alignment, bounds, ordering of writes, copies and reads, and the submission counters.

mod common;

use wgmem::{Backend, BufferUsage, Error};

fn rejects_zero_and_oversized_allocations<B: Backend>(b: &B) {
    assert!(matches!(
        b.allocate(0, BufferUsage::Storage),
        Err(Error::ZeroSize)
    ));
    let max = b.capabilities().max_buffer_size;
    match b.allocate(max + 1, BufferUsage::Storage) {
        Err(Error::TooLarge { requested, max: m }) => {
            assert_eq!(requested, max + 1);
            assert_eq!(m, max);
        }
        other => panic!("expected TooLarge, got {:?}", other.map(|_| ())),
    }
    let msg = b
        .allocate(max + 1, BufferUsage::Storage)
        .err()
        .unwrap()
        .to_string();
    assert!(
        msg.contains(&max.to_string()),
        "the error names the limit: {msg}"
    );
}

fn rounds_sizes_up_and_zeroes_memory<B: Backend>(b: &B) {
    let buf = b.allocate(5, BufferUsage::Storage).unwrap();
    assert_eq!(b.size(&buf), 8);
    let mut out = [0xAAu8; 8];
    b.read(&buf, 0, &mut out).unwrap();
    assert_eq!(out, [0u8; 8]);
    b.free(buf);
}

fn write_then_read_round_trips_at_any_offset<B: Backend>(b: &B) {
    let n = 1037; // not a multiple of anything
    let data: Vec<u8> = (0..n * 4).map(|i| (i * 7 % 251) as u8).collect();
    let buf = b
        .allocate(data.len() as u64 + 64, BufferUsage::Storage)
        .unwrap();
    b.write(&buf, 16, &data).unwrap();
    let mut out = vec![0u8; data.len()];
    b.read(&buf, 16, &mut out).unwrap();
    assert_eq!(out, data);
    // Reads need no alignment.
    let mut odd = vec![0u8; 5];
    b.read(&buf, 16 + 3, &mut odd).unwrap();
    assert_eq!(odd, data[3..8]);
    b.free(buf);
}

fn reads_larger_than_one_staging_chunk<B: Backend>(b: &B) {
    let n = (20 << 20) / 4 + 3;
    let data: Vec<u32> = (0..n as u32).map(|i| i.wrapping_mul(2654435761)).collect();
    let buf = b.allocate(n as u64 * 4, BufferUsage::Storage).unwrap();
    b.write(&buf, 0, bytemuck::cast_slice(&data)).unwrap();
    let mut out = vec![0u32; n];
    b.read(&buf, 0, bytemuck::cast_slice_mut(&mut out)).unwrap();
    assert!(out == data, "20 MiB read differs");
    b.free(buf);
}

fn rejects_misaligned_and_out_of_bounds_access<B: Backend>(b: &B) {
    let buf = b.allocate(64, BufferUsage::Storage).unwrap();
    assert!(matches!(
        b.write(&buf, 2, &[0; 4]),
        Err(Error::Misaligned { what: "offset", .. })
    ));
    assert!(matches!(
        b.write(&buf, 0, &[0; 3]),
        Err(Error::Misaligned { what: "length", .. })
    ));
    assert!(matches!(
        b.write(&buf, 60, &[0; 8]),
        Err(Error::OutOfBounds {
            offset: 60,
            len: 8,
            size: 64,
            ..
        })
    ));
    let mut out = [0u8; 8];
    assert!(matches!(
        b.read(&buf, 60, &mut out),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        b.read(&buf, u64::MAX - 2, &mut out),
        Err(Error::OutOfBounds { .. })
    ));
    b.free(buf);
}

fn copies_between_buffers_in_order<B: Backend>(b: &B) {
    let src = b.allocate(256, BufferUsage::Storage).unwrap();
    let dst = b.allocate(256, BufferUsage::Storage).unwrap();
    let data: Vec<u8> = (0..128).collect();
    b.write(&src, 0, &data).unwrap();
    b.copy(&src, 0, &dst, 64, 128).unwrap();
    // A write after the copy must not be seen by the copy.
    b.write(&src, 0, &[9u8; 128]).unwrap();
    let mut out = vec![0u8; 128];
    b.read(&dst, 64, &mut out).unwrap();
    assert_eq!(out, data);
    assert!(matches!(
        b.copy(&src, 0, &src, 128, 64),
        Err(Error::SameBuffer)
    ));
    assert!(matches!(
        b.copy(&src, 200, &dst, 0, 64),
        Err(Error::OutOfBounds { .. })
    ));
    assert!(matches!(
        b.copy(&src, 0, &dst, 0, 6),
        Err(Error::Misaligned { .. })
    ));
    b.free(src);
    b.free(dst);
}

fn completes_submitted_work<B: Backend>(b: &B) {
    let src = b.allocate(64, BufferUsage::Storage).unwrap();
    let dst = b.allocate(64, BufferUsage::Storage).unwrap();
    b.copy(&src, 0, &dst, 0, 64).unwrap();
    b.wait_idle().unwrap();
    let last = b.last_submission();
    assert!(last >= 1, "a copy is submitted work");
    assert!(b.completed_submission() >= last);
    b.free(src);
    b.free(dst);
}

fn reports_capabilities<B: Backend>(b: &B) {
    let caps = b.capabilities();
    assert_eq!(caps.copy_alignment, 4);
    assert!(caps.max_buffer_size >= 1 << 20);
    assert!(caps.memory_budget > 0);
    assert!(!b.adapter().name.is_empty());
}

fn is_usable_from_many_threads<B: Backend>(b: &B) {
    std::thread::scope(|s| {
        for t in 0..4u8 {
            s.spawn(move || {
                for i in 0..8u8 {
                    let buf = b.allocate(1024, BufferUsage::Storage).unwrap();
                    let data = vec![t ^ i; 1024];
                    b.write(&buf, 0, &data).unwrap();
                    let mut out = vec![0u8; 1024];
                    b.read(&buf, 0, &mut out).unwrap();
                    assert_eq!(out, data);
                    b.free(buf);
                }
            });
        }
    });
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            conformance!(@tests $make;
                rejects_zero_and_oversized_allocations,
                rounds_sizes_up_and_zeroes_memory,
                write_then_read_round_trips_at_any_offset,
                reads_larger_than_one_staging_chunk,
                rejects_misaligned_and_out_of_bounds_access,
                copies_between_buffers_in_order,
                completes_submitted_work,
                reports_capabilities,
                is_usable_from_many_threads,
            );
        }
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(#[test] fn $name() { let b = $make; super::$name(&*b); })*
    };
}

conformance!(host, std::sync::Arc::new(wgmem::HostBackend::new()));
// Each test gets its own device so that submission counters see only its own work.
conformance!(wgpu, crate::common::fresh_gpu_backend());
