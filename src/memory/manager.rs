//! [`MemoryManager`]: the single account of bytes for one backend.
//!
//! Every buffer above the backend is acquired here and comes back here when its
//! [`ManagedBuffer`] drops. The manager keeps the account (live, cached, peaks, per-tag bytes,
//! counters), serves acquisitions from its [`BufferPool`], enforces a hard limit (never
//! exceeded) and a soft limit (caches are trimmed to it), and recovers from out-of-memory in
//! steps before giving up:
//!
//! 1. evict cached buffers, least recently used first, until the request fits;
//! 2. wait for in-flight GPU work, reclaim its buffers, evict again;
//! 3. run the registered cleanup callbacks (highest priority first), which may drop memory
//!    of their own;
//! 4. return [`Error::OutOfMemory`] with the request, the stats and the largest live
//!    allocations. Nothing aborts.
//!
//! A request that only a cached buffer still in flight would fit creates a new buffer only
//! while the reserve stays within [`MemoryConfig::in_flight_ratio`] of the peak live bytes; past
//! that it waits for the GPU and reuses the buffer. Without the rule, buffers released while
//! the GPU lagged behind were never reused within the step and the pool kept them all: on the
//! small GPT of `benches/pool_gpt.rs`, about 60 of 200 warm-up misses (20 to 22 MiB, with
//! GPU timing) happened while a buffer of the very class was pending, and the reserve stayed
//! at 1.7x the peak live bytes (1.25x with the rule at its default ratio).
//!
//! One mutex guards the account and the pool; a pool hit is a lock, a map lookup and a few
//! additions. Backend allocation (slow on a GPU) happens outside the lock, with its bytes
//! reserved in the account first so concurrent threads cannot overshoot the hard limit.

use super::account::State;
use super::cleanup::{Cleanup, CleanupReason};
use super::config::MemoryConfig;
use super::managed::ManagedBuffer;
use super::pool::{BufferPool, Pooled};
use super::size_class::SizeClasses;
use super::stats::MemoryStats;
use crate::backend::{Backend, BufferUsage};
use crate::error::{Error, OutOfMemoryReport, Result};
use crate::profile::{MemoryProfiler, SourceLocation};
use crate::sync::lock;
use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub(super) struct Shared<B: Backend> {
    pub(super) backend: Arc<B>,
    pub(super) state: Mutex<State<B::Buffer>>,
    pub(super) cleanups: Mutex<Vec<Cleanup>>,
    pub(super) next_id: AtomicU64,
    report_top: usize,
}

/// The memory account and pool for one backend. Cheap to clone (a shared handle);
/// `Send + Sync`. See the module docs.
pub struct MemoryManager<B: Backend> {
    pub(super) shared: Arc<Shared<B>>,
}

impl<B: Backend> Clone for MemoryManager<B> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<B: Backend> std::fmt::Debug for MemoryManager<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryManager")
            .field("backend", &self.shared.backend.name())
            .field("stats", &self.stats())
            .finish()
    }
}

enum Attempt<T> {
    Done(T),
    /// Did not fit under the limit or the device refused: escalate.
    Retry {
        device_message: Option<String>,
    },
}

impl<B: Backend> MemoryManager<B> {
    /// A manager over `backend` with the default configuration.
    pub fn new(backend: Arc<B>) -> Self {
        Self::with_config(backend, MemoryConfig::default())
            .expect("the default configuration is valid")
    }

    /// A manager with an explicit configuration; invalid values are a typed error.
    pub fn with_config(backend: Arc<B>, config: MemoryConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            shared: Arc::new(Shared {
                backend,
                state: Mutex::new(State {
                    pool: BufferPool::new(config.size_classes, config.max_reuse_ratio),
                    stats: MemoryStats::default(),
                    tags: HashMap::new(),
                    tag_peaks: HashMap::new(),
                    live: HashMap::new(),
                    hard_limit: config.hard_limit,
                    in_flight_ratio: config.in_flight_ratio,
                    soft_limit: config.soft_limit,
                    profiler: None,
                }),
                cleanups: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                report_top: config.report_top,
            }),
        })
    }

    /// Attaches a profiler (or detaches it with `None`). From now on it is told of every
    /// acquisition, release, eviction and out-of-memory failure; buffers acquired before are
    /// released without being counted in its groups.
    pub fn set_profiler(&self, profiler: Option<Arc<MemoryProfiler>>) {
        let mut state = lock(&self.shared.state);
        if let Some(p) = &profiler {
            // Give it the account as it is now, for events that carry no change of their own.
            p.on_attach(state.account());
        }
        state.profiler = profiler;
    }

    /// The attached profiler, if any.
    pub fn profiler(&self) -> Option<Arc<MemoryProfiler>> {
        lock(&self.shared.state).profiler.clone()
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<B> {
        &self.shared.backend
    }

    /// A snapshot of the account.
    pub fn stats(&self) -> MemoryStats {
        let state = lock(&self.shared.state);
        let mut stats = state.stats.clone();
        stats.cached_bytes = state.pool.cached_bytes();
        stats.live_by_tag = state
            .tags
            .iter()
            .filter(|(_, b)| **b > 0)
            .map(|(t, b)| (t.to_string(), *b))
            .collect();
        stats.live_by_tag.sort();
        stats.peak_by_tag = state
            .tag_peaks
            .iter()
            .map(|(t, b)| (t.to_string(), *b))
            .collect();
        stats.peak_by_tag.sort();
        stats
    }

    /// Restarts the peak figures from the current values (to measure one phase, e.g. a step).
    pub fn reset_peaks(&self) {
        let mut state = lock(&self.shared.state);
        state.stats.peak_live_bytes = state.stats.live_bytes;
        state.stats.peak_cached_bytes = state.pool.cached_bytes();
        state.stats.peak_reserved_bytes = state.stats.live_bytes + state.pool.cached_bytes();
        state.tag_peaks = state.tags.clone();
    }

    /// The size classes in use.
    pub fn size_classes(&self) -> SizeClasses {
        *lock(&self.shared.state).pool.classes()
    }

    /// The hard limit, if any.
    pub fn hard_limit(&self) -> Option<u64> {
        lock(&self.shared.state).hard_limit
    }

    /// Changes the hard limit. Caches are evicted to fit under it; live buffers cannot be,
    /// so a limit below the live bytes only stops further growth.
    pub fn set_hard_limit(&self, limit: Option<u64>) -> Result<()> {
        if limit == Some(0) {
            return Err(Error::invalid(
                "hard limit",
                "a hard limit of 0 bytes admits nothing; use None for no limit",
            ));
        }
        let evicted = {
            let mut state = lock(&self.shared.state);
            state.hard_limit = limit;
            let over = limit.map_or(0, |l| state.reserved().saturating_sub(l));
            let evicted = state.pool.evict_bytes(over);
            state.evicted(&evicted);
            evicted
        };
        self.free_all(evicted);
        Ok(())
    }

    /// Changes the soft limit and trims caches to it.
    pub fn set_soft_limit(&self, limit: Option<u64>) {
        lock(&self.shared.state).soft_limit = limit;
        self.trim_to_limits();
    }

    /// Acquires a buffer of at least `size` bytes for `usage`, accounted under `tag`.
    /// Served from the pool when possible; see the module docs for what happens when memory
    /// runs out. The caller's source location is kept on the buffer
    /// ([`ManagedBuffer::location`]) and given to the profiler.
    #[track_caller]
    pub fn acquire(
        &self,
        size: u64,
        usage: BufferUsage,
        tag: &'static str,
    ) -> Result<ManagedBuffer<B>> {
        self.acquire_at(size, usage, tag, Location::caller())
    }

    /// [`acquire`](Self::acquire) on behalf of a caller at `location` (for the crate's own
    /// `#[track_caller]` wrappers, whose closures cannot forward the location).
    pub(crate) fn acquire_at(
        &self,
        size: u64,
        usage: BufferUsage,
        tag: &'static str,
        location: SourceLocation,
    ) -> Result<ManagedBuffer<B>> {
        let caps = self.shared.backend.capabilities();
        if size == 0 {
            return Err(Error::ZeroSize);
        }
        let class = lock(&self.shared.state).pool.classes().class_of(size);
        if size > caps.max_buffer_size || class > caps.max_buffer_size {
            return Err(Error::TooLarge {
                requested: size,
                max: caps.max_buffer_size,
            });
        }
        let mut device_message = None;
        for step in 0..3 {
            match step {
                0 => {}
                1 => {
                    // Wait for in-flight work so its buffers can be reused or evicted.
                    self.shared.backend.wait_idle()?;
                    let completed = self.shared.backend.completed_submission();
                    lock(&self.shared.state).pool.reclaim(completed);
                }
                _ => self.run_cleanups_for(CleanupReason::OutOfMemory { requested: class }),
            }
            if step > 0 {
                lock(&self.shared.state).stats.retries += 1;
                log::debug!("retrying an allocation of {class} bytes (step {step})");
            }
            match self.try_acquire(size, class, usage, tag, location)? {
                Attempt::Done(buffer) => return Ok(buffer),
                Attempt::Retry { device_message: m } => device_message = m.or(device_message),
            }
        }
        Err(self.out_of_memory(class, device_message, size, tag, location))
    }

    fn try_acquire(
        &self,
        size: u64,
        class: u64,
        usage: BufferUsage,
        tag: &'static str,
        location: SourceLocation,
    ) -> Result<Attempt<ManagedBuffer<B>>> {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut evicted = Vec::new();
        let profiled;
        {
            let mut state = lock(&self.shared.state);
            let mut hit = state.pool.take(usage, size);
            if hit.is_none() && state.pool.has_pending() {
                let completed = self.shared.backend.completed_submission();
                if state.pool.reclaim(completed) > 0 {
                    hit = state.pool.take(usage, size);
                }
            }
            if hit.is_none()
                && state.pool.pending_fits(usage, size)
                && !state.may_allocate_beside_in_flight(class)
            {
                // A cached buffer fits but the GPU may still use it, and another buffer beside
                // it would take the reserve over the in-flight ratio of the peak live bytes:
                // wait for the GPU and reuse it. Only such requests wait.
                state.stats.pending_waits += 1;
                drop(state);
                self.shared.backend.wait_idle()?;
                state = lock(&self.shared.state);
                let completed = self.shared.backend.completed_submission();
                state.pool.reclaim(completed);
                hit = state.pool.take(usage, size);
            }
            if let Some(pooled) = hit {
                state.stats.pool_hits += 1;
                state.add_live(id, tag, pooled.class, size);
                if let Some(p) = state.profiler() {
                    p.on_acquire(true, id, pooled.class, size, tag, location, state.account());
                }
                return Ok(Attempt::Done(ManagedBuffer::new(
                    self.clone(),
                    pooled,
                    id,
                    size,
                    tag,
                    location,
                )));
            }
            if let Some(limit) = state.hard_limit {
                let over = (state.reserved() + class).saturating_sub(limit);
                if over > 0 {
                    evicted = state.pool.evict_bytes(over);
                    state.evicted(&evicted);
                }
                if state.reserved() + class > limit {
                    drop(state);
                    self.free_all(evicted);
                    return Ok(Attempt::Retry {
                        device_message: None,
                    });
                }
            }
            // Reserve the bytes before the slow allocation so other threads see them.
            state.stats.pool_misses += 1;
            state.add_live(id, tag, class, size);
            // Recorded once the backend has said yes; the allocation is slow anyway.
            profiled = state.profiler().is_some();
        }
        self.free_all(evicted);
        match self.shared.backend.allocate(class, usage) {
            Ok(buffer) => {
                if profiled {
                    let state = lock(&self.shared.state);
                    if let Some(p) = state.profiler() {
                        p.on_acquire(false, id, class, size, tag, location, state.account());
                    }
                }
                Ok(Attempt::Done(ManagedBuffer::new(
                    self.clone(),
                    Pooled {
                        buffer,
                        usage,
                        class,
                    },
                    id,
                    size,
                    tag,
                    location,
                )))
            }
            Err(Error::DeviceOutOfMemory { message, .. }) => {
                // The device is full: undo the reservation and free every cached buffer.
                let evicted = {
                    let mut state = lock(&self.shared.state);
                    self.unreserve(&mut state, id, size);
                    let evicted = state.pool.evict_bytes(u64::MAX);
                    state.evicted(&evicted);
                    evicted
                };
                self.free_all(evicted);
                Ok(Attempt::Retry {
                    device_message: Some(message),
                })
            }
            Err(other) => {
                let mut state = lock(&self.shared.state);
                self.unreserve(&mut state, id, size);
                Err(other)
            }
        }
    }

    /// Undoes the reservation `add_live` made for an allocation the backend then refused.
    fn unreserve(&self, state: &mut State<B::Buffer>, id: u64, requested: u64) {
        self.remove_live(state, id);
        state.stats.requested_live_bytes -= requested;
        state.stats.allocations -= 1;
        state.update_peaks();
    }

    fn remove_live(&self, state: &mut State<B::Buffer>, id: u64) -> Option<(&'static str, u64)> {
        let (tag, class) = state.live.remove(&id)?;
        state.stats.live_bytes -= class;
        if let Some(t) = state.tags.get_mut(tag) {
            *t -= class;
        }
        Some((tag, class))
    }

    fn out_of_memory(
        &self,
        requested: u64,
        device_message: Option<String>,
        asked: u64,
        tag: &'static str,
        location: SourceLocation,
    ) -> Error {
        let (limit, mut largest) = {
            let mut state = lock(&self.shared.state);
            state.stats.ooms += 1;
            if let Some(p) = state.profiler() {
                p.on_oom(requested, asked, tag, location, state.account());
            }
            let largest: Vec<(String, u64)> = state
                .live
                .values()
                .map(|(t, b)| (t.to_string(), *b))
                .collect();
            (state.hard_limit, largest)
        };
        largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        largest.truncate(self.shared.report_top);
        let report = OutOfMemoryReport {
            requested,
            limit,
            stats: self.stats(),
            largest,
            device_message,
        };
        log::warn!("{report}");
        Error::OutOfMemory(Box::new(report))
    }

    /// Called by [`ManagedBuffer`]'s drop.
    pub(super) fn release(
        &self,
        pooled: Pooled<B::Buffer>,
        id: u64,
        requested: u64,
        tag: &'static str,
        location: SourceLocation,
    ) {
        let backend = &self.shared.backend;
        let stamp = backend.last_submission();
        let completed = backend.completed_submission();
        {
            let mut state = lock(&self.shared.state);
            self.remove_live(&mut state, id);
            state.stats.requested_live_bytes -= requested;
            let class = pooled.class;
            state.pool.release(pooled, stamp, completed);
            state.update_peaks();
            if let Some(p) = state.profiler() {
                p.on_free(id, class, requested, tag, location, state.account());
            }
        }
        self.trim_to_limits();
    }

    fn trim_to_limits(&self) {
        let evicted = {
            let mut state = lock(&self.shared.state);
            // A release can leave reserved bytes over the hard limit too (when the limit was
            // lowered below what was live), so trim to the lower of the two.
            let target = match (state.soft_limit, state.hard_limit) {
                (None, None) => return,
                (a, b) => a.unwrap_or(u64::MAX).min(b.unwrap_or(u64::MAX)),
            };
            let over = state.reserved().saturating_sub(target);
            if over == 0 {
                return;
            }
            let cached = state.pool.cached_bytes();
            let evicted = state.pool.evict_bytes(over.min(cached));
            state.evicted(&evicted);
            evicted
        };
        self.free_all(evicted);
    }

    fn free_all(&self, list: Vec<Pooled<B::Buffer>>) {
        for p in list {
            self.shared.backend.free(p.buffer);
        }
    }

    /// Allocates buffers for `sizes` now and puts them in the pool, so the first step hits.
    /// Respects the hard limit (stops with an error when the next one would cross it).
    #[track_caller]
    pub fn prewarm(&self, sizes: &[u64], usage: BufferUsage) -> Result<()> {
        let location = Location::caller();
        for &size in sizes {
            let buffer = self.acquire_at(size, usage, "prewarm", location)?;
            drop(buffer);
        }
        let completed = self.shared.backend.completed_submission();
        lock(&self.shared.state).pool.reclaim(completed);
        Ok(())
    }

    /// Evicts at least `fraction` of the cached bytes, least recently used first.
    /// Returns the bytes freed.
    pub fn evict_fraction(&self, fraction: f64) -> u64 {
        let evicted = {
            let mut state = lock(&self.shared.state);
            let evicted = state.pool.evict_fraction(fraction);
            state.evicted(&evicted);
            evicted
        };
        let bytes = evicted.iter().map(|p| p.class).sum();
        self.free_all(evicted);
        bytes
    }

    /// A mark for [`Self::evict_unused_since`].
    pub fn mark(&self) -> u64 {
        lock(&self.shared.state).pool.tick()
    }

    /// Frees the cached buffers that have not been reused since `mark` (e.g. sizes the last
    /// epoch no longer needed). Returns the bytes freed.
    pub fn evict_unused_since(&self, mark: u64) -> u64 {
        let evicted = {
            let mut state = lock(&self.shared.state);
            let evicted = state.pool.evict_released_before(mark);
            state.evicted(&evicted);
            evicted
        };
        let bytes = evicted.iter().map(|p| p.class).sum();
        self.free_all(evicted);
        bytes
    }

    /// Frees every cached buffer. Returns the bytes freed.
    pub fn clear_cache(&self) -> u64 {
        self.evict_fraction(1.0)
    }
}

impl<B: Backend> Drop for Shared<B> {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        for p in state.pool.clear() {
            self.backend.free(p.buffer);
        }
    }
}
