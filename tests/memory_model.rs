//! Property test: random sequences of acquire / release / GPU use / completion / eviction /
//! limit changes on `MemoryManager<HostBackend>`, checked after every step against a plain
//! model: the account equals the sum of live buffers, cached bytes equal what the backend
//! holds beyond them, the hard limit is never crossed, an acquisition fails only when the
//! request truly cannot fit, no buffer is handed out twice, and no buffer is reused before
//! the work that last used it has completed.
//!
//! The model also keeps the buffers it knows are cached (released since the last eviction and
//! not reused; a subset of what the pool holds) and checks the in-flight rule at every pool
//! miss: no known cached buffer that fits was reusable, and when one that fits was still
//! pending, the new buffer kept reserved bytes within `in_flight_ratio` of peak live bytes (so at
//! 1.0 a miss happens only when nothing known to be cached fits).

use proptest::prelude::*;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use wgmem::memory::{ManagedBuffer, MemoryConfig, MemoryManager};
use wgmem::{Backend, BufferUsage, Error, HostBackend};

#[derive(Debug, Clone)]
enum Op {
    Acquire { size: u64, uniform: bool },
    Release(usize),
    Use(usize),
    Complete,
    Evict(f64),
    SetLimit(Option<u64>),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop_oneof![1u64..300, 300u64..5000, 5000u64..70_000], any::<bool>())
            .prop_map(|(size, u)| Op::Acquire { size, uniform: u && size < 1000 }),
        3 => (0usize..64).prop_map(Op::Release),
        2 => (0usize..64).prop_map(Op::Use),
        1 => Just(Op::Complete),
        1 => (0.0f64..=1.0).prop_map(Op::Evict),
        1 => prop_oneof![Just(None), (20_000u64..400_000).prop_map(Some)].prop_map(Op::SetLimit),
        1 => Just(Op::Clear),
    ]
}

struct Model {
    held: Vec<ManagedBuffer<HostBackend>>,
    /// Buffers known to be cached: raw id -> (usage, class, submission stamp of its release).
    /// Emptied by anything that may evict, and not kept while a limit can trim the cache.
    cached: HashMap<u64, (BufferUsage, u64, u64)>,
    /// Submission stamp at which each released buffer id was last released.
    released_at: HashMap<u64, u64>,
    limit: Option<u64>,
}

fn check(manager: &MemoryManager<HostBackend>, backend: &HostBackend, model: &Model) {
    let stats = manager.stats();
    let live: u64 = model.held.iter().map(|b| b.size()).sum();
    assert_eq!(
        stats.live_bytes, live,
        "live bytes equal the sum of held buffers"
    );
    let requested: u64 = model.held.iter().map(|b| b.requested()).sum();
    assert_eq!(stats.requested_live_bytes, requested);
    assert_eq!(
        stats.cached_bytes,
        backend.allocated_bytes() - live,
        "cached bytes equal what the backend holds beyond live"
    );
    if let Some(limit) = model.limit {
        assert!(
            stats.reserved_bytes() <= limit || stats.cached_bytes == 0,
            "reserved {} over limit {limit} with cache",
            stats.reserved_bytes()
        );
    }
    let ids: HashSet<u64> = model.held.iter().map(|b| b.raw().id()).collect();
    assert_eq!(ids.len(), model.held.len(), "no buffer is handed out twice");
    for b in &model.held {
        assert!(b.size() >= b.requested());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn pool_and_account_match_the_model(
        ops in prop::collection::vec(op(), 1..120),
        in_flight_ratio in prop_oneof![Just(1.0), Just(1.25), Just(f64::INFINITY)],
    ) {
        let backend = Arc::new(HostBackend::new());
        backend.hold_completion(true);
        let config = MemoryConfig { in_flight_ratio, ..MemoryConfig::default() };
        let reuse = config.max_reuse_ratio;
        let manager = MemoryManager::with_config(Arc::clone(&backend), config).unwrap();
        let mut model = Model {
            held: Vec::new(),
            cached: HashMap::new(),
            released_at: HashMap::new(),
            limit: None,
        };
        for op in ops {
            match op {
                Op::Acquire { size, uniform } => {
                    let usage = if uniform { BufferUsage::Uniform } else { BufferUsage::Storage };
                    let class = manager.size_classes().class_of(size);
                    let live: u64 = model.held.iter().map(|b| b.size()).sum();
                    let created = backend.allocation_count();
                    let completed = backend.completed_submission();
                    match manager.acquire(size, usage, "test") {
                        Ok(buffer) => {
                            model.cached.remove(&buffer.raw().id());
                            if backend.allocation_count() > created && model.limit.is_none() {
                                let cap = ((class as f64 * reuse) as u64).max(class);
                                let fits: Vec<u64> = model
                                    .cached
                                    .values()
                                    .filter(|(u, c, _)| *u == usage && (class..=cap).contains(c))
                                    .map(|(_, _, stamp)| *stamp)
                                    .collect();
                                prop_assert!(
                                    fits.iter().all(|stamp| *stamp > completed),
                                    "a miss although a fitting cached buffer was reusable"
                                );
                                if !fits.is_empty() {
                                    let s = manager.stats();
                                    prop_assert!(
                                        s.reserved_bytes() as f64 <= in_flight_ratio * s.peak_live_bytes as f64,
                                        "allocated beside an in-flight buffer past the ratio {in_flight_ratio}: \
                                         reserved {} peak live {}",
                                        s.reserved_bytes(),
                                        s.peak_live_bytes
                                    );
                                }
                            }
                            if let Some(limit) = model.limit {
                                prop_assert!(live + buffer.size() <= limit);
                            }
                            if let Some(stamp) = model.released_at.get(&buffer.raw().id()) {
                                prop_assert!(backend.completed_submission() >= *stamp, "reused before its work completed");
                            }
                            prop_assert_eq!(buffer.usage(), usage);
                            model.held.push(buffer);
                        }
                        Err(Error::OutOfMemory(report)) => {
                            let limit = model.limit.expect("no OOM without a limit");
                            prop_assert!(live + class > limit, "OOM although {live} + {class} fits {limit}");
                            prop_assert_eq!(report.limit, Some(limit));
                        }
                        Err(e) => prop_assert!(false, "unexpected error {e}"),
                    }
                }
                Op::Release(i) if !model.held.is_empty() => {
                    let buffer = model.held.swap_remove(i % model.held.len());
                    let stamp = backend.last_submission();
                    model.released_at.insert(buffer.raw().id(), stamp);
                    if model.limit.is_none() {
                        model.cached.insert(buffer.raw().id(), (buffer.usage(), buffer.size(), stamp));
                    }
                }
                Op::Use(i) if !model.held.is_empty() => {
                    let buffer = &model.held[i % model.held.len()];
                    buffer.write(0, &[1, 2, 3, 4]).unwrap();
                }
                Op::Complete => backend.complete_all(),
                Op::Evict(f) => {
                    model.cached.clear();
                    let before = manager.stats().cached_bytes;
                    let freed = manager.evict_fraction(f);
                    prop_assert!(freed as f64 >= (before as f64 * f).floor());
                    prop_assert_eq!(manager.stats().cached_bytes, before - freed);
                }
                Op::SetLimit(limit) => {
                    model.cached.clear();
                    manager.set_hard_limit(limit).unwrap();
                    model.limit = limit;
                }
                Op::Clear => {
                    model.cached.clear();
                    manager.clear_cache();
                    prop_assert_eq!(manager.stats().cached_bytes, 0);
                }
                _ => {}
            }
            check(&manager, &backend, &model);
        }
        model.held.clear();
        manager.clear_cache();
        prop_assert_eq!(backend.allocated_bytes(), 0, "nothing leaked");
    }
}
