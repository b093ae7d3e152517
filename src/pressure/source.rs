//! The trait every pressure signal implements.
//!
//! The signals differ a lot (a libdispatch callback, a `/proc` file, a cgroup counter, the
//! manager's own byte count), but the monitor only needs one question answered at each tick:
//! "what level do you see now?". Keeping the trait that small lets a test replace any of them
//! with a [`crate::pressure::SimulatedSource`].

use super::PressureLevel;
use crate::error::Result;

/// A signal of memory pressure that a [`crate::pressure::PressureMonitor`] polls.
///
/// Implementations keep whatever state they need between polls (hysteresis, the last counter
/// values, a subscription to an OS notification) and map their signal onto a
/// [`PressureLevel`].
pub trait PressureSource: Send {
    /// A short name for logs and [`crate::pressure::PressureChange::source`]: `"psi"`,
    /// `"cgroup"`, `"budget"`, `"dispatch"`.
    fn name(&self) -> &str;

    /// The level this source sees now.
    ///
    /// `Ok(None)` means the source has nothing to say: the OS lacks the facility (no PSI, no
    /// cgroup v2, not permitted) or there is nothing to measure yet. That is not an error; the
    /// monitor simply leaves the source out of the combined level. `Err` means the signal exists
    /// but could not be read or understood (a malformed file); the monitor logs it and also
    /// leaves the source out for that poll.
    fn poll(&mut self) -> Result<Option<PressureLevel>>;
}

impl<S: PressureSource + ?Sized> PressureSource for Box<S> {
    fn name(&self) -> &str {
        (**self).name()
    }

    fn poll(&mut self) -> Result<Option<PressureLevel>> {
        (**self).poll()
    }
}
