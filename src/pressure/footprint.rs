//! Pressure from the process footprint: what the OS charges us against what it allows.
//!
//! The budget source watches the bytes wgmem holds; on unified memory that misses everything
//! else the process holds (the driver's caches, the program's CPU memory, a library's graph
//! cache), and the OS acts on the whole footprint. This source reads the footprint
//! ([`crate::footprint::process_footprint`]) and compares it with the OS's limit where there is
//! one (iOS, a cgroup with `memory.max`), else with a budget given at construction (the
//! device's budget: on Apple Silicon, Metal's recommended working set). So pressure rises when
//! the footprint nears the limit, whoever grew it. The [`UsageThresholds`] hysteresis keeps a
//! footprint that hovers at a threshold from flapping.

use super::{PressureLevel, PressureSource, UsageThresholds};
use crate::error::Result;
use crate::footprint::{ProcessFootprint, process_footprint};

/// What a [`FootprintPressureSource`] reads at each poll.
type ReadFn = dyn FnMut() -> Result<Option<ProcessFootprint>> + Send;

/// A [`PressureSource`] named `"footprint"`: the process footprint against its limit (or the
/// fallback budget), with hysteresis (Warning at 80%, Critical at 95%, back to Warning below
/// 90% and to Normal below 70% by default).
///
/// ```
/// use wgmem::footprint::{FootprintMeasure, ProcessFootprint};
/// use wgmem::pressure::{FootprintPressureSource, PressureLevel, PressureSource};
///
/// // A fake reading: 900 of 1000 bytes, growth that is not the manager's.
/// let reading = ProcessFootprint { bytes: 900, measure: FootprintMeasure::Supplied, limit: None };
/// let mut source = FootprintPressureSource::with_reader(move || Ok(Some(reading)), 1000);
/// assert_eq!(source.poll()?, Some(PressureLevel::Warning));
/// # Ok::<(), wgmem::Error>(())
/// ```
pub struct FootprintPressureSource {
    read: Box<ReadFn>,
    fallback_budget: u64,
    thresholds: UsageThresholds,
    level: PressureLevel,
    last: Option<(u64, u64)>,
}

impl FootprintPressureSource {
    /// Reads this process's footprint; `fallback_budget` is the budget where the OS sets no
    /// limit (pass the backend's `capabilities().memory_budget`).
    pub fn new(fallback_budget: u64) -> Self {
        Self::with_reader(process_footprint, fallback_budget)
    }

    /// Reads the footprint with `read` (a fake reading in tests, or a figure from elsewhere).
    pub fn with_reader(
        read: impl FnMut() -> Result<Option<ProcessFootprint>> + Send + 'static,
        fallback_budget: u64,
    ) -> Self {
        FootprintPressureSource {
            read: Box::new(read),
            fallback_budget,
            thresholds: UsageThresholds::default(),
            level: PressureLevel::Normal,
            last: None,
        }
    }

    /// Uses `thresholds`, after [`UsageThresholds::validate`].
    pub fn with_thresholds(mut self, thresholds: UsageThresholds) -> Result<Self> {
        thresholds.validate()?;
        self.thresholds = thresholds;
        Ok(self)
    }

    /// `(footprint, budget)` as read by the last poll that had a reading.
    pub fn last_usage(&self) -> Option<(u64, u64)> {
        self.last
    }
}

impl PressureSource for FootprintPressureSource {
    fn name(&self) -> &str {
        "footprint"
    }

    /// `None` when the platform gives no footprint or the budget is 0.
    fn poll(&mut self) -> Result<Option<PressureLevel>> {
        let Some(reading) = (self.read)()? else {
            return Ok(None);
        };
        let budget = reading.limit_bytes().unwrap_or(self.fallback_budget);
        self.last = Some((reading.bytes, budget));
        if budget == 0 {
            return Ok(None);
        }
        let ratio = reading.bytes as f64 / budget as f64;
        self.level = self.thresholds.next_level(self.level, ratio);
        Ok(Some(self.level))
    }
}

impl std::fmt::Debug for FootprintPressureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FootprintPressureSource")
            .field("fallback_budget", &self.fallback_budget)
            .field("thresholds", &self.thresholds)
            .field("level", &self.level)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}
