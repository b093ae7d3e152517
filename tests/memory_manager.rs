//! MemoryManager behaviour: out-of-memory recovery in its steps, cleanup callbacks, limits,
//! pool reuse and waste, scratch and workspaces, concurrency. Exact checks on `HostBackend`;
//! the main paths again on the GPU (lavapipe in CI).

mod common;

use std::sync::{Arc, Mutex};
use wgmem::memory::{CleanupReason, MemoryConfig, MemoryManager, Workspace};
use wgmem::{Backend, BufferUsage, Error, HostBackend};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

fn host(limit: Option<u64>) -> (Arc<HostBackend>, MemoryManager<HostBackend>) {
    let backend = Arc::new(HostBackend::new());
    let config = MemoryConfig {
        hard_limit: limit,
        ..MemoryConfig::default()
    };
    let manager = MemoryManager::with_config(Arc::clone(&backend), config).unwrap();
    (backend, manager)
}

#[test]
fn a_miss_over_the_hard_limit_evicts_least_recently_used_cache_first() {
    let (backend, m) = host(Some(MIB));
    let a = m.acquire(256 * KIB, BufferUsage::Storage, "a").unwrap();
    let b = m.acquire(256 * KIB, BufferUsage::Storage, "b").unwrap();
    let c = m.acquire(128 * KIB, BufferUsage::Storage, "c").unwrap();
    drop(a); // oldest in cache
    drop(c);
    drop(b);
    assert_eq!(m.stats().cached_bytes, 640 * KIB);
    // 768 KiB needs 768 KiB free: evicting a (256) and c (128) leaves b cached: 256 + 768 = 1 MiB.
    let big = m.acquire(768 * KIB, BufferUsage::Storage, "big").unwrap();
    let s = m.stats();
    assert_eq!(s.evictions, 2);
    assert_eq!(s.evicted_bytes, 384 * KIB);
    assert_eq!(
        s.cached_bytes,
        256 * KIB,
        "b, the most recently used, stays"
    );
    assert_eq!(s.retries, 0);
    assert_eq!(backend.allocated_bytes(), MIB);
    // b is still reusable.
    drop(big);
    let again = m.acquire(256 * KIB, BufferUsage::Storage, "b").unwrap();
    assert_eq!(m.stats().pool_hits, 1);
    drop(again);
}

#[test]
fn cleanup_callbacks_run_in_priority_order_and_can_free_memory() {
    let (_, m) = host(Some(MIB));
    let held = Arc::new(Mutex::new(Some(
        m.acquire(MIB / 2, BufferUsage::Storage, "activations")
            .unwrap(),
    )));
    let order = Arc::new(Mutex::new(Vec::new()));
    for (name, priority) in [("low", 1), ("high", 10), ("mid", 5)] {
        let order = Arc::clone(&order);
        let held = Arc::clone(&held);
        m.register_cleanup(name, priority, move |req| {
            assert!(matches!(req.reason, CleanupReason::OutOfMemory { .. }));
            order.lock().unwrap().push(name);
            if name == "mid" {
                held.lock().unwrap().take(); // drop cached activations
            }
        });
    }
    let _x = m.acquire(MIB / 2, BufferUsage::Storage, "x").unwrap();
    let big = m
        .acquire(MIB / 2, BufferUsage::Storage, "y")
        .expect("cleanup freed enough");
    assert_eq!(*order.lock().unwrap(), vec!["high", "mid", "low"]);
    assert!(m.stats().retries >= 2, "evict, wait, then cleanup");
    drop(big);
}

#[test]
fn out_of_memory_reports_request_stats_and_largest_allocations() {
    let (_, m) = host(Some(MIB));
    let _a = m
        .acquire(512 * KIB, BufferUsage::Storage, "params")
        .unwrap();
    let _b = m
        .acquire(256 * KIB, BufferUsage::Storage, "optimizer")
        .unwrap();
    let err = m
        .acquire(300 * KIB, BufferUsage::Storage, "activations")
        .unwrap_err();
    let Error::OutOfMemory(report) = &err else {
        panic!("expected OOM, got {err}")
    };
    assert_eq!(report.requested, 320 * KIB, "the class of 300 KiB");
    assert_eq!(report.limit, Some(MIB));
    assert_eq!(report.stats.ooms, 1);
    assert_eq!(
        report.largest,
        vec![
            ("params".to_string(), 512 * KIB),
            ("optimizer".to_string(), 256 * KIB)
        ]
    );
    let msg = err.to_string();
    assert!(
        msg.contains("320.00 KiB") && msg.contains("params"),
        "{msg}"
    );
    assert!(err.is_out_of_memory());
    // The account is unchanged by the failure.
    assert_eq!(m.stats().live_bytes, 768 * KIB);
}

#[test]
fn a_request_larger_than_the_limit_fails_even_with_an_empty_pool() {
    let (_, m) = host(Some(MIB));
    assert!(matches!(
        m.acquire(2 * MIB, BufferUsage::Storage, "x"),
        Err(Error::OutOfMemory(_))
    ));
    assert!(matches!(
        m.acquire(0, BufferUsage::Storage, "x"),
        Err(Error::ZeroSize)
    ));
    assert!(matches!(
        m.acquire(u64::MAX, BufferUsage::Storage, "x"),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn device_out_of_memory_evicts_caches_and_retries() {
    let backend = Arc::new(HostBackend::with_capacity(MIB));
    let m = MemoryManager::new(Arc::clone(&backend));
    drop(m.acquire(512 * KIB, BufferUsage::Storage, "a").unwrap());
    drop(m.acquire(384 * KIB, BufferUsage::Storage, "b").unwrap());
    // No manager limit: the device itself refuses until the cache is freed.
    let c = m
        .acquire(768 * KIB, BufferUsage::Storage, "c")
        .expect("recovered by eviction");
    assert!(m.stats().evictions >= 1);
    let _d = m.acquire(128 * KIB, BufferUsage::Storage, "d").unwrap();
    let err = m.acquire(512 * KIB, BufferUsage::Storage, "e").unwrap_err();
    let Error::OutOfMemory(report) = err else {
        panic!()
    };
    assert!(report.device_message.unwrap().contains("capacity"));
    drop(c);
}

#[test]
fn soft_limit_trims_the_cache_on_release() {
    let backend = Arc::new(HostBackend::new());
    let m = MemoryManager::with_config(
        Arc::clone(&backend),
        MemoryConfig::default().with_soft_limit(MIB),
    )
    .unwrap();
    let bufs: Vec<_> = (0..4)
        .map(|_| m.acquire(512 * KIB, BufferUsage::Storage, "x").unwrap())
        .collect();
    assert_eq!(
        m.stats().live_bytes,
        2 * MIB,
        "the soft limit does not refuse allocations"
    );
    drop(bufs);
    assert_eq!(m.stats().cached_bytes, MIB);
    assert_eq!(backend.allocated_bytes(), MIB);
}

#[test]
fn invalid_configuration_is_a_typed_error() {
    let b = Arc::new(HostBackend::new());
    let bad = [
        MemoryConfig::default().with_hard_limit(0),
        MemoryConfig::default()
            .with_hard_limit(MIB)
            .with_soft_limit(2 * MIB),
        MemoryConfig {
            max_reuse_ratio: 0.5,
            ..MemoryConfig::default()
        },
        MemoryConfig {
            max_reuse_ratio: f64::NAN,
            ..MemoryConfig::default()
        },
    ];
    for config in bad {
        assert!(matches!(
            MemoryManager::with_config(Arc::clone(&b), config),
            Err(Error::InvalidArgument { .. })
        ));
    }
    let m = MemoryManager::new(b);
    assert!(m.set_hard_limit(Some(0)).is_err());
}

#[test]
fn steady_state_reuses_everything_and_waste_stays_bounded() {
    let (backend, m) = host(None);
    let sizes = [300u64, 4000, 65_537, 1_000_003, 3 * MIB + 5];
    for step in 0..10 {
        let bufs: Vec<_> = sizes
            .iter()
            .map(|&s| m.acquire(s, BufferUsage::Storage, "step").unwrap())
            .collect();
        for (b, &s) in bufs.iter().zip(&sizes) {
            assert!(b.size() as f64 / s as f64 <= m.size_classes().waste_bound());
        }
        if step == 0 {
            assert_eq!(backend.allocation_count(), sizes.len() as u64);
        }
    }
    assert_eq!(
        backend.allocation_count(),
        sizes.len() as u64,
        "no allocation after the first step"
    );
    let s = m.stats();
    assert_eq!(s.pool_hits, 45);
    assert_eq!(s.pool_misses, 5);
    assert!((s.hit_rate() - 0.9).abs() < 1e-12);
}

#[test]
fn waste_bound_holds_for_every_request_in_a_sweep() {
    let (_, m) = host(None);
    let bound = m.size_classes().waste_bound();
    let mut size = 257u64;
    while size < 64 * MIB {
        let b = m.acquire(size, BufferUsage::Storage, "sweep").unwrap();
        assert!(
            (b.size() as f64) / (size as f64) < bound,
            "size {size} class {}",
            b.size()
        );
        drop(b);
        m.clear_cache();
        size = size * 9 / 8 + 1;
    }
}

#[test]
fn temporary_buffers_and_workspaces_return_to_the_pool() {
    let (backend, m) = host(None);
    let total = m.with_temporary_buffers(3, 4096, |bufs| {
        assert_eq!(bufs.len(), 3);
        bufs.iter().map(|b| b.size()).sum::<u64>()
    });
    assert_eq!(total.unwrap(), 3 * 4096);
    assert_eq!(m.stats().live_bytes, 0);
    assert_eq!(m.stats().cached_bytes, 3 * 4096);

    let mut ws = Workspace::new(&m, "workspace");
    let first = ws.buffer("matmul", 10_000).unwrap().id();
    assert_eq!(
        ws.buffer("matmul", 9_000).unwrap().id(),
        first,
        "a slot that fits is kept"
    );
    assert_ne!(
        ws.buffer("matmul", 50_000).unwrap().id(),
        first,
        "an outgrown slot is replaced"
    );
    assert_eq!(m.stats().live_for_tag("workspace"), ws.bytes());
    ws.clear();
    assert_eq!(m.stats().live_bytes, 0);
    m.clear_cache();
    assert_eq!(backend.allocated_bytes(), 0);
}

#[test]
fn concurrent_acquire_and_release_keep_the_account_exact() {
    let (backend, m) = host(Some(8 * MIB));
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let m = m.clone();
            s.spawn(move || {
                let mut rng = common::Rng::new(t);
                let mut held = Vec::new();
                for _ in 0..2000 {
                    if rng.next_u64() % 3 != 0 || held.is_empty() {
                        let size = 1 + rng.next_u64() % (256 * KIB);
                        match m.acquire(size, BufferUsage::Storage, "stress") {
                            Ok(b) => held.push(b),
                            Err(Error::OutOfMemory(_)) => held.clear(),
                            Err(e) => panic!("{e}"),
                        }
                    } else {
                        let i = (rng.next_u64() as usize) % held.len();
                        held.swap_remove(i);
                    }
                }
            });
        }
    });
    let s = m.stats();
    assert_eq!(s.live_bytes, 0, "every buffer came back");
    assert_eq!(s.cached_bytes, backend.allocated_bytes());
    assert!(
        s.peak_reserved_bytes <= 8 * MIB,
        "the hard limit held under concurrency"
    );
    m.clear_cache();
    assert_eq!(backend.allocated_bytes(), 0, "nothing leaked");
}

mod gpu {
    use super::*;
    use wgmem::WgpuBackend;

    fn manager() -> (Arc<WgpuBackend>, MemoryManager<WgpuBackend>) {
        let backend = common::fresh_gpu_backend();
        (Arc::clone(&backend), MemoryManager::new(backend))
    }

    #[test]
    fn pool_hits_create_no_buffers_after_warm_up() {
        let (backend, m) = manager();
        m.prewarm(&[4096, MIB], BufferUsage::Storage).unwrap();
        let created = backend.buffers_created();
        for _ in 0..50 {
            let a = m.acquire(4000, BufferUsage::Storage, "a").unwrap();
            let b = m.acquire(MIB - 7, BufferUsage::Storage, "b").unwrap();
            a.write(0, &[7; 64]).unwrap();
            drop((a, b));
        }
        assert_eq!(backend.buffers_created(), created);
        assert_eq!(m.stats().pool_misses, 2, "only the prewarm missed");
    }

    #[test]
    fn a_buffer_in_unsubmitted_work_is_not_reused_until_that_work_completes() {
        // A ratio of infinity: the pool allocates beside the in-flight buffer, never waits.
        let backend = common::fresh_gpu_backend();
        let config = MemoryConfig {
            in_flight_ratio: f64::INFINITY,
            ..MemoryConfig::default()
        };
        let m = MemoryManager::with_config(Arc::clone(&backend), config).unwrap();
        let src = m.acquire(4096, BufferUsage::Storage, "src").unwrap();
        let dst = m.acquire(4096, BufferUsage::Storage, "dst").unwrap();
        src.write(0, &[5u8; 4096]).unwrap();
        backend.copy(src.raw(), 0, dst.raw(), 0, 4096).unwrap(); // recorded, not submitted
        drop(src);
        let other = m.acquire(4096, BufferUsage::Storage, "other").unwrap();
        assert_eq!(
            m.stats().pool_hits,
            0,
            "the released buffer is still in recorded work"
        );
        assert_eq!(m.stats().pending_waits, 0);
        drop(other);
        backend.wait_idle().unwrap();
        let mut out = [0u8; 4096];
        dst.read(0, &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 5));
        let reused = m.acquire(4096, BufferUsage::Storage, "reused").unwrap();
        assert_eq!(m.stats().pool_hits, 1, "reusable once the work completed");
        drop(reused);
    }

    #[test]
    fn a_request_that_only_an_in_flight_buffer_fits_waits_for_it_instead_of_allocating() {
        // The default ratio (1.25): a second 4 KiB buffer beside the in-flight one would make
        // 12 KiB reserved for 8 KiB live, so the request waits for the copy and reuses it.
        let (backend, m) = manager();
        let src = m.acquire(4096, BufferUsage::Storage, "src").unwrap();
        let dst = m.acquire(4096, BufferUsage::Storage, "dst").unwrap();
        src.write(0, &[5u8; 4096]).unwrap();
        backend.copy(src.raw(), 0, dst.raw(), 0, 4096).unwrap(); // recorded, not submitted
        drop(src);
        let created = backend.buffers_created();
        let other = m.acquire(4096, BufferUsage::Storage, "other").unwrap();
        let s = m.stats();
        assert_eq!((s.pool_hits, s.pending_waits), (1, 1));
        assert_eq!(backend.buffers_created(), created, "no new buffer");
        assert_eq!(s.reserved_bytes(), 2 * 4096);
        // The copy ran before the buffer was handed out again: overwriting it changes nothing.
        other.write(0, &[9u8; 4096]).unwrap();
        let mut out = [0u8; 4096];
        dst.read(0, &mut out).unwrap();
        assert!(out.iter().all(|&b| b == 5));
    }

    #[test]
    fn hard_limit_recovers_and_reports_on_the_gpu() {
        let backend = common::fresh_gpu_backend();
        let m =
            MemoryManager::with_config(backend, MemoryConfig::default().with_hard_limit(4 * MIB))
                .unwrap();
        drop(m.acquire(2 * MIB, BufferUsage::Storage, "a").unwrap());
        let b = m
            .acquire(3 * MIB, BufferUsage::Storage, "b")
            .expect("evicts a");
        assert_eq!(m.stats().evictions, 1);
        let err = m.acquire(2 * MIB, BufferUsage::Storage, "c").unwrap_err();
        assert!(err.is_out_of_memory());
        drop(b);
        assert_eq!(m.stats().live_bytes, 0);
    }
}
