//! How the [`MemoryManager`] answers memory pressure, in grades.
//!
//! - **Warning**: evict half of what the pools cache, least recently used first. Live
//!   buffers are untouched; the next step may miss a little more often.
//! - **Critical**: evict every cached buffer and run every cleanup callback in priority
//!   order (they may drop memory of their own: cached activations, a batch to shrink).
//! - **Normal**: nothing to free; the return is logged and counted like the rises.
//!
//! The manager implements [`PressureResponder`], so a [`crate::pressure::PressureMonitor`]
//! can drive it directly, and it offers a [`BudgetSource`] that watches its own reserved
//! bytes against the backend's budget.

use super::cleanup::CleanupReason;
use super::manager::MemoryManager;
use crate::backend::Backend;
use crate::pressure::{BudgetSource, PressureChange, PressureLevel, PressureResponder};
use crate::sync::lock;

impl<B: Backend> MemoryManager<B> {
    /// Applies the grade of `level` (see the module docs). Returns the cached bytes freed.
    pub fn respond_to_pressure(&self, level: PressureLevel) -> u64 {
        lock(&self.shared.state).stats.pressure_events += 1;
        let freed = match level {
            PressureLevel::Normal => 0,
            PressureLevel::Warning => self.evict_fraction(0.5),
            PressureLevel::Critical => {
                let freed = self.clear_cache();
                self.run_cleanups_for(CleanupReason::CriticalPressure);
                freed
            }
        };
        let stats = self.stats();
        log::info!(
            "memory pressure {level}: freed {freed} cached bytes; live {} cached {}",
            stats.live_bytes,
            stats.cached_bytes
        );
        freed
    }

    /// Bytes held: live plus cached.
    pub fn reserved_bytes(&self) -> u64 {
        let state = lock(&self.shared.state);
        state.stats.live_bytes + state.pool.cached_bytes()
    }

    /// A pressure source comparing this manager's reserved bytes with `budget` (the
    /// backend's budget unless `Some`), with the default thresholds (80% / 95% / below 70%).
    pub fn budget_source(&self, budget: Option<u64>) -> BudgetSource {
        let manager = self.clone();
        let budget = budget.unwrap_or(self.backend().capabilities().memory_budget);
        BudgetSource::new(move || (manager.reserved_bytes(), budget))
    }
}

impl<B: Backend> PressureResponder for MemoryManager<B> {
    fn on_pressure(&self, change: PressureChange) {
        if let Some(profiler) = self.profiler() {
            profiler.record_pressure(change.from.as_str(), change.to.as_str(), &change.source);
        }
        self.respond_to_pressure(change.to);
    }
}
