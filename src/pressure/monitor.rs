//! Combines pressure sources into one level and reports its changes.
//!
//! Several signals can be live at once (the OS's view of the machine, the cgroup's limit, our
//! own budget); the memory manager needs one answer. The worst level any source reports wins,
//! and only *changes* of that level are reported, once each, so a responder's work (an eviction)
//! happens once per transition, not once per poll. The monitor runs on demand
//! ([`PressureMonitor::poll`], e.g. once per training step) or on its own thread
//! ([`PressureMonitor::spawn`]).

use super::{PressureChange, PressureLevel, PressureResponder, PressureSource};
use crate::error::Result;
use crate::sync::lock;
use std::fmt;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The shortest interval [`PressureMonitor::spawn`] accepts; shorter ones are raised to it.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(1);

/// How many changes a monitor has reported, by the level changed to, and how many source
/// polls failed. Plain data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PressureCounts {
    /// Changes back to [`PressureLevel::Normal`].
    pub normal: u64,
    /// Changes to [`PressureLevel::Warning`] (from either side).
    pub warning: u64,
    /// Changes to [`PressureLevel::Critical`].
    pub critical: u64,
    /// Source polls that returned an error.
    pub source_errors: u64,
}

impl PressureCounts {
    /// All changes reported.
    pub fn changes(&self) -> u64 {
        self.normal + self.warning + self.critical
    }

    /// Changes to `level`.
    pub fn to_level(&self, level: PressureLevel) -> u64 {
        match level {
            PressureLevel::Normal => self.normal,
            PressureLevel::Warning => self.warning,
            PressureLevel::Critical => self.critical,
        }
    }
}

impl fmt::Display for PressureCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pressure changes {} (to normal {}, warning {}, critical {}), source errors {}",
            self.changes(),
            self.normal,
            self.warning,
            self.critical,
            self.source_errors
        )
    }
}

/// State readable while the monitor runs on its thread.
#[derive(Default)]
struct Shared {
    level: AtomicU8,
    changes: [AtomicU64; 3],
    source_errors: AtomicU64,
    responders: Mutex<Vec<Arc<dyn PressureResponder>>>,
}

impl Shared {
    fn level(&self) -> PressureLevel {
        PressureLevel::from_index(self.level.load(Ordering::Acquire) as usize)
    }

    fn counts(&self) -> PressureCounts {
        let get = |l: PressureLevel| self.changes[l.index()].load(Ordering::Relaxed);
        PressureCounts {
            normal: get(PressureLevel::Normal),
            warning: get(PressureLevel::Warning),
            critical: get(PressureLevel::Critical),
            source_errors: self.source_errors.load(Ordering::Relaxed),
        }
    }

    fn add_responder(&self, responder: Arc<dyn PressureResponder>) {
        lock(&self.responders).push(responder);
    }
}

struct Polled {
    source: Box<dyn PressureSource>,
    level: Option<PressureLevel>,
    /// The last error's message while the source keeps failing, to log each failure once.
    error: Option<String>,
    /// Whether the last successful poll had something to say; `None` before the first.
    available: Option<bool>,
}

/// Polls [`PressureSource`]s, keeps the combined level (the worst reported), and tells
/// [`PressureResponder`]s about each change. Every change is logged (`info` back to Normal,
/// `warn` up to Warning or Critical) and counted ([`PressureMonitor::counts`]).
///
/// A source that reports nothing (`Ok(None)`) or fails (`Err`) is left out of the combined
/// level for that poll; a failure is logged once until the source recovers, and counted. With no
/// source reporting, the level is Normal.
pub struct PressureMonitor {
    sources: Vec<Polled>,
    shared: Arc<Shared>,
}

impl Default for PressureMonitor {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for PressureMonitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PressureMonitor")
            .field("sources", &self.source_names())
            .field("level", &self.level())
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl PressureMonitor {
    /// A monitor with no sources and no responders, at [`PressureLevel::Normal`].
    pub fn new() -> Self {
        PressureMonitor {
            sources: Vec::new(),
            shared: Arc::new(Shared::default()),
        }
    }

    /// Adds a source; it takes part from the next poll.
    pub fn add_source(&mut self, source: impl PressureSource + 'static) {
        self.sources.push(Polled {
            source: Box::new(source),
            level: None,
            error: None,
            available: None,
        });
    }

    /// Adds a responder, called after those added before it.
    pub fn add_responder(&mut self, responder: Arc<dyn PressureResponder>) {
        self.shared.add_responder(responder);
    }

    /// The names of the sources, in the order they were added.
    pub fn source_names(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|p| p.source.name().to_owned())
            .collect()
    }

    /// The combined level after the last poll.
    pub fn level(&self) -> PressureLevel {
        self.shared.level()
    }

    /// Changes and source errors so far.
    pub fn counts(&self) -> PressureCounts {
        self.shared.counts()
    }

    /// Polls every source once. When the combined level changed, logs and counts the change,
    /// calls the responders in order, and returns it; otherwise returns `None`.
    pub fn poll(&mut self) -> Option<PressureChange> {
        let mut changed_now = vec![false; self.sources.len()];
        for (polled, changed) in self.sources.iter_mut().zip(&mut changed_now) {
            let level = match polled.source.poll() {
                Ok(level) => {
                    if polled.error.take().is_some() {
                        log::info!("pressure source '{}' recovered", polled.source.name());
                    }
                    if polled.available != Some(level.is_some()) {
                        polled.available = Some(level.is_some());
                        let state = if level.is_some() {
                            "reporting"
                        } else {
                            "unavailable"
                        };
                        log::debug!("pressure source '{}' is {state}", polled.source.name());
                    }
                    level
                }
                Err(err) => {
                    self.shared.source_errors.fetch_add(1, Ordering::Relaxed);
                    let message = err.to_string();
                    if polled.error.as_deref() != Some(message.as_str()) {
                        log::warn!(
                            "pressure source '{}' failed, left out until it recovers: {message}",
                            polled.source.name()
                        );
                    }
                    polled.error = Some(message);
                    None
                }
            };
            *changed = level != polled.level;
            polled.level = level;
        }

        let from = self.level();
        let to = self
            .sources
            .iter()
            .filter_map(|p| p.level)
            .max()
            .unwrap_or_default();
        if to == from {
            return None;
        }
        // Name the source that set the new level, preferring one that changed in this poll
        // (on a fall to Normal, the source that came down rather than one that was already there).
        let at_new_level = || {
            self.sources
                .iter()
                .zip(&changed_now)
                .filter(|(p, _)| p.level == Some(to))
        };
        let source = at_new_level()
            .find(|(_, changed)| **changed)
            .or_else(|| at_new_level().next())
            .map_or("no source", |(p, _)| p.source.name())
            .to_owned();
        let change = PressureChange {
            from,
            to,
            source,
            at: Instant::now(),
        };

        self.shared.level.store(to.index() as u8, Ordering::Release);
        self.shared.changes[to.index()].fetch_add(1, Ordering::Relaxed);
        if to == PressureLevel::Normal {
            log::info!("{change}");
        } else {
            log::warn!("{change}");
        }
        // Call outside the lock, so that a responder may register another one.
        let responders = lock(&self.shared.responders).clone();
        for responder in &responders {
            responder.on_pressure(change.clone());
        }
        Some(change)
    }

    /// Runs [`PressureMonitor::poll`] on a thread named `wgmem-pressure`, once right away and
    /// then every `interval` (at least [`MIN_POLL_INTERVAL`]), until the returned handle is
    /// dropped or [`PressureMonitorHandle::stop`] is called.
    pub fn spawn(self, interval: Duration) -> Result<PressureMonitorHandle> {
        let interval = if interval < MIN_POLL_INTERVAL {
            log::warn!(
                "pressure poll interval {interval:?} raised to the minimum {MIN_POLL_INTERVAL:?}"
            );
            MIN_POLL_INTERVAL
        } else {
            interval
        };
        let shared = self.shared.clone();
        let (stop, stopped) = mpsc::channel::<()>();
        let mut monitor = self;
        let thread = thread::Builder::new()
            .name("wgmem-pressure".to_owned())
            .spawn(move || {
                loop {
                    monitor.poll();
                    // A message or a dropped sender both mean stop; only a timeout goes on.
                    match stopped.recv_timeout(interval) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
                monitor
            })?;
        Ok(PressureMonitorHandle {
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// A [`PressureMonitor`] running on its own thread. Dropping the handle stops the thread and
/// waits for it (at most one poll).
pub struct PressureMonitorHandle {
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<PressureMonitor>>,
}

impl fmt::Debug for PressureMonitorHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PressureMonitorHandle")
            .field("level", &self.level())
            .field("counts", &self.counts())
            .finish_non_exhaustive()
    }
}

impl PressureMonitorHandle {
    /// The combined level after the last poll.
    pub fn level(&self) -> PressureLevel {
        self.shared.level()
    }

    /// Changes and source errors so far.
    pub fn counts(&self) -> PressureCounts {
        self.shared.counts()
    }

    /// Adds a responder while the monitor runs; it hears the changes after this call.
    pub fn add_responder(&self, responder: Arc<dyn PressureResponder>) {
        self.shared.add_responder(responder);
    }

    /// Stops the thread and gives the monitor back (to poll by hand, or spawn again). `None`
    /// when the thread ended by a panic (a responder or source panicked).
    pub fn stop(mut self) -> Option<PressureMonitor> {
        self.stop.take();
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl Drop for PressureMonitorHandle {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            // A responder that drops the handle runs on the monitor's own thread: joining it
            // there would wait forever. The thread sees the closed channel and ends by itself.
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pressure::SimulatedSource;
    use PressureLevel::*;

    fn recorder() -> (Arc<Mutex<Vec<PressureChange>>>, Arc<dyn PressureResponder>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let responder: Arc<dyn PressureResponder> =
            Arc::new(move |c: PressureChange| lock(&sink).push(c));
        (seen, responder)
    }

    #[test]
    fn failing_source_is_left_out_counted_and_logged_once() {
        let good = SimulatedSource::new("good");
        let bad = SimulatedSource::new("bad");
        let (good_h, bad_h) = (good.handle(), bad.handle());
        let mut monitor = PressureMonitor::new();
        monitor.add_source(good);
        monitor.add_source(bad);
        bad_h.set(Critical);
        good_h.set(Warning);
        assert_eq!(monitor.poll().map(|c| c.to), Some(Critical));
        bad_h.fail_next_poll("unreadable");
        let change = monitor.poll().expect("critical source left out");
        assert_eq!((change.to, change.source.as_str()), (Warning, "good"));
        assert_eq!(monitor.counts().source_errors, 1);
        assert_eq!(monitor.poll().map(|c| c.to), Some(Critical));
    }

    #[test]
    fn no_source_reporting_means_normal() {
        let source = SimulatedSource::new("only");
        let handle = source.handle();
        let mut monitor = PressureMonitor::new();
        monitor.add_source(source);
        handle.set(Warning);
        monitor.poll();
        handle.set_unavailable();
        let change = monitor.poll().expect("back to normal");
        assert_eq!((change.to, change.source.as_str()), (Normal, "no source"));
    }

    #[test]
    fn dropping_the_handle_stops_the_thread_promptly() {
        let source = SimulatedSource::new("sim");
        let handle = source.handle();
        let mut monitor = PressureMonitor::new();
        monitor.add_source(source);
        let running = monitor.spawn(Duration::from_secs(3600)).unwrap();
        // The first poll happens right away; dropping does not wait for the hour.
        let started = Instant::now();
        while handle.polls() == 0 && started.elapsed() < Duration::from_secs(5) {
            thread::yield_now();
        }
        drop(running);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(handle.polls(), 1);
    }

    #[test]
    fn a_responder_may_drop_the_handle_of_its_own_monitor() {
        let source = SimulatedSource::new("sim");
        let pressure = source.handle();
        let mut monitor = PressureMonitor::new();
        monitor.add_source(source);
        let slot: Arc<Mutex<Option<PressureMonitorHandle>>> = Arc::default();
        let in_responder = slot.clone();
        let (done, finished) = mpsc::channel();
        let done = Mutex::new(done);
        monitor.add_responder(Arc::new(move |_: PressureChange| {
            // Runs on the monitor's thread: this drop must not wait for that thread.
            drop(lock(&in_responder).take());
            let _ = lock(&done).send(());
        }));
        *lock(&slot) = Some(monitor.spawn(Duration::from_millis(1)).unwrap());
        pressure.set(Warning);
        finished
            .recv_timeout(Duration::from_secs(5))
            .expect("the responder returned");
        assert!(lock(&slot).is_none());
        let polls = pressure.polls();
        thread::sleep(Duration::from_millis(20));
        assert_eq!(pressure.polls(), polls, "the thread ended");
    }

    #[test]
    fn responder_added_through_the_handle_hears_later_changes() {
        let source = SimulatedSource::new("sim");
        let pressure = source.handle();
        let mut monitor = PressureMonitor::new();
        monitor.add_source(source);
        let running = monitor.spawn(Duration::from_millis(1)).unwrap();
        let (seen, responder) = recorder();
        running.add_responder(responder);
        pressure.set(Critical);
        let started = Instant::now();
        while running.level() != Critical && started.elapsed() < Duration::from_secs(5) {
            thread::sleep(Duration::from_millis(1));
        }
        let monitor = running.stop().expect("thread ended cleanly");
        assert_eq!(monitor.level(), Critical);
        assert_eq!(monitor.counts().critical, 1);
        let seen = lock(&seen);
        assert_eq!(seen.len(), 1);
        assert_eq!((seen[0].from, seen[0].to), (Normal, Critical));
    }
}
