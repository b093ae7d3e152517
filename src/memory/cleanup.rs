//! The cleanup registry of a [`MemoryManager`]: callbacks that free memory of their own
//! (caches above the manager, saved activations), run by priority on out-of-memory before the
//! manager gives up, on critical pressure, or on request. Kept apart from the account: the
//! registry holds no bytes, and its callbacks run with no lock held.

use super::manager::MemoryManager;
use super::stats::MemoryStats;
use crate::backend::Backend;
use crate::sync::lock;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Why cleanup callbacks are being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CleanupReason {
    /// An allocation of this many bytes did not fit even after evicting caches.
    OutOfMemory {
        /// The class size asked for.
        requested: u64,
    },
    /// Memory pressure reached the critical level.
    CriticalPressure,
    /// [`MemoryManager::run_cleanups`] was called.
    Requested,
}

/// What a cleanup callback is told.
#[derive(Debug, Clone)]
pub struct CleanupRequest {
    /// Why it runs.
    pub reason: CleanupReason,
    /// The account just before the callbacks ran.
    pub stats: MemoryStats,
}

pub(super) type CleanupFn = Arc<dyn Fn(&CleanupRequest) + Send + Sync>;

/// Identifies a registered cleanup callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CleanupId(u64);

pub(super) struct Cleanup {
    id: CleanupId,
    name: String,
    priority: i32,
    callback: CleanupFn,
}

impl<B: Backend> MemoryManager<B> {
    /// Registers a cleanup callback, run on out-of-memory (before giving up) and on critical
    /// pressure. Higher `priority` runs first; equal priorities run in registration order.
    /// The callback may drop buffers of its own; it must not acquire.
    pub fn register_cleanup(
        &self,
        name: impl Into<String>,
        priority: i32,
        callback: impl Fn(&CleanupRequest) + Send + Sync + 'static,
    ) -> CleanupId {
        let id = CleanupId(self.shared.next_id.fetch_add(1, Ordering::Relaxed));
        let mut list = lock(&self.shared.cleanups);
        list.push(Cleanup {
            id,
            name: name.into(),
            priority,
            callback: Arc::new(callback),
        });
        list.sort_by_key(|c| std::cmp::Reverse(c.priority));
        id
    }

    /// Removes a cleanup callback. Returns false when it was not registered.
    pub fn unregister_cleanup(&self, id: CleanupId) -> bool {
        let mut list = lock(&self.shared.cleanups);
        let before = list.len();
        list.retain(|c| c.id != id);
        list.len() != before
    }

    /// Runs every cleanup callback now (reason [`CleanupReason::Requested`]).
    pub fn run_cleanups(&self) {
        self.run_cleanups_for(CleanupReason::Requested);
    }

    pub(crate) fn run_cleanups_for(&self, reason: CleanupReason) {
        // Clone the list so callbacks run without any lock held: they may drop buffers.
        let callbacks: Vec<(String, CleanupFn)> = lock(&self.shared.cleanups)
            .iter()
            .map(|c| (c.name.clone(), Arc::clone(&c.callback)))
            .collect();
        if callbacks.is_empty() {
            return;
        }
        let request = CleanupRequest {
            reason,
            stats: self.stats(),
        };
        for (name, callback) in callbacks {
            log::info!("running cleanup '{name}' ({reason:?})");
            callback(&request);
        }
    }
}
