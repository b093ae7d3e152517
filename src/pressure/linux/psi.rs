//! The PSI source: `/proc/pressure/memory` (or a cgroup's `memory.pressure`).

use super::read_optional;
use super::trigger::PsiTrigger;
use crate::error::Result;
use crate::pressure::parse::parse_psi;
use crate::pressure::{PressureLevel, PressureSource, PsiThresholds};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The machine-wide PSI file.
pub const PROC_PRESSURE_MEMORY: &str = "/proc/pressure/memory";

/// A [`PressureSource`] reading PSI memory stall averages, mapped by [`PsiThresholds`], with an
/// optional kernel trigger for early warning ([`PsiSource::with_trigger`]).
///
/// Unavailable (`Ok(None)`) when the file is absent or unreadable: kernels before 4.20, kernels
/// built or booted without PSI (`psi=0`), sandboxes.
#[derive(Debug)]
pub struct PsiSource {
    path: PathBuf,
    thresholds: PsiThresholds,
    level: PressureLevel,
    trigger: Option<(PsiTrigger, Duration)>,
    trigger_until: Option<Instant>,
}

impl Default for PsiSource {
    fn default() -> Self {
        Self::new()
    }
}

impl PsiSource {
    /// The machine-wide source, [`PROC_PRESSURE_MEMORY`], with default thresholds.
    pub fn new() -> Self {
        Self::with_path(PROC_PRESSURE_MEMORY)
    }

    /// A source reading another PSI file, e.g. `/sys/fs/cgroup/<group>/memory.pressure` for a
    /// container's own stalls.
    pub fn with_path(path: impl AsRef<Path>) -> Self {
        PsiSource {
            path: path.as_ref().to_path_buf(),
            thresholds: PsiThresholds::default(),
            level: PressureLevel::Normal,
            trigger: None,
            trigger_until: None,
        }
    }

    /// Uses `thresholds`, after [`PsiThresholds::validate`].
    pub fn with_thresholds(mut self, thresholds: PsiThresholds) -> Result<Self> {
        thresholds.validate()?;
        self.thresholds = thresholds;
        Ok(self)
    }

    /// Tries to arm a kernel trigger: when tasks stall for `stall` within a `window` (the
    /// kernel's example is 150 ms in 1 s), the source reports at least Warning for the next
    /// `window`, before the 10-second average catches up.
    ///
    /// Without `CAP_SYS_RESOURCE` the kernel (6.5 and later) accepts only windows that are a
    /// multiple of 2 s; a refused window is then rounded up to one, with `stall` scaled to keep
    /// the same share, and the rounding is logged. Where the kernel still refuses (older
    /// kernels, no PSI), this logs at debug level and the source reads averages only;
    /// [`PsiSource::has_trigger`] tells which. Arming writes the trigger into the file, as the
    /// kernel's interface requires: point it at PSI files only.
    pub fn with_trigger(mut self, stall: Duration, window: Duration) -> Self {
        let armed = PsiTrigger::arm(&self.path, stall, window)
            .map(|t| (t, window))
            .or_else(|e| {
                let rounded = round_up_to_2s(window);
                let ratio = rounded.as_secs_f64() / window.as_secs_f64();
                let scaled = Duration::try_from_secs_f64(stall.as_secs_f64() * ratio);
                let retry = rounded != window && e.kind() != std::io::ErrorKind::NotFound;
                let (true, Ok(scaled)) = (retry, scaled) else {
                    return Err(e);
                };
                let trigger = PsiTrigger::arm(&self.path, scaled, rounded)?;
                log::info!(
                    "PSI trigger of {stall:?} in {window:?} refused ({e}); \
                     armed {scaled:?} in {rounded:?} instead"
                );
                Ok((trigger, rounded))
            });
        match armed {
            Ok(trigger) => self.trigger = Some(trigger),
            Err(e) => log::debug!(
                "PSI trigger on {} not armed ({e}); reading averages only",
                self.path.display()
            ),
        }
        self
    }

    /// True when a kernel trigger is armed.
    pub fn has_trigger(&self) -> bool {
        self.trigger.is_some()
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the trigger fired; a trigger the kernel tore down is dropped (with a log line).
    fn trigger_fired(&mut self) -> bool {
        let Some((trigger, _)) = &self.trigger else {
            return false;
        };
        match trigger.fired() {
            Ok(fired) => fired,
            Err(e) => {
                log::warn!(
                    "PSI trigger on {} stopped ({e}); reading averages only",
                    self.path.display()
                );
                self.trigger = None;
                false
            }
        }
    }
}

impl PressureSource for PsiSource {
    fn name(&self) -> &str {
        "psi"
    }

    fn poll(&mut self) -> Result<Option<PressureLevel>> {
        let Some(text) = read_optional(&self.path)? else {
            return Ok(None);
        };
        let sample = parse_psi(&self.path, &text)?;
        self.level = self.thresholds.next_level(self.level, &sample);

        let now = Instant::now();
        if self.trigger_fired() {
            let window = self.trigger.as_ref().map_or(Duration::ZERO, |(_, w)| *w);
            self.trigger_until = Some(now + window);
        }
        let triggered = self.trigger_until.is_some_and(|until| now < until);
        if triggered {
            Ok(Some(self.level.max(PressureLevel::Warning)))
        } else {
            Ok(Some(self.level))
        }
    }
}

/// `window` rounded up to a whole multiple of 2 seconds (at least 2 s).
fn round_up_to_2s(window: Duration) -> Duration {
    let step = 2_000_000u128;
    let micros = window.as_micros().max(1);
    let rounded = micros.div_ceil(step) * step;
    Duration::from_micros(u64::try_from(rounded).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_windows_round_up_to_whole_2_second_steps() {
        let s = Duration::from_secs;
        assert_eq!(round_up_to_2s(Duration::from_millis(500)), s(2));
        assert_eq!(round_up_to_2s(s(1)), s(2));
        assert_eq!(round_up_to_2s(s(2)), s(2));
        assert_eq!(round_up_to_2s(Duration::from_millis(2001)), s(4));
        assert_eq!(round_up_to_2s(Duration::ZERO), s(2));
    }
}
