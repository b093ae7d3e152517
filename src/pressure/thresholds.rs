//! Usage-ratio thresholds with hysteresis, shared by the budget and cgroup sources.
//!
//! A byte count that hovers around a threshold (79.9%, 80.1%, 79.9%, ...) must not make the
//! level flap: every flap is a round of evictions, and evicting at 80% only to refill the pools
//! at 79.9% costs more than it saves. So a level is entered at one ratio and left only at a lower
//! one: Warning is entered at 80% and left below 70%; Critical is entered at 95% and left below
//! 90%.

use super::PressureLevel;
use crate::error::{Error, Result};

/// Where a usage ratio (used / budget) enters and leaves each level. Ratios are fractions:
/// `0.8` is 80%. Used by [`crate::pressure::BudgetSource`] and the Linux cgroup source.
///
/// ```
/// use wgmem::pressure::{PressureLevel, UsageThresholds};
///
/// let t = UsageThresholds::default();
/// t.validate()?;
/// assert_eq!(t.next_level(PressureLevel::Normal, 0.801), PressureLevel::Warning);
/// // Once in Warning, hovering just under the entry threshold stays Warning...
/// assert_eq!(t.next_level(PressureLevel::Warning, 0.799), PressureLevel::Warning);
/// // ...until the ratio falls below the exit threshold.
/// assert_eq!(t.next_level(PressureLevel::Warning, 0.69), PressureLevel::Normal);
/// # Ok::<(), wgmem::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UsageThresholds {
    /// Warning is entered at this ratio or above (default 0.80).
    pub warning_at: f64,
    /// Critical is entered at this ratio or above (default 0.95).
    pub critical_at: f64,
    /// From Critical, the level drops to Warning below this ratio (default 0.90).
    pub critical_clear_below: f64,
    /// From Warning (or Critical), the level drops to Normal below this ratio (default 0.70).
    pub normal_below: f64,
}

impl Default for UsageThresholds {
    fn default() -> Self {
        UsageThresholds {
            warning_at: 0.80,
            critical_at: 0.95,
            critical_clear_below: 0.90,
            normal_below: 0.70,
        }
    }
}

impl UsageThresholds {
    /// Checks that the thresholds make a well-formed hysteresis:
    /// `0 < normal_below <= warning_at < critical_at`, and
    /// `normal_below <= critical_clear_below <= critical_at`, all finite. Ratios above 1 are
    /// allowed (a budget is a recommendation that usage may exceed).
    ///
    /// Returns [`Error::InvalidArgument`] naming the rule that failed.
    pub fn validate(&self) -> Result<()> {
        let fields = [
            ("warning_at", self.warning_at),
            ("critical_at", self.critical_at),
            ("critical_clear_below", self.critical_clear_below),
            ("normal_below", self.normal_below),
        ];
        for (name, value) in fields {
            if !value.is_finite() || value <= 0.0 {
                return Err(invalid(format!(
                    "{name} is {value}; every ratio must be finite and above 0 (0.8 means 80%)"
                )));
            }
        }
        let rules = [
            (
                self.normal_below <= self.warning_at,
                "normal_below must not exceed warning_at",
            ),
            (
                self.warning_at < self.critical_at,
                "warning_at must be below critical_at",
            ),
            (
                self.critical_clear_below <= self.critical_at,
                "critical_clear_below must not exceed critical_at",
            ),
            (
                self.normal_below <= self.critical_clear_below,
                "normal_below must not exceed critical_clear_below",
            ),
        ];
        for (ok, rule) in rules {
            if !ok {
                return Err(invalid(format!("{rule} (got {self:?})")));
            }
        }
        Ok(())
    }

    /// The level after `current` when the usage ratio is `ratio`.
    ///
    /// Rising is immediate (Normal can go straight to Critical); falling passes through the
    /// exit thresholds (Critical below `critical_clear_below` becomes Warning, or Normal when it
    /// is also below `normal_below`). A NaN ratio keeps the current level.
    pub fn next_level(&self, current: PressureLevel, ratio: f64) -> PressureLevel {
        use PressureLevel::*;
        if ratio.is_nan() {
            return current;
        }
        if ratio >= self.critical_at {
            return Critical;
        }
        let held = match current {
            Critical if ratio >= self.critical_clear_below => Critical,
            Critical | Warning if ratio >= self.normal_below => Warning,
            _ => Normal,
        };
        let entered = if ratio >= self.warning_at {
            Warning
        } else {
            Normal
        };
        held.max(entered)
    }
}

fn invalid(reason: String) -> Error {
    Error::InvalidArgument {
        what: "pressure thresholds",
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PressureLevel::*;

    fn walk(t: &UsageThresholds, ratios: &[f64]) -> Vec<PressureLevel> {
        let mut level = Normal;
        ratios
            .iter()
            .map(|&r| {
                level = t.next_level(level, r);
                level
            })
            .collect()
    }

    #[test]
    fn hovering_at_the_warning_threshold_stays_warning_until_below_normal() {
        let t = UsageThresholds::default();
        let levels = walk(&t, &[0.799, 0.801, 0.799, 0.801, 0.75, 0.70, 0.699]);
        assert_eq!(
            levels,
            [Normal, Warning, Warning, Warning, Warning, Warning, Normal]
        );
    }

    #[test]
    fn critical_is_left_below_its_clear_threshold_to_warning_or_normal() {
        let t = UsageThresholds::default();
        assert_eq!(
            walk(&t, &[0.96, 0.94, 0.90, 0.899, 0.96, 0.5]),
            [Critical, Critical, Critical, Warning, Critical, Normal]
        );
    }

    #[test]
    fn nan_ratio_keeps_the_level() {
        let t = UsageThresholds::default();
        assert_eq!(t.next_level(Warning, f64::NAN), Warning);
    }

    #[test]
    fn inverted_or_non_finite_thresholds_are_rejected_with_the_rule() {
        let bad = UsageThresholds {
            warning_at: 0.95,
            critical_at: 0.9,
            ..UsageThresholds::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("warning_at must be below critical_at"),
            "{err}"
        );

        let bad = UsageThresholds {
            normal_below: 0.85,
            ..UsageThresholds::default()
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("normal_below must not exceed warning_at"),
            "{err}"
        );

        let bad = UsageThresholds {
            critical_at: f64::INFINITY,
            ..UsageThresholds::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(Error::InvalidArgument {
                what: "pressure thresholds",
                ..
            })
        ));
        assert!(UsageThresholds::default().validate().is_ok());
    }
}
