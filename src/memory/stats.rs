//! Plain-data statistics of the memory account, printable in human units.

use crate::footprint::FootprintReport;
use crate::units::human_bytes;
use std::fmt;

/// A snapshot of a [`crate::memory::MemoryManager`]'s account. Plain data: copy it, print it,
/// compare two of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes handed out to users now (size-class bytes, what the buffers really occupy).
    pub live_bytes: u64,
    /// Bytes held in pools, ready for reuse (including buffers waiting for the GPU).
    pub cached_bytes: u64,
    /// Highest `live_bytes` seen.
    pub peak_live_bytes: u64,
    /// Highest `cached_bytes` seen.
    pub peak_cached_bytes: u64,
    /// Highest `live_bytes + cached_bytes` seen.
    pub peak_reserved_bytes: u64,
    /// Bytes users asked for that are live now (before rounding to a size class).
    pub requested_live_bytes: u64,
    /// Successful acquisitions.
    pub allocations: u64,
    /// Acquisitions served from a pool.
    pub pool_hits: u64,
    /// Acquisitions that had to create a buffer.
    pub pool_misses: u64,
    /// Misses that waited for the GPU to reuse a cached buffer still in flight, instead of
    /// allocating a new one.
    pub pending_waits: u64,
    /// Buffers destroyed to make room or on pressure.
    pub evictions: u64,
    /// Bytes destroyed by eviction.
    pub evicted_bytes: u64,
    /// Allocation retries after eviction or cleanup.
    pub retries: u64,
    /// Allocations that failed with out-of-memory in the end.
    pub ooms: u64,
    /// Pressure-level changes seen.
    pub pressure_events: u64,
    /// Live bytes per tag, sorted by tag.
    pub live_by_tag: Vec<(String, u64)>,
    /// Highest live bytes per tag since creation or [`crate::memory::MemoryManager::reset_peaks`].
    pub peak_by_tag: Vec<(String, u64)>,
    /// What the OS charges the process beside these figures, and the difference "outside
    /// wgmem". Filled only by [`crate::memory::MemoryManager::stats_with_footprint`] (reading it
    /// costs a system call or a file read, too much for every `stats()`); `None` otherwise or
    /// where the platform gives no footprint.
    pub footprint: Option<FootprintReport>,
}

impl MemoryStats {
    /// Live plus cached bytes: what the backend holds on our behalf.
    pub fn reserved_bytes(&self) -> u64 {
        self.live_bytes + self.cached_bytes
    }

    /// Fraction of acquisitions served from a pool, 0 when there were none.
    pub fn hit_rate(&self) -> f64 {
        let total = self.pool_hits + self.pool_misses;
        if total == 0 {
            0.0
        } else {
            self.pool_hits as f64 / total as f64
        }
    }

    /// Peak live bytes under `tag`, 0 if none.
    pub fn peak_for_tag(&self, tag: &str) -> u64 {
        self.peak_by_tag
            .iter()
            .find(|(t, _)| t == tag)
            .map_or(0, |(_, b)| *b)
    }

    /// Live bytes under `tag`, 0 if none.
    pub fn live_for_tag(&self, tag: &str) -> u64 {
        self.live_by_tag
            .iter()
            .find(|(t, _)| t == tag)
            .map_or(0, |(_, b)| *b)
    }
}

impl fmt::Display for MemoryStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "live {} / reserved {} (cached {}); peak live {}, peak reserved {}",
            human_bytes(self.live_bytes),
            human_bytes(self.reserved_bytes()),
            human_bytes(self.cached_bytes),
            human_bytes(self.peak_live_bytes),
            human_bytes(self.peak_reserved_bytes),
        )?;
        write!(
            f,
            "allocations {}, pool hit rate {:.1}% ({} hits, {} misses, {} waits for buffers in flight), evictions {} ({}), retries {}, OOMs {}, pressure events {}",
            self.allocations,
            self.hit_rate() * 100.0,
            self.pool_hits,
            self.pool_misses,
            self.pending_waits,
            self.evictions,
            human_bytes(self.evicted_bytes),
            self.retries,
            self.ooms,
            self.pressure_events,
        )?;
        if let Some(footprint) = &self.footprint {
            write!(f, "\n{footprint}")?;
        }
        for (tag, bytes) in &self.live_by_tag {
            write!(f, "\n  {tag}: {}", human_bytes(*bytes))?;
        }
        Ok(())
    }
}
