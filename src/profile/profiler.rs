//! [`MemoryProfiler`]: records what happens to memory, cheaply enough to leave attached.
//!
//! The [`MemoryManager`](crate::memory::MemoryManager) calls it from its acquire, release,
//! evict and out-of-memory paths while it holds its own lock, so events arrive in the order
//! the account changed and each carries a consistent sample of the account. Three modes,
//! switchable at run time through one atomic:
//!
//! - [`ProfileMode::Off`]: the manager's cost is one branch (an atomic load).
//! - [`ProfileMode::Tracking`]: aggregates by source location, tag and scope, the live set
//!   (for leak reports) and counters, but no event log.
//! - [`ProfileMode::Full`]: the same plus a bounded ring buffer of [`Event`]s (the oldest are
//!   dropped when full), from which the timeline, the heatmap and the trace export are made.

use super::event::{AccountSample, Event, EventKind, SourceLocation};
use super::group::{Groups, WordMap};
use super::kernels::KernelTotals;
use super::report::OomReport;
use super::scope::{self, ScopeGuard};
use crate::sync::lock;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How much the profiler records. See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileMode {
    /// Records nothing.
    Off = 0,
    /// Aggregates, live set and counters; no event log.
    Tracking = 1,
    /// Everything, with the event log.
    Full = 2,
}

/// Counts of recorded events, comparable with [`MemoryStats`](crate::MemoryStats).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// Pool misses (new buffers).
    pub allocs: u64,
    /// Pool hits.
    pub pool_hits: u64,
    /// Releases.
    pub frees: u64,
    /// Evicted buffers.
    pub evictions: u64,
    /// Evicted bytes.
    pub evicted_bytes: u64,
    /// Out-of-memory failures.
    pub ooms: u64,
    /// Pressure-level changes.
    pub pressure_changes: u64,
    /// Size-class bytes acquired, hits and misses together.
    pub acquired_bytes: u64,
    /// Size-class bytes released.
    pub freed_bytes: u64,
}

/// A buffer that is live (acquired, not yet released), as the profiler saw it acquired.
#[derive(Debug, Clone)]
pub struct LiveBuffer {
    /// Acquisition id ([`ManagedBuffer::id`](crate::ManagedBuffer::id)).
    pub id: u64,
    /// Size-class bytes.
    pub size: u64,
    /// Bytes asked for.
    pub requested: u64,
    /// Accounting tag.
    pub tag: &'static str,
    /// Where it was acquired.
    pub location: Option<SourceLocation>,
    /// The scope it was acquired in.
    pub scope: Option<Arc<str>>,
    /// When it was acquired (since the profiler's start).
    pub acquired: Duration,
    /// Order of acquisition, for [`MemoryProfiler::leaks_since`].
    pub seq: u64,
}

/// A point in the acquisition order; see [`MemoryProfiler::mark`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Mark(u64);

pub(super) struct Inner {
    pub(super) events: VecDeque<Event>,
    pub(super) dropped: u64,
    pub(super) counts: EventCounts,
    pub(super) groups: Groups,
    pub(super) live: WordMap<u64, LiveBuffer>,
    pub(super) next_seq: u64,
    pub(super) account: AccountSample,
    pub(super) last_oom: Option<OomReport>,
    pub(super) kernels: KernelTotals,
}

/// Records memory events; attach with
/// [`MemoryManager::set_profiler`](crate::memory::MemoryManager::set_profiler).
/// `Send + Sync`; share it as an `Arc`. See the module docs.
pub struct MemoryProfiler {
    id: u64,
    start: Instant,
    mode: AtomicU8,
    capacity: usize,
    pub(super) inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryProfiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryProfiler")
            .field("mode", &self.mode())
            .field("capacity", &self.capacity)
            .field("counts", &self.counts())
            .finish()
    }
}

impl MemoryProfiler {
    /// A profiler in `mode` whose event log keeps at most `capacity` events (at least 1).
    pub fn new(mode: ProfileMode, capacity: usize) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let capacity = capacity.max(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            start: Instant::now(),
            mode: AtomicU8::new(mode as u8),
            capacity,
            inner: Mutex::new(Inner {
                events: VecDeque::with_capacity(capacity.min(1 << 16)),
                dropped: 0,
                counts: EventCounts::default(),
                groups: Groups::default(),
                live: WordMap::default(),
                next_seq: 0,
                account: AccountSample::default(),
                last_oom: None,
                kernels: KernelTotals::default(),
            }),
        }
    }

    /// A full profiler keeping the last 262,144 events (an event is under 200 bytes, so
    /// about 50 MB at most).
    pub fn full() -> Self {
        Self::new(ProfileMode::Full, 1 << 18)
    }

    /// A tracking-only profiler: aggregates and live set, no event log.
    pub fn tracking() -> Self {
        Self::new(ProfileMode::Tracking, 1)
    }

    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// Time since the profiler was created: the clock of every event.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The current mode.
    pub fn mode(&self) -> ProfileMode {
        match self.mode.load(Ordering::Relaxed) {
            0 => ProfileMode::Off,
            1 => ProfileMode::Tracking,
            _ => ProfileMode::Full,
        }
    }

    /// Switches the mode; takes effect for the next event on every thread.
    pub fn set_mode(&self, mode: ProfileMode) {
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// True unless the mode is [`ProfileMode::Off`]. This is the one check on the manager's
    /// hot path.
    #[inline]
    pub fn is_enabled(&self) -> bool {
        self.mode.load(Ordering::Relaxed) != ProfileMode::Off as u8
    }

    /// The event log's bound.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Opens a named scope on this thread until the guard drops. Scopes nest; events record
    /// the innermost one as a `/`-joined path (`"step/layer3.backward"`).
    pub fn scope(&self, name: &str) -> ScopeGuard<'_> {
        if self.is_enabled() {
            ScopeGuard::open(self, name)
        } else {
            ScopeGuard::inactive()
        }
    }

    /// The counters so far.
    pub fn counts(&self) -> EventCounts {
        lock(&self.inner).counts
    }

    /// A copy of the event log, oldest first.
    pub fn events(&self) -> Vec<Event> {
        lock(&self.inner).events.iter().cloned().collect()
    }

    /// Events dropped from the log because it was full.
    pub fn dropped_events(&self) -> u64 {
        lock(&self.inner).dropped
    }

    /// Forgets the event log, the aggregates and the counters (not the live set, whose
    /// buffers are still out there, nor the clock).
    pub fn reset(&self) {
        let mut inner = lock(&self.inner);
        inner.events.clear();
        inner.dropped = 0;
        inner.counts = EventCounts::default();
        inner.groups = Groups::default();
        inner.last_oom = None;
        inner.kernels = KernelTotals::default();
    }

    /// A point in the acquisition order: buffers acquired after it and still live are what
    /// [`leaks_since`](Self::leaks_since) reports.
    pub fn mark(&self) -> Mark {
        Mark(lock(&self.inner).next_seq)
    }

    /// Live buffers acquired after `mark`, oldest first.
    pub fn leaks_since(&self, mark: Mark) -> super::report::LeakReport {
        let inner = lock(&self.inner);
        let mut buffers: Vec<LiveBuffer> = inner
            .live
            .values()
            .filter(|b| b.seq >= mark.0)
            .cloned()
            .collect();
        buffers.sort_by_key(|b| b.seq);
        super::report::LeakReport { buffers }
    }

    /// Every live buffer the profiler saw acquired, oldest first.
    pub fn live_buffers(&self) -> super::report::LeakReport {
        self.leaks_since(Mark(0))
    }

    /// The report made at the last out-of-memory failure, if any.
    pub fn oom_report(&self) -> Option<OomReport> {
        lock(&self.inner).last_oom.clone()
    }

    /// Records a pressure-level change (levels and source as plain names, so any pressure
    /// module can report without this one knowing its types).
    pub fn record_pressure(&self, from: &str, to: &str, source: &str) {
        if !self.is_enabled() {
            return;
        }
        let kind = EventKind::Pressure {
            from: from.to_string(),
            to: to.to_string(),
            source: source.to_string(),
        };
        let mut inner = lock(&self.inner);
        inner.counts.pressure_changes += 1;
        let account = inner.account;
        self.push(&mut inner, self.event(kind, 0, 0, 0, "", None, account));
    }

    /// Records a GPU kernel that started at `start` (on this profiler's clock, see
    /// [`elapsed`](Self::elapsed)) and ran for `duration`.
    pub fn record_kernel(&self, name: &str, start: Duration, duration: Duration) {
        if self.mode() != ProfileMode::Full {
            return;
        }
        let mut inner = lock(&self.inner);
        inner.kernels.add(name, duration);
        let account = inner.account;
        let mut event = self.event(
            EventKind::Kernel {
                name: name.to_string(),
                duration,
            },
            0,
            0,
            0,
            "",
            None,
            account,
        );
        event.time = start;
        self.push(&mut inner, event);
    }

    pub(super) fn record_scope(
        &self,
        name: Arc<str>,
        path: Arc<str>,
        opened: Duration,
        depth: usize,
    ) {
        if self.mode() != ProfileMode::Full {
            return;
        }
        let duration = self.elapsed().saturating_sub(opened);
        let mut inner = lock(&self.inner);
        let account = inner.account;
        let mut event = self.event(
            EventKind::Scope {
                name,
                duration,
                depth,
            },
            0,
            0,
            0,
            "",
            None,
            account,
        );
        event.time = opened;
        event.scope = Some(path);
        self.push(&mut inner, event);
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn event(
        &self,
        kind: EventKind,
        buffer: u64,
        size: u64,
        requested: u64,
        tag: &'static str,
        location: Option<SourceLocation>,
        account: AccountSample,
    ) -> Event {
        Event {
            time: self.elapsed(),
            kind,
            buffer,
            size,
            requested,
            tag,
            scope: scope::current(self.id),
            location,
            thread: scope::thread_number(),
            account,
        }
    }

    pub(super) fn push(&self, inner: &mut Inner, event: Event) {
        if self.mode() != ProfileMode::Full {
            return;
        }
        if inner.events.len() >= self.capacity {
            inner.events.pop_front();
            inner.dropped += 1;
        }
        inner.events.push_back(event);
    }
}
