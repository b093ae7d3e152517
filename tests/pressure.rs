//! The pressure monitor driven by simulated and budget sources: each transition is reported
//! once, the worst source wins, a return to Normal is reported, responders are called in
//! registration order, counts add up, a hovering budget does not flap, and the background thread
//! reports what `poll` would. Everything here is fast and platform-independent.

use PressureLevel::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wgmem::pressure::{
    BudgetSource, PressureChange, PressureCounts, PressureLevel, PressureMonitor,
    PressureResponder, SimulatedPressure, SimulatedSource,
};

/// A responder that records every change it hears, tagged with its own name.
struct Recorder {
    name: &'static str,
    log: Log,
}

impl PressureResponder for Recorder {
    fn on_pressure(&self, change: PressureChange) {
        self.log
            .lock()
            .unwrap()
            .push((self.name, change.from, change.to, change.source));
    }
}

/// What recorders heard: `(responder, from, to, source)`.
type Log = Arc<Mutex<Vec<(&'static str, PressureLevel, PressureLevel, String)>>>;

fn monitor_with(names: &[&str]) -> (PressureMonitor, Vec<SimulatedPressure>, Log) {
    let mut monitor = PressureMonitor::new();
    let mut handles = Vec::new();
    for name in names {
        let source = SimulatedSource::new(*name);
        handles.push(source.handle());
        monitor.add_source(source);
    }
    let log: Log = Arc::default();
    monitor.add_responder(Arc::new(Recorder {
        name: "first",
        log: log.clone(),
    }));
    (monitor, handles, log)
}

fn transitions(log: &Log) -> Vec<(PressureLevel, PressureLevel, String)> {
    log.lock()
        .unwrap()
        .iter()
        .map(|(_, from, to, source)| (*from, *to, source.clone()))
        .collect()
}

#[test]
fn each_transition_is_reported_once() {
    let (mut monitor, h, log) = monitor_with(&["sim"]);
    assert_eq!(monitor.poll(), None, "normal at start is no change");
    h[0].set(Warning);
    let change = monitor.poll().unwrap();
    assert_eq!(
        (change.from, change.to, change.source.as_str()),
        (Normal, Warning, "sim")
    );
    for _ in 0..5 {
        assert_eq!(monitor.poll(), None);
    }
    h[0].set(Critical);
    monitor.poll();
    monitor.poll();
    assert_eq!(
        transitions(&log),
        [
            (Normal, Warning, "sim".into()),
            (Warning, Critical, "sim".into())
        ]
    );
    assert_eq!(monitor.level(), Critical);
}

#[test]
fn worst_source_wins_and_names_itself() {
    let (mut monitor, h, log) = monitor_with(&["os", "budget"]);
    h[0].set(Warning);
    h[1].set(Critical);
    assert_eq!(monitor.poll().unwrap().source, "budget");
    h[0].set(Critical);
    assert_eq!(
        monitor.poll(),
        None,
        "a second source at the same level changes nothing"
    );
    h[1].set(Normal);
    assert_eq!(monitor.poll(), None, "the other source still says Critical");
    h[0].set(Warning);
    let change = monitor.poll().unwrap();
    assert_eq!((change.to, change.source.as_str()), (Warning, "os"));
    assert_eq!(transitions(&log).len(), 2);
}

#[test]
fn return_to_normal_is_reported_and_names_the_source_that_came_down() {
    let (mut monitor, h, log) = monitor_with(&["quiet", "loud"]);
    h[1].set(Critical);
    monitor.poll();
    h[1].set(Normal);
    let change = monitor.poll().unwrap();
    assert_eq!((change.from, change.to), (Critical, Normal));
    assert_eq!(change.source, "loud");
    assert_eq!(
        transitions(&log).last().unwrap(),
        &(Critical, Normal, "loud".to_owned())
    );
}

#[test]
fn responders_are_called_in_registration_order() {
    let (mut monitor, h, log) = monitor_with(&["sim"]);
    for name in ["second", "third"] {
        monitor.add_responder(Arc::new(Recorder {
            name,
            log: log.clone(),
        }));
    }
    h[0].set(Warning);
    monitor.poll();
    h[0].set(Normal);
    monitor.poll();
    let order: Vec<_> = log.lock().unwrap().iter().map(|e| (e.0, e.2)).collect();
    assert_eq!(
        order,
        [
            ("first", Warning),
            ("second", Warning),
            ("third", Warning),
            ("first", Normal),
            ("second", Normal),
            ("third", Normal)
        ]
    );
}

#[test]
fn counts_track_changes_by_level() {
    let (mut monitor, h, _log) = monitor_with(&["sim"]);
    h[0].script([
        Some(Warning),
        Some(Critical),
        Some(Warning),
        Some(Normal),
        Some(Critical),
        Some(Normal),
    ]);
    for _ in 0..8 {
        monitor.poll();
    }
    assert_eq!(
        monitor.counts(),
        PressureCounts {
            normal: 2,
            warning: 2,
            critical: 2,
            source_errors: 0
        }
    );
    assert_eq!(monitor.counts().changes(), 6);
    assert_eq!(monitor.counts().to_level(Critical), 2);
    assert!(
        monitor
            .counts()
            .to_string()
            .starts_with("pressure changes 6")
    );
}

#[test]
fn a_weak_responder_stops_hearing_once_dropped() {
    let (mut monitor, h, log) = monitor_with(&["sim"]);
    let strong = Arc::new(Recorder {
        name: "weak",
        log: log.clone(),
    });
    monitor.add_responder(Arc::new(Arc::downgrade(&strong)));
    h[0].set(Warning);
    monitor.poll();
    drop(strong);
    h[0].set(Normal);
    monitor.poll();
    let weak_calls = log.lock().unwrap().iter().filter(|e| e.0 == "weak").count();
    assert_eq!(weak_calls, 1);
}

/// A budget of 10,000 bytes; the returned counter sets the used bytes.
fn budget_monitor() -> (PressureMonitor, Arc<AtomicU64>, Log) {
    let used = Arc::new(AtomicU64::new(0));
    let reader = used.clone();
    let mut monitor = PressureMonitor::new();
    monitor.add_source(BudgetSource::new(move || {
        (reader.load(Ordering::Relaxed), 10_000)
    }));
    let log: Log = Arc::default();
    monitor.add_responder(Arc::new(Recorder {
        name: "r",
        log: log.clone(),
    }));
    (monitor, used, log)
}

#[test]
fn budget_hovering_at_80_percent_gives_one_warning_not_a_flap() {
    let (mut monitor, used, log) = budget_monitor();
    for u in [7_990, 8_010, 7_990, 8_010, 7_990, 8_010, 7_500, 7_001] {
        used.store(u, Ordering::Relaxed);
        monitor.poll();
    }
    assert_eq!(transitions(&log), [(Normal, Warning, "budget".into())]);
    used.store(6_999, Ordering::Relaxed);
    monitor.poll();
    assert_eq!(transitions(&log).len(), 2);
    assert_eq!(monitor.level(), Normal);
}

#[test]
fn budget_reaches_critical_and_comes_back() {
    let (mut monitor, used, log) = budget_monitor();
    for u in [8_500, 9_600, 9_450, 9_050, 8_900, 8_000, 6_500] {
        used.store(u, Ordering::Relaxed);
        monitor.poll();
    }
    let levels: Vec<_> = transitions(&log).into_iter().map(|t| (t.0, t.1)).collect();
    assert_eq!(
        levels,
        [
            (Normal, Warning),
            (Warning, Critical),
            (Critical, Warning),
            (Warning, Normal)
        ]
    );
}

#[test]
fn background_thread_reports_what_poll_would() {
    let source = SimulatedSource::new("sim");
    let pressure = source.handle();
    let mut monitor = PressureMonitor::new();
    monitor.add_source(source);
    let log: Log = Arc::default();
    monitor.add_responder(Arc::new(Recorder {
        name: "r",
        log: log.clone(),
    }));
    let running = monitor.spawn(Duration::from_millis(1)).unwrap();

    let wait_for = |level: PressureLevel| {
        let start = Instant::now();
        while running.level() != level {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "never reached {level}"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    pressure.set(Warning);
    wait_for(Warning);
    pressure.set(Critical);
    wait_for(Critical);
    pressure.set(Normal);
    wait_for(Normal);
    assert_eq!(running.counts().changes(), 3);
    drop(running);

    let polls_after_drop = pressure.polls();
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        pressure.polls(),
        polls_after_drop,
        "the thread stopped on drop"
    );
    let levels: Vec<_> = transitions(&log).into_iter().map(|t| t.1).collect();
    assert_eq!(levels, [Warning, Critical, Normal]);
}
