//! The account a [`super::MemoryManager`] keeps under its one lock: live and cached bytes, their
//! peaks, bytes by tag, the live allocations by id, the limits, and the profiler that is told
//! of every change while the lock is held (so its events are in order). Plain bookkeeping with
//! no backend calls, so the manager's allocation logic reads apart from the arithmetic.

use super::pool::{BufferPool, Pooled};
use super::stats::MemoryStats;
use crate::profile::{AccountSample, MemoryProfiler};
use std::collections::HashMap;
use std::sync::Arc;

/// The manager's state behind its mutex.
pub(super) struct State<T> {
    pub(super) pool: BufferPool<T>,
    pub(super) stats: MemoryStats,
    pub(super) tags: HashMap<&'static str, u64>,
    pub(super) tag_peaks: HashMap<&'static str, u64>,
    pub(super) live: HashMap<u64, (&'static str, u64)>,
    pub(super) hard_limit: Option<u64>,
    pub(super) soft_limit: Option<u64>,
    /// See [`super::MemoryConfig::in_flight_ratio`].
    pub(super) in_flight_ratio: f64,
    /// Told of every account change while the lock is held, so its events are in order.
    pub(super) profiler: Option<Arc<MemoryProfiler>>,
}

impl<T> State<T> {
    /// The attached profiler when it is enabled: the one check on the hot path.
    #[inline]
    pub(super) fn profiler(&self) -> Option<&MemoryProfiler> {
        self.profiler.as_deref().filter(|p| p.is_enabled())
    }

    pub(super) fn account(&self) -> AccountSample {
        AccountSample {
            live: self.stats.live_bytes,
            cached: self.pool.cached_bytes(),
        }
    }

    pub(super) fn reserved(&self) -> u64 {
        self.stats.live_bytes + self.pool.cached_bytes()
    }

    /// Whether a new buffer of `class` bytes, made beside a cached one still in flight, keeps
    /// the reserve (after it) within the in-flight ratio of the peak live bytes (since the
    /// last [`super::MemoryManager::reset_peaks`], counting it). The peak, not the bytes live
    /// now: in a backward pass live bytes fall while buffers are released, and a reserve
    /// measured against them would make every request there wait.
    pub(super) fn may_allocate_beside_in_flight(&self, class: u64) -> bool {
        let reserved = (self.reserved() + class) as f64;
        let live = self
            .stats
            .peak_live_bytes
            .max(self.stats.live_bytes + class);
        reserved <= self.in_flight_ratio * live as f64
    }

    pub(super) fn update_peaks(&mut self) {
        let s = &mut self.stats;
        s.cached_bytes = self.pool.cached_bytes();
        s.peak_live_bytes = s.peak_live_bytes.max(s.live_bytes);
        s.peak_cached_bytes = s.peak_cached_bytes.max(s.cached_bytes);
        s.peak_reserved_bytes = s.peak_reserved_bytes.max(s.live_bytes + s.cached_bytes);
    }

    pub(super) fn add_live(&mut self, id: u64, tag: &'static str, class: u64, requested: u64) {
        self.stats.live_bytes += class;
        self.stats.requested_live_bytes += requested;
        self.stats.allocations += 1;
        let now = self.tags.entry(tag).or_default();
        *now += class;
        let now = *now;
        let peak = self.tag_peaks.entry(tag).or_default();
        *peak = (*peak).max(now);
        self.live.insert(id, (tag, class));
        self.update_peaks();
    }

    pub(super) fn evicted(&mut self, list: &[Pooled<T>]) {
        self.stats.evictions += list.len() as u64;
        self.stats.evicted_bytes += list.iter().map(|p| p.class).sum::<u64>();
        self.update_peaks();
        if let Some(p) = self.profiler() {
            if !list.is_empty() {
                p.on_evict(list.iter().map(|p| p.class), self.account());
            }
        }
    }
}
