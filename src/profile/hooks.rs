//! What the [`MemoryManager`](crate::memory::MemoryManager) calls, under its own lock, as the
//! account changes: acquisitions, releases, evictions, out-of-memory failures.
//!
//! Kept apart from the profiler's queries because this is the hot path: each hook returns at
//! once when the profiler is off, does its bookkeeping under one short lock, and builds an
//! [`Event`](super::Event) only in full mode.

use super::event::{AccountSample, EventKind, SourceLocation};
use super::profiler::{LiveBuffer, MemoryProfiler, ProfileMode};
use super::report::OomReport;
use super::scope;
use crate::sync::lock;

impl MemoryProfiler {
    /// The profiler was attached to a manager whose account is `account`.
    pub(crate) fn on_attach(&self, account: AccountSample) {
        lock(&self.inner).account = account;
    }

    /// An acquisition succeeded (`hit`: from the pool).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn on_acquire(
        &self,
        hit: bool,
        id: u64,
        size: u64,
        requested: u64,
        tag: &'static str,
        location: SourceLocation,
        account: AccountSample,
    ) {
        if !self.is_enabled() {
            return;
        }
        let time = self.elapsed();
        let scope = scope::current(self.id());
        let mut inner = lock(&self.inner);
        let inner = &mut *inner;
        if hit {
            inner.counts.pool_hits += 1;
        } else {
            inner.counts.allocs += 1;
        }
        inner.counts.acquired_bytes += size;
        inner.account = account;
        inner
            .groups
            .acquired(hit, size, tag, Some(location), scope.as_ref());
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.live.insert(
            id,
            LiveBuffer {
                id,
                size,
                requested,
                tag,
                location: Some(location),
                scope: scope.clone(),
                acquired: time,
                seq,
            },
        );
        if self.mode() == ProfileMode::Full {
            let kind = if hit {
                EventKind::PoolHit
            } else {
                EventKind::Alloc
            };
            let mut event = self.event(kind, id, size, requested, tag, Some(location), account);
            event.time = time;
            self.push(inner, event);
        }
    }

    /// A buffer was released to the pool.
    pub(crate) fn on_free(
        &self,
        id: u64,
        size: u64,
        requested: u64,
        tag: &'static str,
        location: SourceLocation,
        account: AccountSample,
    ) {
        if !self.is_enabled() {
            return;
        }
        let mut inner = lock(&self.inner);
        inner.counts.frees += 1;
        inner.counts.freed_bytes += size;
        inner.account = account;
        // Buffers acquired before the profiler was attached or enabled are not in any group.
        if let Some(b) = inner.live.remove(&id) {
            inner
                .groups
                .freed(size, tag, Some(location), b.scope.as_ref());
        }
        if self.mode() == ProfileMode::Full {
            let event = self.event(
                EventKind::Free,
                id,
                size,
                requested,
                tag,
                Some(location),
                account,
            );
            self.push(&mut inner, event);
        }
    }

    /// Cached buffers of these sizes were destroyed; `account` is after all of them.
    pub(crate) fn on_evict(&self, sizes: impl Iterator<Item = u64>, account: AccountSample) {
        if !self.is_enabled() {
            return;
        }
        let mut inner = lock(&self.inner);
        inner.account = account;
        for size in sizes {
            inner.counts.evictions += 1;
            inner.counts.evicted_bytes += size;
            let event = self.event(EventKind::Evict, 0, size, 0, "", None, account);
            self.push(&mut inner, event);
        }
    }

    /// An acquisition failed for good.
    pub(crate) fn on_oom(
        &self,
        size: u64,
        requested: u64,
        tag: &'static str,
        location: SourceLocation,
        account: AccountSample,
    ) {
        if !self.is_enabled() {
            return;
        }
        let event = self.event(
            EventKind::OutOfMemory,
            0,
            size,
            requested,
            tag,
            Some(location),
            account,
        );
        let mut inner = lock(&self.inner);
        inner.counts.ooms += 1;
        inner.account = account;
        let report = OomReport::build(&inner, &event, 8);
        inner.last_oom = Some(report);
        self.push(&mut inner, event);
    }
}
