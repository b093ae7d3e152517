//! The manager's account set beside the process footprint, and a pressure source that watches
//! the footprint against the device's budget.
//!
//! Kept out of [`MemoryManager::stats`] because reading the footprint is a system call (Apple)
//! or a file read (Linux): cheap once per epoch or per report, too dear for every `stats()` the
//! trainer and checkpointer make.

use super::{MemoryManager, MemoryStats};
use crate::backend::Backend;
use crate::error::Result;
use crate::footprint::{FootprintReport, process_footprint};
use crate::pressure::FootprintPressureSource;

impl<B: Backend> MemoryManager<B> {
    /// [`MemoryManager::stats`] with [`MemoryStats::footprint`] filled: the process footprint,
    /// the reserved bytes, the difference "outside wgmem", and the driver's own count where the
    /// backend has one. The footprint is `None` where the platform gives none.
    pub fn stats_with_footprint(&self) -> Result<MemoryStats> {
        let mut stats = self.stats();
        stats.footprint = process_footprint()?.map(|process| FootprintReport {
            process,
            reserved_bytes: stats.reserved_bytes(),
            device_allocated_bytes: self.backend().device_allocated_bytes(),
        });
        Ok(stats)
    }

    /// A [`FootprintPressureSource`] for a [`crate::pressure::PressureMonitor`]: the process
    /// footprint against the OS's limit where it sets one, else against `budget` (default: the
    /// backend's `memory_budget`, on Apple Silicon Metal's recommended working set).
    pub fn footprint_source(&self, budget: Option<u64>) -> FootprintPressureSource {
        FootprintPressureSource::new(budget.unwrap_or(self.backend().capabilities().memory_budget))
    }
}
