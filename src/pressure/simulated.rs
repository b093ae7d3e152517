//! A pressure source driven by hand, for tests and demos.
//!
//! Real pressure cannot be produced on demand in a test (and should not be, on a shared
//! machine), so the responses to it (eviction, cleanup callbacks, a smaller batch) are tested by
//! setting the level directly. A [`SimulatedSource`] goes into the monitor; its
//! [`SimulatedPressure`] handle stays with the test, which sets levels, queues a script of
//! levels, makes the source unavailable or makes its next poll fail.

use super::{PressureLevel, PressureSource};
use crate::error::{Error, Result};
use crate::sync::lock;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct State {
    level: Option<PressureLevel>,
    script: VecDeque<Option<PressureLevel>>,
    fail_next: Option<String>,
    polls: u64,
}

/// A [`PressureSource`] whose level is set through a [`SimulatedPressure`] handle.
///
/// ```
/// use wgmem::pressure::{PressureLevel, PressureMonitor, SimulatedSource};
///
/// let source = SimulatedSource::new("sim");
/// let pressure = source.handle();
/// let mut monitor = PressureMonitor::new();
/// monitor.add_source(source);
///
/// pressure.set(PressureLevel::Warning);
/// let change = monitor.poll().expect("a transition");
/// assert_eq!((change.from, change.to), (PressureLevel::Normal, PressureLevel::Warning));
/// assert!(monitor.poll().is_none()); // reported once
/// ```
#[derive(Debug)]
pub struct SimulatedSource {
    name: String,
    state: Arc<Mutex<State>>,
}

/// The test's end of a [`SimulatedSource`]. Cloneable and shareable across threads.
#[derive(Debug, Clone)]
pub struct SimulatedPressure {
    state: Arc<Mutex<State>>,
}

impl SimulatedSource {
    /// A source reporting [`PressureLevel::Normal`] until told otherwise.
    pub fn new(name: impl Into<String>) -> Self {
        SimulatedSource {
            name: name.into(),
            state: Arc::new(Mutex::new(State {
                level: Some(PressureLevel::Normal),
                ..State::default()
            })),
        }
    }

    /// A handle that drives this source.
    pub fn handle(&self) -> SimulatedPressure {
        SimulatedPressure {
            state: self.state.clone(),
        }
    }
}

impl SimulatedPressure {
    /// From the next poll on, the source reports `level`. Clears any script.
    pub fn set(&self, level: PressureLevel) {
        let mut state = lock(&self.state);
        state.script.clear();
        state.level = Some(level);
    }

    /// From the next poll on, the source reports nothing (as if the OS lacked the facility).
    pub fn set_unavailable(&self) {
        let mut state = lock(&self.state);
        state.script.clear();
        state.level = None;
    }

    /// Queues levels for the next polls, one per poll; after the last one the source keeps
    /// reporting it. `None` entries are polls where the source is unavailable.
    pub fn script(&self, levels: impl IntoIterator<Item = Option<PressureLevel>>) {
        lock(&self.state).script.extend(levels);
    }

    /// The next poll returns an error carrying `message` (an [`Error::Io`]); later polls are
    /// unaffected.
    pub fn fail_next_poll(&self, message: impl Into<String>) {
        lock(&self.state).fail_next = Some(message.into());
    }

    /// How many times the source has been polled.
    pub fn polls(&self) -> u64 {
        lock(&self.state).polls
    }
}

impl PressureSource for SimulatedSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn poll(&mut self) -> Result<Option<PressureLevel>> {
        let mut state = lock(&self.state);
        state.polls += 1;
        if let Some(message) = state.fail_next.take() {
            return Err(Error::Io(std::io::Error::other(message)));
        }
        if let Some(next) = state.script.pop_front() {
            state.level = next;
        }
        Ok(state.level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PressureLevel::*;

    #[test]
    fn set_level_is_reported_until_changed() {
        let mut source = SimulatedSource::new("sim");
        let handle = source.handle();
        assert_eq!(source.poll().unwrap(), Some(Normal));
        handle.set(Critical);
        assert_eq!(source.poll().unwrap(), Some(Critical));
        assert_eq!(source.poll().unwrap(), Some(Critical));
        handle.set_unavailable();
        assert_eq!(source.poll().unwrap(), None);
        assert_eq!(handle.polls(), 4);
    }

    #[test]
    fn script_plays_one_level_per_poll_then_holds_the_last() {
        let mut source = SimulatedSource::new("sim");
        let handle = source.handle();
        handle.script([Some(Warning), None, Some(Critical)]);
        let seen: Vec<_> = (0..5).map(|_| source.poll().unwrap()).collect();
        assert_eq!(
            seen,
            [
                Some(Warning),
                None,
                Some(Critical),
                Some(Critical),
                Some(Critical)
            ]
        );
    }

    #[test]
    fn injected_failure_hits_one_poll_only() {
        let mut source = SimulatedSource::new("sim");
        source.handle().fail_next_poll("disk on fire");
        let err = source.poll().unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
        assert_eq!(source.poll().unwrap(), Some(Normal));
    }
}
