//! Parsers for the Linux files the pressure sources read: PSI, cgroup v2 memory files,
//! `/proc/self/cgroup` and `/proc/self/mountinfo`.
//!
//! They live apart from the Linux sources (which are compiled on Linux only) so that they are
//! compiled and tested on every platform, on recorded file contents. Every malformed input is a
//! [`Error::Parse`] naming the file, the line and what was expected; nothing here panics.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// One line of a PSI file: the share of wall time (in percent) in which tasks were stalled on
/// memory, averaged over 10 s, 60 s and 300 s, and the total stall time in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PsiLine {
    /// Percent stalled, averaged over the last 10 seconds.
    pub avg10: f64,
    /// Percent stalled, averaged over the last 60 seconds.
    pub avg60: f64,
    /// Percent stalled, averaged over the last 300 seconds.
    pub avg300: f64,
    /// Total stall time, microseconds.
    pub total: u64,
}

/// The content of a PSI file such as `/proc/pressure/memory` or a cgroup's `memory.pressure`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PsiSample {
    /// `some`: at least one task was stalled.
    pub some: PsiLine,
    /// `full`: all non-idle tasks were stalled at once. Absent in old kernels' CPU files; always
    /// present for memory since PSI exists, but tolerated missing.
    pub full: Option<PsiLine>,
}

/// The counters of a cgroup v2 `memory.events` file (hierarchical: they include descendants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryEvents {
    /// Reclaims below `memory.low` protection.
    pub low: u64,
    /// Times usage went over `memory.high` and the group was throttled and reclaimed.
    pub high: u64,
    /// Times usage hit `memory.max` and allocation had to reclaim.
    pub max: u64,
    /// Times the group hit `memory.max` and reclaim failed.
    pub oom: u64,
    /// Processes killed by the OOM killer.
    pub oom_kill: u64,
}

/// Parses a PSI file.
///
/// ```
/// use std::path::Path;
/// use wgmem::pressure::parse::parse_psi;
///
/// let text = "some avg10=12.50 avg60=3.00 avg300=0.80 total=123456\n\
///             full avg10=1.25 avg60=0.30 avg300=0.05 total=23456\n";
/// let sample = parse_psi(Path::new("/proc/pressure/memory"), text)?;
/// assert_eq!(sample.some.avg10, 12.5);
/// assert_eq!(sample.full.unwrap().total, 23456);
/// # Ok::<(), wgmem::Error>(())
/// ```
pub fn parse_psi(file: &Path, text: &str) -> Result<PsiSample> {
    let mut some = None;
    let mut full = None;
    let mut last = 0;
    for (i, line) in text.lines().enumerate() {
        last = i + 1;
        let mut words = line.split_whitespace();
        let slot = match words.next() {
            None => continue,
            Some("some") => &mut some,
            Some("full") => &mut full,
            Some(other) => {
                return Err(error(
                    file,
                    i + 1,
                    "a line starting with 'some' or 'full'",
                    other,
                ));
            }
        };
        *slot = Some(parse_psi_line(file, i + 1, words)?);
    }
    let some = some.ok_or_else(|| error(file, last + 1, "a 'some avg10=...' line", ""))?;
    Ok(PsiSample { some, full })
}

fn parse_psi_line<'a>(
    file: &Path,
    line: usize,
    words: impl Iterator<Item = &'a str>,
) -> Result<PsiLine> {
    let (mut avg10, mut avg60, mut avg300, mut total) = (None, None, None, None);
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(error(file, line, "key=value pairs", word));
        };
        let avg = |value: &str| -> Result<f64> {
            match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => Err(error(
                    file,
                    line,
                    &format!("a percentage after '{key}='"),
                    word,
                )),
            }
        };
        match key {
            "avg10" => avg10 = Some(avg(value)?),
            "avg60" => avg60 = Some(avg(value)?),
            "avg300" => avg300 = Some(avg(value)?),
            "total" => {
                total = Some(parse_u64(
                    file,
                    line,
                    "an unsigned integer after 'total='",
                    value,
                )?)
            }
            _ => {} // newer kernels may add fields; they are not needed
        }
    }
    match (avg10, avg60, avg300, total) {
        (Some(avg10), Some(avg60), Some(avg300), Some(total)) => Ok(PsiLine {
            avg10,
            avg60,
            avg300,
            total,
        }),
        _ => Err(error(
            file,
            line,
            "avg10=, avg60=, avg300= and total= on the line",
            "a line missing some of them",
        )),
    }
}

/// Parses a cgroup v2 `memory.events` file (`key value` lines). `high`, `max` and `oom` are
/// required; other known keys default to 0 and unknown keys are ignored.
pub fn parse_memory_events(file: &Path, text: &str) -> Result<MemoryEvents> {
    let mut events = MemoryEvents::default();
    let mut seen = [false; 3];
    let mut last = 0;
    for (i, line) in text.lines().enumerate() {
        last = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let mut words = line.split_whitespace();
        let (Some(key), Some(value), None) = (words.next(), words.next(), words.next()) else {
            return Err(error(file, i + 1, "'<name> <count>'", line));
        };
        let value = parse_u64(file, i + 1, &format!("a count after '{key}'"), value)?;
        match key {
            "low" => events.low = value,
            "high" => (events.high, seen[0]) = (value, true),
            "max" => (events.max, seen[1]) = (value, true),
            "oom" => (events.oom, seen[2]) = (value, true),
            "oom_kill" => events.oom_kill = value,
            _ => {}
        }
    }
    for (name, present) in ["high", "max", "oom"].iter().zip(seen) {
        if !present {
            return Err(error(
                file,
                last + 1,
                &format!("a '{name} <count>' line"),
                "",
            ));
        }
    }
    Ok(events)
}

/// Parses a cgroup v2 limit file such as `memory.max` or `memory.high`: a byte count, or
/// `max` for no limit (`None`).
pub fn parse_memory_limit(file: &Path, text: &str) -> Result<Option<u64>> {
    let value = single_line(file, text, "a byte count or 'max'")?;
    if value == "max" {
        return Ok(None);
    }
    parse_u64(file, 1, "a byte count or 'max'", value).map(Some)
}

/// Parses a cgroup v2 `memory.current` file: one byte count.
pub fn parse_memory_current(file: &Path, text: &str) -> Result<u64> {
    let value = single_line(file, text, "a byte count")?;
    parse_u64(file, 1, "a byte count", value)
}

/// The value of `key` in a cgroup v2 `memory.stat` file (`key value` lines), `None` when the key
/// is absent.
pub fn parse_memory_stat(file: &Path, text: &str, key: &str) -> Result<Option<u64>> {
    for (i, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace();
        if words.next() == Some(key) {
            let value = words.next().unwrap_or("");
            return parse_u64(file, i + 1, &format!("a byte count after '{key}'"), value).map(Some);
        }
    }
    Ok(None)
}

/// The cgroup v2 path of a process from its `/proc/<pid>/cgroup` file (the `0::<path>` line),
/// `None` when the process is in no v2 hierarchy (a cgroup v1-only system).
pub fn parse_proc_cgroup(file: &Path, text: &str) -> Result<Option<String>> {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(error(file, i + 1, "'<id>:<controllers>:<path>'", line));
        };
        if id == "0" && controllers.is_empty() {
            return Ok(Some(path.to_owned()));
        }
    }
    Ok(None)
}

/// A `cgroup2` mount from `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup2Mount {
    /// The group of the hierarchy that is mounted (`/` unless a container got a subtree).
    pub root: String,
    /// Where it is mounted, e.g. `/sys/fs/cgroup`.
    pub mount_point: PathBuf,
}

impl Cgroup2Mount {
    /// The directory of the group at `path` (from `/proc/self/cgroup`) under this mount. A
    /// container whose mount shows a subtree (`root` = `/docker/<id>`) without a cgroup
    /// namespace still reports the full path; the mount's root is taken off it.
    ///
    /// ```
    /// use std::path::{Path, PathBuf};
    /// use wgmem::pressure::parse::Cgroup2Mount;
    ///
    /// let host = Cgroup2Mount { root: "/".into(), mount_point: "/sys/fs/cgroup".into() };
    /// assert_eq!(host.group_dir("/user.slice"), Path::new("/sys/fs/cgroup/user.slice"));
    /// assert_eq!(host.group_dir("/"), Path::new("/sys/fs/cgroup"));
    /// let docker = Cgroup2Mount { root: "/docker/ab12".into(), mount_point: "/sys/fs/cgroup".into() };
    /// assert_eq!(docker.group_dir("/docker/ab12"), Path::new("/sys/fs/cgroup"));
    /// ```
    pub fn group_dir(&self, path: &str) -> PathBuf {
        let root = self.root.trim_end_matches('/');
        let relative = match path.strip_prefix(root) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => path,
        };
        let relative = relative.trim_start_matches('/');
        if relative.is_empty() {
            self.mount_point.clone()
        } else {
            self.mount_point.join(relative)
        }
    }
}

/// The first `cgroup2` mount in `/proc/self/mountinfo`, `None` when there is none.
pub fn parse_cgroup2_mount(file: &Path, text: &str) -> Result<Option<Cgroup2Mount>> {
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        // "<id> <parent> <major:minor> <root> <mount point> <options> [optional...] - <fs type> ..."
        let Some((before, after)) = line.split_once(" - ") else {
            return Err(error(
                file,
                i + 1,
                "a ' - ' separator before the file system type",
                line,
            ));
        };
        let mut fields = before.split(' ').skip(3);
        let (Some(root), Some(mount_point)) = (fields.next(), fields.next()) else {
            return Err(error(
                file,
                i + 1,
                "a root and a mount point as fields 4 and 5",
                line,
            ));
        };
        if after.split(' ').next() == Some("cgroup2") {
            return Ok(Some(Cgroup2Mount {
                root: unescape_octal(root),
                mount_point: PathBuf::from(unescape_octal(mount_point)),
            }));
        }
    }
    Ok(None)
}

/// Undoes mountinfo's escaping of space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let Some(digits) = digits {
            let code = digits
                .iter()
                .fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(byte) = u8::try_from(code) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` (e.g. `VmRSS`) in a `/proc/<pid>/status` file, in bytes: the file gives
/// memory in kibibytes (`VmRSS:\t  1920 kB`). `None` when the key is absent (kernel threads have
/// no `VmRSS`).
///
/// ```
/// use std::path::Path;
/// use wgmem::pressure::parse::parse_proc_status_bytes;
///
/// let text = "Name:\tdemo\nVmRSS:\t    1920 kB\nThreads:\t1\n";
/// let rss = parse_proc_status_bytes(Path::new("/proc/self/status"), text, "VmRSS")?;
/// assert_eq!(rss, Some(1920 * 1024));
/// # Ok::<(), wgmem::Error>(())
/// ```
pub fn parse_proc_status_bytes(file: &Path, text: &str, key: &str) -> Result<Option<u64>> {
    for (i, line) in text.lines().enumerate() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        if name.trim() != key {
            continue;
        }
        let expected = format!("'{key}: <count> kB'");
        let mut words = rest.split_whitespace();
        let (Some(value), Some("kB"), None) = (words.next(), words.next(), words.next()) else {
            return Err(error(file, i + 1, &expected, line));
        };
        let kib = parse_u64(file, i + 1, &expected, value)?;
        return kib
            .checked_mul(1024)
            .map(Some)
            .ok_or_else(|| error(file, i + 1, "a count of kB that fits in 64 bits", value));
    }
    Ok(None)
}

fn single_line<'a>(file: &Path, text: &'a str, expected: &str) -> Result<&'a str> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    match (lines.next(), lines.next()) {
        (Some(line), None) => Ok(line.trim()),
        (None, _) => Err(error(file, 1, expected, "")),
        (Some(_), Some(extra)) => Err(error(file, 2, "nothing after the first line", extra)),
    }
}

fn parse_u64(file: &Path, line: usize, expected: &str, value: &str) -> Result<u64> {
    value
        .parse::<u64>()
        .map_err(|_| error(file, line, expected, value))
}

/// Longest `found` text carried by an error.
const MAX_FOUND: usize = 80;

fn error(file: &Path, line: usize, expected: &str, found: &str) -> Error {
    let found = match found.char_indices().nth(MAX_FOUND) {
        Some((cut, _)) => format!("{}...", &found[..cut]),
        None => found.to_owned(),
    };
    Error::Parse {
        file: file.to_path_buf(),
        line,
        expected: expected.to_owned(),
        found,
    }
}
