//! The footprint account: the `/proc/self/status` parser on recorded and malformed text, the
//! Linux sources on recorded cgroup directories and on this process (whose footprint must grow
//! by what it touches), the manager's stats and the training report with the footprint beside
//! the reserved bytes, and the footprint pressure source driven by a fake reading through
//! Normal -> Warning -> Critical -> Normal with hysteresis.
//!
//! The Apple readings (`phys_footprint`, `os_proc_available_memory`, Metal's
//! `currentAllocatedSize`) are type-checked and linted for both Apple targets in CI, not run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wgmem::footprint::{
    FootprintLimit, FootprintMeasure, FootprintReport, ProcessFootprint, process_footprint,
};
use wgmem::pressure::parse::parse_proc_status_bytes;
use wgmem::pressure::{FootprintPressureSource, PressureLevel, PressureSource, UsageThresholds};
use wgmem::train::TrainingReport;
use wgmem::{BufferUsage, Error, HostBackend, MemoryManager};

const STATUS: &str = "Name:\tdemo\nUmask:\t0022\nState:\tR (running)\nVmPeak:\t  20000 kB\n\
                      VmSize:\t  19000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1920 kB\n\
                      RssAnon:\t     512 kB\nThreads:\t1\n";

#[test]
fn vm_rss_is_read_in_bytes_and_other_keys_are_found_too() {
    let file = Path::new("/proc/self/status");
    assert_eq!(
        parse_proc_status_bytes(file, STATUS, "VmRSS").unwrap(),
        Some(1920 * 1024)
    );
    assert_eq!(
        parse_proc_status_bytes(file, STATUS, "VmHWM").unwrap(),
        Some(2048 * 1024)
    );
    // `VmRSS` is a prefix of no other key here, and `RssAnon` is not `VmRSS`.
    assert_eq!(parse_proc_status_bytes(file, STATUS, "Vm").unwrap(), None);
    assert_eq!(
        parse_proc_status_bytes(file, "Name:\tkthreadd\n", "VmRSS").unwrap(),
        None
    );
}

#[test]
fn malformed_status_lines_are_parse_errors_naming_the_line() {
    let file = Path::new("/proc/self/status");
    for (text, line) in [
        ("Name:\tx\nVmRSS:\t lots kB\n", 2),
        ("VmRSS:\t 12 MB\n", 1),
        ("VmRSS:\t 12\n", 1),
        ("VmRSS:\t 12 kB extra\n", 1),
        ("VmRSS:\t 99999999999999999999 kB\n", 1),
        ("VmRSS:\t 18446744073709551615 kB\n", 1), // fits in u64 as kB, not as bytes
    ] {
        match parse_proc_status_bytes(file, text, "VmRSS") {
            Err(Error::Parse { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
            other => panic!("{text:?} gave {other:?}"),
        }
    }
}

/// A fresh directory under the temp dir with the given files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str, files: &[(&str, &str)]) -> Self {
        let dir = std::env::temp_dir().join(format!("wgmem-fp-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use wgmem::footprint::{cgroup_footprint, proc_status_footprint};

    #[test]
    fn a_cgroup_gives_memory_current_with_memory_max_as_the_limit() {
        let dir = TempDir::new(
            "limited",
            &[
                ("memory.current", "123456789\n"),
                ("memory.max", "1073741824\n"),
            ],
        );
        let f = cgroup_footprint(&dir.0).unwrap().unwrap();
        assert_eq!(f.bytes, 123_456_789);
        assert_eq!(f.measure, FootprintMeasure::CgroupMemoryCurrent);
        assert_eq!(f.limit, Some((1 << 30, FootprintLimit::CgroupMemoryMax)));

        let unlimited = TempDir::new(
            "unlimited",
            &[("memory.current", "4096\n"), ("memory.max", "max\n")],
        );
        let f = cgroup_footprint(&unlimited.0).unwrap().unwrap();
        assert_eq!((f.bytes, f.limit), (4096, None));

        // Inactive page cache is left out (the kernel drops it before anything else).
        let cached = TempDir::new(
            "cached",
            &[
                (
                    "memory.current",
                    "10000
",
                ),
                (
                    "memory.stat",
                    "anon 3000
file 7000
inactive_file 6000
",
                ),
            ],
        );
        assert_eq!(cgroup_footprint(&cached.0).unwrap().unwrap().bytes, 4000);
    }

    #[test]
    fn a_cgroup_without_memory_current_is_unavailable_and_garbage_is_an_error() {
        let empty = TempDir::new("empty", &[]);
        assert_eq!(cgroup_footprint(&empty.0).unwrap(), None);
        let bad = TempDir::new("bad", &[("memory.current", "twelve\n")]);
        assert!(matches!(cgroup_footprint(&bad.0), Err(Error::Parse { .. })));
        let bad_stat = TempDir::new(
            "badstat",
            &[
                (
                    "memory.current",
                    "12
",
                ),
                (
                    "memory.stat",
                    "inactive_file many
",
                ),
            ],
        );
        assert!(matches!(
            cgroup_footprint(&bad_stat.0),
            Err(Error::Parse { .. })
        ));
        let bad_max = TempDir::new(
            "badmax",
            &[("memory.current", "12\n"), ("memory.max", "-1\n")],
        );
        assert!(matches!(
            cgroup_footprint(&bad_max.0),
            Err(Error::Parse { .. })
        ));
    }

    #[test]
    fn a_missing_status_file_is_unavailable() {
        let dir = TempDir::new("nostatus", &[]);
        assert_eq!(proc_status_footprint(&dir.0.join("status")).unwrap(), None);
        let recorded = TempDir::new("status", &[("status", STATUS)]);
        let f = proc_status_footprint(&recorded.0.join("status"))
            .unwrap()
            .unwrap();
        assert_eq!(f.bytes, 1920 * 1024);
        assert_eq!(f.measure, FootprintMeasure::ProcStatusVmRss);
    }

    /// The resident set, read the way `proc_status_footprint` reads it.
    fn rss() -> u64 {
        proc_status_footprint(Path::new("/proc/self/status"))
            .unwrap()
            .expect("Linux has /proc/self/status")
            .bytes
    }

    #[test]
    fn this_process_footprint_grows_by_the_memory_it_touches() {
        let f = process_footprint()
            .unwrap()
            .expect("Linux always has a footprint");
        eprintln!("this process: {f:?}");
        assert!(f.bytes > 0);
        // 64 MiB written page by page is resident afterwards (no swap on a test machine that
        // runs this; a machine that swaps this much this fast has bigger problems).
        let before = rss();
        let touched = vec![1u8; 64 << 20];
        let after = rss();
        assert!(
            after >= before + (60 << 20),
            "touching 64 MiB moved VmRSS from {before} to {after}"
        );
        drop(std::hint::black_box(touched));
    }
}

#[test]
fn the_manager_sets_its_reserved_bytes_beside_the_footprint() {
    let manager = MemoryManager::new(Arc::new(HostBackend::new()));
    let held = manager
        .acquire(3 << 20, BufferUsage::Storage, "weights")
        .unwrap();
    assert_eq!(
        manager.stats().footprint,
        None,
        "plain stats() reads no footprint"
    );
    let stats = manager.stats_with_footprint().unwrap();
    let report = match stats.footprint {
        Some(report) => report,
        None if cfg!(any(target_os = "linux", target_vendor = "apple")) => {
            panic!("this platform has a footprint")
        }
        None => return,
    };
    assert_eq!(report.reserved_bytes, stats.reserved_bytes());
    assert!(report.reserved_bytes >= 3 << 20);
    assert_eq!(
        report.outside_wgmem(),
        report.process.bytes.saturating_sub(report.reserved_bytes)
    );
    assert_eq!(
        report.device_allocated_bytes, None,
        "the host backend has no driver"
    );
    let text = stats.to_string();
    assert!(text.contains("outside wgmem"), "{text}");
    drop(held);
}

#[test]
fn the_training_report_shows_the_footprint_and_what_is_outside_wgmem() {
    let mut report = TrainingReport::default();
    report.memory.live_bytes = 1 << 30;
    report.memory.footprint = Some(FootprintReport {
        process: ProcessFootprint {
            bytes: 5 << 30,
            measure: FootprintMeasure::ApplePhysFootprint,
            limit: Some((6 << 30, FootprintLimit::IosAvailableMemory)),
        },
        reserved_bytes: 1 << 30,
        device_allocated_bytes: Some(3 << 29),
    });
    let text = report.to_string();
    for part in [
        "footprint 5.00 GiB (phys_footprint)",
        "wgmem reserved 1.00 GiB",
        "outside wgmem 4.00 GiB",
        "limit 6.00 GiB (os_proc_available_memory)",
        "device allocated 1.50 GiB",
    ] {
        assert!(text.contains(part), "missing {part:?} in\n{text}");
    }
    let f = report.memory.footprint.unwrap();
    assert!((f.limit_fraction().unwrap() - 5.0 / 6.0).abs() < 1e-12);
    // A footprint below what wgmem holds (device memory of a discrete GPU is not in it).
    let small = FootprintReport {
        reserved_bytes: 6 << 30,
        ..f
    };
    assert_eq!(small.outside_wgmem(), 0);
}

/// A footprint source reading `bytes` (a fake reading) against a fallback budget of 10,000.
fn fake_source(limit: Option<u64>) -> (FootprintPressureSource, Arc<AtomicU64>) {
    let bytes = Arc::new(AtomicU64::new(0));
    let reader = Arc::clone(&bytes);
    let source = FootprintPressureSource::with_reader(
        move || {
            Ok(Some(ProcessFootprint {
                bytes: reader.load(Ordering::Relaxed),
                measure: FootprintMeasure::Supplied,
                limit: limit.map(|l| (l, FootprintLimit::Supplied)),
            }))
        },
        10_000,
    );
    (source, bytes)
}

fn levels(
    source: &mut FootprintPressureSource,
    bytes: &AtomicU64,
    seq: &[u64],
) -> Vec<PressureLevel> {
    seq.iter()
        .map(|&b| {
            bytes.store(b, Ordering::Relaxed);
            source.poll().unwrap().unwrap()
        })
        .collect()
}

#[test]
fn footprint_pressure_steps_up_and_down_with_hysteresis() {
    use PressureLevel::*;
    let (mut source, bytes) = fake_source(None);
    assert_eq!(source.name(), "footprint");
    // Up: 50%, 79.9%, 80% (Warning), 94.9%, 95% (Critical); down: 90% holds Critical, 89.9%
    // is Warning, 70% holds Warning, 69.9% is Normal; hovering at 79.9% stays Normal.
    let seen = levels(
        &mut source,
        &bytes,
        &[
            5_000, 7_990, 8_000, 9_490, 9_500, 9_000, 8_990, 7_000, 6_990, 7_990,
        ],
    );
    assert_eq!(
        seen,
        [
            Normal, Normal, Warning, Warning, Critical, Critical, Warning, Warning, Normal, Normal
        ]
    );
    assert_eq!(source.last_usage(), Some((7_990, 10_000)));
}

#[test]
fn the_os_limit_wins_over_the_fallback_budget() {
    // 900 bytes is 9% of the fallback budget but 90% of a 1,000-byte OS limit.
    let (mut source, bytes) = fake_source(Some(1_000));
    bytes.store(900, Ordering::Relaxed);
    assert_eq!(source.poll().unwrap(), Some(PressureLevel::Warning));
    assert_eq!(source.last_usage(), Some((900, 1_000)));
}

#[test]
fn no_reading_or_no_budget_says_nothing_and_a_failed_reading_is_an_error() {
    let mut none = FootprintPressureSource::with_reader(|| Ok(None), 10_000);
    assert_eq!(none.poll().unwrap(), None);
    let reading = ProcessFootprint {
        bytes: 5,
        measure: FootprintMeasure::Supplied,
        limit: None,
    };
    let mut zero = FootprintPressureSource::with_reader(move || Ok(Some(reading)), 0);
    assert_eq!(zero.poll().unwrap(), None);
    let mut failing = FootprintPressureSource::with_reader(
        || Err(Error::Io(std::io::Error::other("task_info failed"))),
        10_000,
    );
    assert!(matches!(failing.poll(), Err(Error::Io(_))));
    let inverted = UsageThresholds {
        warning_at: 0.9,
        critical_at: 0.8,
        ..UsageThresholds::default()
    };
    assert!(matches!(
        FootprintPressureSource::new(1).with_thresholds(inverted),
        Err(Error::InvalidArgument { .. })
    ));
}

#[test]
fn the_real_footprint_source_polls_on_this_machine() {
    let manager = MemoryManager::new(Arc::new(HostBackend::new()));
    let mut source = manager.footprint_source(Some(u64::MAX / 2));
    let level = source.poll().unwrap();
    if cfg!(any(target_os = "linux", target_vendor = "apple")) {
        assert_eq!(
            level,
            Some(PressureLevel::Normal),
            "a tiny share of a huge budget"
        );
        assert!(source.last_usage().unwrap().0 > 0);
    }
}
