//! The three pressure levels and the record of a change between them.
//!
//! Three levels and no more, because the memory manager has exactly three responses: do nothing,
//! give back half of what the pools cache, give back everything and run the cleanup callbacks.
//! Finer signals (PSI percentages, budget ratios) are mapped onto these levels by each source.

use std::fmt;
use std::time::Instant;

/// How hard the machine (or the device budget) is pressed for memory.
///
/// Ordered: `Normal < Warning < Critical`, so the worst of several levels is their `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum PressureLevel {
    /// Nothing to do.
    #[default]
    Normal,
    /// Memory is getting short: give back part of what is cached.
    Warning,
    /// Memory is about to run out: give back everything that can be given back.
    Critical,
}

impl PressureLevel {
    /// All levels, from the mildest.
    pub const ALL: [PressureLevel; 3] = [
        PressureLevel::Normal,
        PressureLevel::Warning,
        PressureLevel::Critical,
    ];

    /// Lower-case name: `"normal"`, `"warning"`, `"critical"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PressureLevel::Normal => "normal",
            PressureLevel::Warning => "warning",
            PressureLevel::Critical => "critical",
        }
    }

    /// 0, 1 or 2; the inverse of [`PressureLevel::from_index`].
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The level with [`PressureLevel::index`] `i`; `Critical` for anything above 2.
    pub(crate) fn from_index(i: usize) -> Self {
        match i {
            0 => PressureLevel::Normal,
            1 => PressureLevel::Warning,
            _ => PressureLevel::Critical,
        }
    }
}

impl fmt::Display for PressureLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A change of the combined pressure level, as a monitor reports it to its responders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PressureChange {
    /// The level before.
    pub from: PressureLevel,
    /// The level now.
    pub to: PressureLevel,
    /// The name of the source whose report set the new level.
    pub source: String,
    /// When the monitor saw the change.
    pub at: Instant,
}

impl PressureChange {
    /// True when pressure went up (`to > from`).
    pub fn is_rise(&self) -> bool {
        self.to > self.from
    }
}

impl fmt::Display for PressureChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "memory pressure {} -> {} (source: {})",
            self.from, self.to, self.source
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_order_from_normal_to_critical() {
        use PressureLevel::*;
        assert!(Normal < Warning && Warning < Critical);
        assert_eq!(
            [Warning, Critical, Normal].into_iter().max(),
            Some(Critical)
        );
        assert_eq!(PressureLevel::default(), Normal);
    }

    #[test]
    fn levels_display_lower_case_and_round_trip_through_index() {
        for level in PressureLevel::ALL {
            assert_eq!(PressureLevel::from_index(level.index()), level);
        }
        assert_eq!(PressureLevel::Warning.to_string(), "warning");
        assert_eq!(format!("{:>8}", PressureLevel::Normal), "  normal");
    }

    #[test]
    fn change_displays_both_levels_and_the_source() {
        let change = PressureChange {
            from: PressureLevel::Normal,
            to: PressureLevel::Critical,
            source: "budget".into(),
            at: Instant::now(),
        };
        assert!(change.is_rise());
        assert_eq!(
            change.to_string(),
            "memory pressure normal -> critical (source: budget)"
        );
    }
}
