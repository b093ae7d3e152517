//! The cgroup v2 source: a container's memory events and its usage against its limit.
//!
//! Two signals, the worse of which is reported:
//! - `memory.events` counters. A rise of `high` (the group went over `memory.high` and was
//!   throttled) is Warning; a rise of `max`, `oom` or `oom_kill` (the group hit `memory.max`) is
//!   Critical. Counters only say that something happened, so the level they raise is held for
//!   [`CgroupSource::with_hold`] (default 5 s) after the last rise instead of dropping at the next
//!   poll. Note that `max` also rises when a group full of page cache reclaims at its limit,
//!   which is routine for I/O-heavy work; if that makes Critical too frequent, raise the hold
//!   or drop this source in favour of PSI.
//! - Usage: `memory.current` less `inactive_file` from `memory.stat` (page cache the kernel can
//!   drop at once, the same "working set" measure Kubernetes uses) against `memory.max`, with
//!   the [`UsageThresholds`] hysteresis of the budget source. No limit (`max`) means no usage
//!   signal.

use super::read_optional;
use crate::error::Result;
use crate::pressure::parse::{
    MemoryEvents, parse_cgroup2_mount, parse_memory_current, parse_memory_events,
    parse_memory_limit, parse_memory_stat, parse_proc_cgroup,
};
use crate::pressure::{PressureLevel, PressureSource, UsageThresholds};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A [`PressureSource`] reading a cgroup v2 directory (see the module docs for the mapping).
///
/// Unavailable (`Ok(None)`) when the directory lacks both `memory.events` and `memory.current`:
/// cgroup v1 systems, the root group, a group without the memory controller.
#[derive(Debug)]
pub struct CgroupSource {
    dir: Option<PathBuf>,
    thresholds: UsageThresholds,
    hold: Duration,
    last_events: Option<MemoryEvents>,
    event_level: PressureLevel,
    event_until: Option<Instant>,
    usage_level: PressureLevel,
}

impl CgroupSource {
    /// The cgroup of this process: its path from `/proc/self/cgroup` under the `cgroup2` mount
    /// found in `/proc/self/mountinfo` (see [`Cgroup2Mount::group_dir`]). A system without
    /// cgroup v2 gives an unavailable source; malformed `/proc` files are an error.
    ///
    /// [`Cgroup2Mount::group_dir`]: crate::pressure::parse::Cgroup2Mount::group_dir
    pub fn detect() -> Result<Self> {
        Ok(Self::from_dir(detect_dir()?))
    }

    /// A source reading the cgroup v2 directory `dir` (e.g. `/sys/fs/cgroup/my.slice`).
    pub fn with_dir(dir: impl AsRef<Path>) -> Self {
        Self::from_dir(Some(dir.as_ref().to_path_buf()))
    }

    fn from_dir(dir: Option<PathBuf>) -> Self {
        CgroupSource {
            dir,
            thresholds: UsageThresholds::default(),
            hold: Duration::from_secs(5),
            last_events: None,
            event_level: PressureLevel::Normal,
            event_until: None,
            usage_level: PressureLevel::Normal,
        }
    }

    /// Uses `thresholds` for usage against `memory.max`, after [`UsageThresholds::validate`].
    pub fn with_thresholds(mut self, thresholds: UsageThresholds) -> Result<Self> {
        thresholds.validate()?;
        self.thresholds = thresholds;
        Ok(self)
    }

    /// How long a level raised by a `memory.events` counter is held after its last rise.
    pub fn with_hold(mut self, hold: Duration) -> Self {
        self.hold = hold;
        self
    }

    /// The directory read, `None` when detection found no cgroup v2.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn poll_at(&mut self, now: Instant) -> Result<Option<PressureLevel>> {
        let Some(dir) = self.dir.clone() else {
            return Ok(None);
        };
        let events = read_parsed(&dir.join("memory.events"), parse_memory_events)?;
        let current = read_parsed(&dir.join("memory.current"), parse_memory_current)?;
        if events.is_none() && current.is_none() {
            return Ok(None);
        }

        if let Some(events) = events {
            self.note_events(events, now);
        }
        let held = match self.event_until {
            Some(until) if now < until => self.event_level,
            _ => PressureLevel::Normal,
        };

        let limit = read_parsed(&dir.join("memory.max"), parse_memory_limit)?.flatten();
        let usage = match (current, limit) {
            (Some(current), Some(limit)) if limit > 0 => {
                let stat = dir.join("memory.stat");
                let inactive_file = match read_optional(&stat)? {
                    Some(text) => parse_memory_stat(&stat, &text, "inactive_file")?.unwrap_or(0),
                    None => 0,
                };
                let working_set = current.saturating_sub(inactive_file);
                let ratio = working_set as f64 / limit as f64;
                self.usage_level = self.thresholds.next_level(self.usage_level, ratio);
                self.usage_level
            }
            _ => PressureLevel::Normal,
        };
        Ok(Some(held.max(usage)))
    }

    /// Compares the counters with the last reading; a rise raises the held level.
    fn note_events(&mut self, events: MemoryEvents, now: Instant) {
        let Some(last) = self.last_events.replace(events) else {
            return; // the first reading is the baseline: what happened before us is not news
        };
        let rose = |now: u64, before: u64| now > before;
        let level = if rose(events.max, last.max)
            || rose(events.oom, last.oom)
            || rose(events.oom_kill, last.oom_kill)
        {
            PressureLevel::Critical
        } else if rose(events.high, last.high) {
            PressureLevel::Warning
        } else {
            return;
        };
        let still_held = self.event_until.is_some_and(|until| now < until);
        self.event_level = if still_held {
            self.event_level.max(level)
        } else {
            level
        };
        self.event_until = Some(now + self.hold);
    }
}

/// Reads and parses an optional file.
fn read_parsed<T>(path: &Path, parse: impl Fn(&Path, &str) -> Result<T>) -> Result<Option<T>> {
    read_optional(path)?
        .map(|text| parse(path, &text))
        .transpose()
}

impl PressureSource for CgroupSource {
    fn name(&self) -> &str {
        "cgroup"
    }

    fn poll(&mut self) -> Result<Option<PressureLevel>> {
        self.poll_at(Instant::now())
    }
}

/// This process's cgroup v2 directory: its path from `/proc/self/cgroup` under the `cgroup2`
/// mount in `/proc/self/mountinfo`; `None` without cgroup v2. Shared with the footprint account.
pub(crate) fn detect_dir() -> Result<Option<PathBuf>> {
    let cgroup_file = Path::new("/proc/self/cgroup");
    let mountinfo = Path::new("/proc/self/mountinfo");
    let path = match read_optional(cgroup_file)? {
        Some(text) => parse_proc_cgroup(cgroup_file, &text)?,
        None => None,
    };
    let mount = match read_optional(mountinfo)? {
        Some(text) => parse_cgroup2_mount(mountinfo, &text)?,
        None => None,
    };
    let dir = match (mount, path) {
        (Some(mount), Some(path)) => Some(mount.group_dir(&path)),
        _ => None,
    };
    log::debug!("cgroup v2 directory: {dir:?}");
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PressureLevel::*;

    /// A fresh directory under the system's temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("wgmem-cgroup-{tag}-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) {
            std::fs::write(self.0.join(name), text).unwrap();
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn events(high: u64, max: u64, oom: u64) -> String {
        format!("low 0\nhigh {high}\nmax {max}\noom {oom}\noom_kill 0\noom_group_kill 0\n")
    }

    #[test]
    fn counter_rises_raise_the_level_and_hold_it_for_the_hold_time() {
        let dir = TempDir::new("events");
        dir.write("memory.events", &events(3, 0, 0));
        let mut source = CgroupSource::with_dir(&dir.0).with_hold(Duration::from_secs(5));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert_eq!(source.poll_at(at(0)).unwrap(), Some(Normal), "baseline");
        dir.write("memory.events", &events(4, 0, 0));
        assert_eq!(source.poll_at(at(1)).unwrap(), Some(Warning));
        assert_eq!(source.poll_at(at(2)).unwrap(), Some(Warning), "held");
        dir.write("memory.events", &events(4, 1, 0));
        assert_eq!(source.poll_at(at(3)).unwrap(), Some(Critical));
        assert_eq!(source.poll_at(at(7)).unwrap(), Some(Critical), "held");
        assert_eq!(source.poll_at(at(9)).unwrap(), Some(Normal), "hold over");
    }

    #[test]
    fn working_set_against_max_uses_the_budget_hysteresis() {
        let dir = TempDir::new("usage");
        dir.write("memory.events", &events(0, 0, 0));
        dir.write("memory.max", "1000\n");
        dir.write("memory.stat", "anon 500\nfile 400\ninactive_file 100\n");
        let mut source = CgroupSource::with_dir(&dir.0);
        let mut at = |current: u64| {
            dir.write("memory.current", &format!("{current}\n"));
            source.poll().unwrap()
        };
        // working set = current - 100
        assert_eq!(at(850), Some(Normal)); // 75%
        assert_eq!(at(910), Some(Warning)); // 81%
        assert_eq!(at(880), Some(Warning)); // 78%: held
        assert_eq!(at(1060), Some(Critical)); // 96%
        assert_eq!(at(750), Some(Normal)); // 65%
    }

    #[test]
    fn unlimited_group_reports_events_only() {
        let dir = TempDir::new("unlimited");
        dir.write("memory.events", &events(0, 0, 0));
        dir.write("memory.max", "max\n");
        dir.write("memory.current", "123456789\n");
        let mut source = CgroupSource::with_dir(&dir.0);
        assert_eq!(source.poll().unwrap(), Some(Normal));
    }

    #[test]
    fn directory_without_memory_files_is_unavailable() {
        let dir = TempDir::new("empty");
        let mut source = CgroupSource::with_dir(&dir.0);
        assert_eq!(source.poll().unwrap(), None);
        let mut gone = CgroupSource::with_dir(dir.0.join("no-such-group"));
        assert_eq!(gone.poll().unwrap(), None);
    }

    #[test]
    fn malformed_events_file_names_the_file_and_line() {
        let dir = TempDir::new("malformed");
        dir.write("memory.events", "low 0\nhigh lots\n");
        let err = CgroupSource::with_dir(&dir.0).poll().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("memory.events:2"), "{text}");
        assert!(text.contains("'lots'"), "{text}");
    }
}
