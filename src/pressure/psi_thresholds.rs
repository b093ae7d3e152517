//! How PSI stall percentages map onto pressure levels.
//!
//! Kept apart from the Linux PSI source so the mapping is compiled and tested on every platform.
//!
//! The defaults, and why: `some avg10` is the share of the last 10 s in which at least one task
//! waited for memory; 10% means reclaim is costing real time, so Warning; 40% means the machine
//! is mostly waiting, so Critical. `full avg10` (all non-idle tasks stalled at once) is worse per
//! percent: 2% is Warning and 5% Critical, since a machine fully stalled for half a second in
//! ten is close to thrashing or the OOM killer. A level is left only when every figure that
//! could hold it has fallen below `clear_factor` (default 0.5) times its threshold, so an
//! average hovering at a threshold does not make the level flap.

use super::PressureLevel;
use super::parse::PsiSample;
use crate::error::{Error, Result};

/// Thresholds on PSI `avg10` percentages (0 to 100).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PsiThresholds {
    /// Warning when `some avg10` is at least this (default 10).
    pub some_warning: f64,
    /// Critical when `some avg10` is at least this (default 40).
    pub some_critical: f64,
    /// Warning when `full avg10` is at least this (default 2).
    pub full_warning: f64,
    /// Critical when `full avg10` is at least this (default 5).
    pub full_critical: f64,
    /// A level is left when its figures fall below this factor times the thresholds (default
    /// 0.5; 1.0 means no hysteresis).
    pub clear_factor: f64,
}

impl Default for PsiThresholds {
    fn default() -> Self {
        PsiThresholds {
            some_warning: 10.0,
            some_critical: 40.0,
            full_warning: 2.0,
            full_critical: 5.0,
            clear_factor: 0.5,
        }
    }
}

impl PsiThresholds {
    /// Checks every threshold is finite and above 0 (above 100 means "never"), each warning is
    /// at most its critical, and `0 < clear_factor <= 1`. Returns [`Error::InvalidArgument`].
    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| Error::InvalidArgument {
            what: "PSI thresholds",
            reason,
        };
        for (name, v) in [
            ("some_warning", self.some_warning),
            ("some_critical", self.some_critical),
            ("full_warning", self.full_warning),
            ("full_critical", self.full_critical),
        ] {
            if !v.is_finite() || v <= 0.0 {
                return Err(invalid(format!(
                    "{name} is {v}; a threshold is a percentage above 0 (above 100 disables it)"
                )));
            }
        }
        if self.some_warning > self.some_critical || self.full_warning > self.full_critical {
            return Err(invalid(format!(
                "a warning threshold exceeds its critical threshold ({self:?})"
            )));
        }
        if !(self.clear_factor > 0.0 && self.clear_factor <= 1.0) {
            return Err(invalid(format!(
                "clear_factor is {}; it must be above 0 and at most 1",
                self.clear_factor
            )));
        }
        Ok(())
    }

    /// The level after `current` for this sample.
    ///
    /// ```
    /// use wgmem::pressure::{PressureLevel, PsiThresholds};
    /// use wgmem::pressure::parse::{PsiLine, PsiSample};
    ///
    /// let t = PsiThresholds::default();
    /// let sample = |some: f64| PsiSample {
    ///     some: PsiLine { avg10: some, ..PsiLine::default() },
    ///     full: None,
    /// };
    /// assert_eq!(t.next_level(PressureLevel::Normal, &sample(12.0)), PressureLevel::Warning);
    /// assert_eq!(t.next_level(PressureLevel::Warning, &sample(6.0)), PressureLevel::Warning);
    /// assert_eq!(t.next_level(PressureLevel::Warning, &sample(4.0)), PressureLevel::Normal);
    /// ```
    pub fn next_level(&self, current: PressureLevel, sample: &PsiSample) -> PressureLevel {
        let entered = self.level_at(sample, 1.0);
        let held = self.level_at(sample, self.clear_factor).min(current);
        entered.max(held)
    }

    /// The level `sample` reaches with every threshold scaled by `factor`.
    fn level_at(&self, sample: &PsiSample, factor: f64) -> PressureLevel {
        let some = sample.some.avg10;
        let full = sample.full.map_or(0.0, |f| f.avg10);
        if some >= self.some_critical * factor || full >= self.full_critical * factor {
            PressureLevel::Critical
        } else if some >= self.some_warning * factor || full >= self.full_warning * factor {
            PressureLevel::Warning
        } else {
            PressureLevel::Normal
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pressure::parse::PsiLine;
    use PressureLevel::*;

    fn sample(some: f64, full: f64) -> PsiSample {
        let line = |avg10| PsiLine {
            avg10,
            ..PsiLine::default()
        };
        PsiSample {
            some: line(some),
            full: Some(line(full)),
        }
    }

    fn walk(seq: &[(f64, f64)]) -> Vec<PressureLevel> {
        let t = PsiThresholds::default();
        let mut level = Normal;
        seq.iter()
            .map(|&(s, f)| {
                level = t.next_level(level, &sample(s, f));
                level
            })
            .collect()
    }

    #[test]
    fn full_stalls_count_more_than_some_stalls() {
        assert_eq!(walk(&[(0.0, 0.0)]), [Normal]);
        assert_eq!(walk(&[(3.0, 2.5)]), [Warning]);
        assert_eq!(walk(&[(8.0, 6.0)]), [Critical]);
        assert_eq!(walk(&[(45.0, 0.0)]), [Critical]);
    }

    #[test]
    fn averages_hovering_at_a_threshold_do_not_flap() {
        assert_eq!(
            walk(&[(9.9, 0.0), (10.1, 0.0), (9.9, 0.0), (5.1, 0.0), (4.9, 0.0)]),
            [Normal, Warning, Warning, Warning, Normal]
        );
        assert_eq!(
            walk(&[(0.0, 5.0), (0.0, 4.0), (0.0, 2.4), (0.0, 0.9)]),
            [Critical, Critical, Warning, Normal]
        );
    }

    #[test]
    fn bad_thresholds_are_rejected() {
        let t = PsiThresholds {
            full_warning: 6.0,
            ..PsiThresholds::default()
        };
        assert!(t.validate().is_err());
        let t = PsiThresholds {
            clear_factor: 0.0,
            ..PsiThresholds::default()
        };
        assert!(t.validate().is_err());
        let t = PsiThresholds {
            some_warning: f64::NAN,
            ..PsiThresholds::default()
        };
        assert!(t.validate().is_err());
        assert!(PsiThresholds::default().validate().is_ok());
    }
}
