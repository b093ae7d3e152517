//! The memory manager's graded response to pressure: Warning evicts about half of the cache,
//! least recently used first; Critical empties it and runs the cleanup callbacks in priority
//! order; the budget source drives both from real allocations, on the host and on the GPU.

mod common;

use std::sync::{Arc, Mutex};
use wgmem::memory::{CleanupReason, MemoryManager};
use wgmem::pressure::{PressureLevel, PressureMonitor, SimulatedSource};
use wgmem::{Backend, BufferUsage, HostBackend};

const KIB: u64 = 1024;

#[test]
fn simulated_warning_evicts_half_lru_first_and_critical_empties_and_cleans() {
    let backend = Arc::new(HostBackend::new());
    let m = MemoryManager::new(Arc::clone(&backend));
    // Eight cached buffers of 64 KiB, released oldest first.
    let bufs: Vec<_> = (0..8)
        .map(|_| m.acquire(64 * KIB, BufferUsage::Storage, "x").unwrap())
        .collect();
    let order: Vec<u64> = bufs.iter().map(|b| b.raw().id()).collect();
    drop(bufs);
    assert_eq!(m.stats().cached_bytes, 512 * KIB);

    let calls = Arc::new(Mutex::new(Vec::new()));
    for (name, priority) in [("second", 1), ("first", 9)] {
        let calls = Arc::clone(&calls);
        m.register_cleanup(name, priority, move |req| {
            assert_eq!(req.reason, CleanupReason::CriticalPressure);
            calls.lock().unwrap().push(name);
        });
    }
    let source = SimulatedSource::new("test");
    let level = source.handle();
    let mut monitor = PressureMonitor::new();
    monitor.add_source(source);
    monitor.add_responder(Arc::new(m.clone()));

    level.set(PressureLevel::Warning);
    let change = monitor.poll().expect("a change");
    assert_eq!(change.to, PressureLevel::Warning);
    assert_eq!(m.stats().cached_bytes, 256 * KIB, "half evicted");
    // The survivors are the four most recently released: reacquiring gets them back.
    let again: Vec<_> = (0..4)
        .map(|_| m.acquire(64 * KIB, BufferUsage::Storage, "x").unwrap())
        .collect();
    let kept: Vec<u64> = again.iter().map(|b| b.raw().id()).collect();
    assert_eq!(m.stats().pool_misses, 8, "all four were hits");
    drop(again);
    let mut expected = order[4..].to_vec();
    expected.reverse();
    assert_eq!(kept, expected, "least recently used evicted first");
    assert!(calls.lock().unwrap().is_empty(), "warning runs no cleanup");

    level.set(PressureLevel::Critical);
    assert_eq!(monitor.poll().unwrap().to, PressureLevel::Critical);
    assert_eq!(m.stats().cached_bytes, 0);
    assert_eq!(*calls.lock().unwrap(), vec!["first", "second"]);
    level.set(PressureLevel::Normal);
    assert_eq!(monitor.poll().unwrap().to, PressureLevel::Normal);
    assert!(monitor.poll().is_none(), "no change, no report");
    assert_eq!(m.stats().pressure_events, 3);
    assert_eq!(backend.allocated_bytes(), 0);
}

fn budget_drives_levels<B: Backend>(backend: Arc<B>) {
    let m = MemoryManager::new(backend);
    let budget = 1024 * KIB;
    let mut monitor = PressureMonitor::new();
    monitor.add_source(m.budget_source(Some(budget)));
    monitor.add_responder(Arc::new(m.clone()));
    assert!(monitor.poll().is_none());
    // 16 x 52 KiB (a class of its own) = 832 KiB = 81%: Warning.
    let mut held: Vec<_> = (0..16)
        .map(|_| m.acquire(52 * KIB, BufferUsage::Storage, "x").unwrap())
        .collect();
    assert_eq!(monitor.poll().map(|c| c.to), Some(PressureLevel::Warning));
    // 19 x 52 = 988 KiB = 96.5%: Critical.
    held.extend((0..3).map(|_| m.acquire(52 * KIB, BufferUsage::Storage, "x").unwrap()));
    assert_eq!(monitor.poll().map(|c| c.to), Some(PressureLevel::Critical));
    // Freeing live buffers moves them to the cache; critical had emptied it, so now the
    // cache holds what was freed and the level stays until the response frees it.
    held.truncate(10); // 520 KiB live, 468 KiB cached: still 96.5%
    let change = monitor.poll();
    assert!(
        change.is_none() || change.unwrap().to != PressureLevel::Normal,
        "still 98%: no return yet"
    );
    m.clear_cache(); // 520 KiB = 51%
    assert_eq!(monitor.poll().map(|c| c.to), Some(PressureLevel::Normal));
    assert_eq!(monitor.counts().changes(), 3);
}

#[test]
fn budget_source_drives_warning_and_critical_on_the_host() {
    budget_drives_levels(Arc::new(HostBackend::new()));
}

#[test]
fn budget_source_drives_warning_and_critical_on_the_gpu() {
    budget_drives_levels(common::fresh_gpu_backend());
}
