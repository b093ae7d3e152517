//! Pressure from the device budget: the bytes we hold against the bytes we should hold.
//!
//! The OS signals say how pressed the whole machine is; this source says how close *we* are to
//! the device's budget (on Apple Silicon, Metal's recommended working set; elsewhere a configured
//! figure). It is the one source that works the same on every platform and backend, so it is the
//! one the tests can drive exactly. The memory manager passes a closure returning
//! `(live + cached, capabilities().memory_budget)`; the source knows nothing of the manager.

use super::{PressureLevel, PressureSource, UsageThresholds};
use crate::error::Result;

/// The closure a [`BudgetSource`] reads: `(used_bytes, budget_bytes)`.
type UsageFn = dyn Fn() -> (u64, u64) + Send;

/// A [`PressureSource`] from a used/budget byte count, with hysteresis
/// ([`UsageThresholds`]: Warning at 80%, Critical at 95%, back to Warning below 90% and to
/// Normal below 70% by default).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use wgmem::pressure::{BudgetSource, PressureLevel, PressureSource};
///
/// let used = Arc::new(AtomicU64::new(0));
/// let reader = used.clone();
/// let mut source = BudgetSource::new(move || (reader.load(Ordering::Relaxed), 1000));
/// used.store(850, Ordering::Relaxed);
/// assert_eq!(source.poll()?, Some(PressureLevel::Warning));
/// used.store(750, Ordering::Relaxed); // below 80% but not below 70%: still Warning
/// assert_eq!(source.poll()?, Some(PressureLevel::Warning));
/// # Ok::<(), wgmem::Error>(())
/// ```
pub struct BudgetSource {
    name: String,
    usage: Box<UsageFn>,
    thresholds: UsageThresholds,
    level: PressureLevel,
    last: Option<(u64, u64)>,
}

impl BudgetSource {
    /// A source named `"budget"` reading `usage` with the default thresholds.
    pub fn new(usage: impl Fn() -> (u64, u64) + Send + 'static) -> Self {
        BudgetSource {
            name: "budget".to_owned(),
            usage: Box::new(usage),
            thresholds: UsageThresholds::default(),
            level: PressureLevel::Normal,
            last: None,
        }
    }

    /// A source with the given thresholds, validated ([`UsageThresholds::validate`]).
    pub fn with_thresholds(
        usage: impl Fn() -> (u64, u64) + Send + 'static,
        thresholds: UsageThresholds,
    ) -> Result<Self> {
        thresholds.validate()?;
        let mut source = Self::new(usage);
        source.thresholds = thresholds;
        Ok(source)
    }

    /// Renames the source (for logs, when a monitor has more than one budget).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The thresholds in use.
    pub fn thresholds(&self) -> &UsageThresholds {
        &self.thresholds
    }

    /// `(used, budget)` as read by the last poll.
    pub fn last_usage(&self) -> Option<(u64, u64)> {
        self.last
    }
}

impl PressureSource for BudgetSource {
    fn name(&self) -> &str {
        &self.name
    }

    /// The level after this reading; `None` while the budget is 0 (nothing to compare with).
    fn poll(&mut self) -> Result<Option<PressureLevel>> {
        let (used, budget) = (self.usage)();
        self.last = Some((used, budget));
        if budget == 0 {
            return Ok(None);
        }
        let ratio = used as f64 / budget as f64;
        self.level = self.thresholds.next_level(self.level, ratio);
        Ok(Some(self.level))
    }
}

impl std::fmt::Debug for BudgetSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BudgetSource")
            .field("name", &self.name)
            .field("thresholds", &self.thresholds)
            .field("level", &self.level)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PressureLevel::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A budget of 10,000 bytes whose usage the test sets in hundredths of a percent.
    fn source() -> (BudgetSource, Arc<AtomicU64>) {
        let used = Arc::new(AtomicU64::new(0));
        let reader = used.clone();
        (
            BudgetSource::new(move || (reader.load(Ordering::Relaxed), 10_000)),
            used,
        )
    }

    fn levels(source: &mut BudgetSource, used: &AtomicU64, seq: &[u64]) -> Vec<PressureLevel> {
        seq.iter()
            .map(|&u| {
                used.store(u, Ordering::Relaxed);
                source.poll().unwrap().unwrap()
            })
            .collect()
    }

    #[test]
    fn usage_hovering_at_80_percent_does_not_flap() {
        let (mut s, used) = source();
        // 79.9%, 80.1%, then hovering, then 70.0% (still Warning), 69.9% (Normal).
        let seen = levels(
            &mut s,
            &used,
            &[7_990, 8_010, 7_990, 8_010, 7_990, 7_000, 6_990, 7_990],
        );
        assert_eq!(
            seen,
            [
                Normal, Warning, Warning, Warning, Warning, Warning, Normal, Normal
            ]
        );
    }

    #[test]
    fn usage_reaches_critical_and_comes_back_through_warning() {
        let (mut s, used) = source();
        let seen = levels(
            &mut s,
            &used,
            &[5_000, 9_600, 9_400, 9_100, 8_900, 7_500, 6_000],
        );
        assert_eq!(
            seen,
            [
                Normal, Critical, Critical, Critical, Warning, Warning, Normal
            ]
        );
        assert_eq!(s.last_usage(), Some((6_000, 10_000)));
    }

    #[test]
    fn zero_budget_reports_nothing() {
        let mut s = BudgetSource::new(|| (5, 0));
        assert_eq!(s.poll().unwrap(), None);
    }

    #[test]
    fn custom_thresholds_are_validated_and_used() {
        let t = UsageThresholds {
            warning_at: 0.5,
            critical_at: 0.6,
            critical_clear_below: 0.55,
            normal_below: 0.4,
        };
        let mut s = BudgetSource::with_thresholds(|| (51, 100), t)
            .unwrap()
            .named("gpu0");
        assert_eq!(s.name(), "gpu0");
        assert_eq!(s.poll().unwrap(), Some(Warning));

        let inverted = UsageThresholds {
            warning_at: 0.9,
            critical_at: 0.8,
            ..UsageThresholds::default()
        };
        assert!(BudgetSource::with_thresholds(|| (0, 1), inverted).is_err());
    }
}
