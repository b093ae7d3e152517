//! What a monitor tells about a pressure change, and to whom.
//!
//! The monitor sits below the memory manager in the layers and must not know it, so the manager
//! (and anything else that can free memory: a trainer shrinking its batch, a cache of
//! activations) registers as a [`PressureResponder`]. Closures are responders too, which keeps
//! tests and small programs short.

use super::PressureChange;
use std::sync::Weak;

/// Something that reacts to a change of the combined pressure level.
///
/// Called on the thread that polls the monitor (the caller of
/// [`crate::pressure::PressureMonitor::poll`] or the monitor's background thread), once per
/// change, in the order responders were registered. Keep it short and do not panic: on the
/// background thread a panic ends the monitoring.
pub trait PressureResponder: Send + Sync {
    /// The combined level went from `change.from` to `change.to`.
    fn on_pressure(&self, change: PressureChange);
}

impl<F: Fn(PressureChange) + Send + Sync> PressureResponder for F {
    fn on_pressure(&self, change: PressureChange) {
        self(change)
    }
}

/// A weak reference responds while its target lives and is skipped after. Register a `Weak`
/// when the responder owns the monitor's handle (a manager that owns its monitor), so that the
/// two do not keep each other alive.
impl<T: PressureResponder + ?Sized> PressureResponder for Weak<T> {
    fn on_pressure(&self, change: PressureChange) {
        if let Some(target) = self.upgrade() {
            target.on_pressure(change);
        }
    }
}
