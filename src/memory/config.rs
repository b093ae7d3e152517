//! [`MemoryConfig`]: the limits and pool policy a [`super::MemoryManager`] starts with, and
//! the checks that keep a bad configuration from reaching it.

use super::size_class::SizeClasses;
use crate::error::{Error, Result};

/// Configuration of a [`super::MemoryManager`]. `Default` gives no limits, 8 size classes per
/// doubling, a reuse cap of 1.25 and an in-flight ratio of 1.25.
#[derive(Debug, Clone)]
pub struct MemoryConfig {
    /// Reserved bytes (live + cached) are never allowed above this.
    pub hard_limit: Option<u64>,
    /// After a release, caches are trimmed (LRU) until reserved bytes are at most this.
    pub soft_limit: Option<u64>,
    /// How requests are rounded to classes.
    pub size_classes: SizeClasses,
    /// A reused buffer's class may be at most this multiple of the request's class.
    pub max_reuse_ratio: f64,
    /// How many of the largest live allocations an out-of-memory report lists.
    pub report_top: usize,
    /// When only a cached buffer still in use by the GPU would fit a request, a new buffer is
    /// created beside it only while reserved bytes (after it) stay at most this multiple of
    /// the peak live bytes (since the last `reset_peaks`, counting it); otherwise the request
    /// waits for the GPU and reuses the cached one. 1.0 always waits (the tightest reserve: a
    /// miss only when nothing cached fits); `f64::INFINITY` never waits (the GPU is never
    /// stalled, and the reserve grows with how far the GPU lags behind the host). The trade:
    /// a wait drains the GPU queue; in a steady training loop the pool stops growing and the
    /// requests that find their buffer still in flight wait (`MemoryStats::pending_waits`).
    pub in_flight_ratio: f64,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self {
            hard_limit: None,
            soft_limit: None,
            size_classes: SizeClasses::default(),
            max_reuse_ratio: 1.25,
            report_top: 8,
            in_flight_ratio: 1.25,
        }
    }
}

impl MemoryConfig {
    /// Sets the hard limit.
    pub fn with_hard_limit(mut self, bytes: u64) -> Self {
        self.hard_limit = Some(bytes);
        self
    }

    /// A configuration that caches nothing: a soft limit of 0 bytes, so every released buffer
    /// is freed at once and every acquisition creates a new one. What a step costs without
    /// the pool (`benches/pool_cost.rs` measures it against the default).
    pub fn no_caching() -> Self {
        Self::default().with_soft_limit(0)
    }

    /// Sets the soft limit.
    pub fn with_soft_limit(mut self, bytes: u64) -> Self {
        self.soft_limit = Some(bytes);
        self
    }

    /// Checks the limits and the reuse ratio; a manager refuses a config that fails this.
    pub(super) fn validate(&self) -> Result<()> {
        if self.hard_limit == Some(0) {
            return Err(Error::invalid(
                "hard limit",
                "a hard limit of 0 bytes admits nothing; use None for no limit",
            ));
        }
        if let (Some(soft), Some(hard)) = (self.soft_limit, self.hard_limit) {
            if soft > hard {
                return Err(Error::invalid(
                    "soft limit",
                    format!("soft limit {soft} is above the hard limit {hard}"),
                ));
            }
        }
        if self.max_reuse_ratio.is_nan() || self.max_reuse_ratio < 1.0 {
            return Err(Error::invalid(
                "max_reuse_ratio",
                format!("{} must be at least 1.0", self.max_reuse_ratio),
            ));
        }
        if self.in_flight_ratio.is_nan() || self.in_flight_ratio < 1.0 {
            return Err(Error::invalid(
                "in_flight_ratio",
                format!(
                    "{} must be at least 1.0 (reserved bytes include the live ones)",
                    self.in_flight_ratio
                ),
            ));
        }
        Ok(())
    }
}
