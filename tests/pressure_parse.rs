//! The Linux pressure-file parsers on recorded file contents: PSI, cgroup v2 `memory.*`,
//! `/proc/self/cgroup` and `/proc/self/mountinfo`. Well-formed samples come from real machines
//! (an idle laptop, a container under memory pressure, a cgroup v1/v2 hybrid); malformed ones
//! must give an [`Error::Parse`] naming the file, the line and what was expected, never a panic.
//! These run on every platform.

use proptest::prelude::*;
use std::path::{Path, PathBuf};
use wgmem::Error;
use wgmem::pressure::parse::*;

const PSI: &str = "/proc/pressure/memory";

/// Asserts `result` is a parse error at `line` whose expectation mentions `expected`.
fn assert_parse_error<T: std::fmt::Debug>(
    result: wgmem::Result<T>,
    file: &str,
    line: usize,
    expected: &str,
) {
    match result {
        Err(Error::Parse {
            file: f,
            line: l,
            expected: e,
            found,
        }) => {
            assert_eq!(f, PathBuf::from(file));
            assert_eq!(l, line, "line; expected '{e}', found '{found}'");
            assert!(e.contains(expected), "expected '{expected}' in '{e}'");
            let shown = Error::Parse {
                file: f,
                line: l,
                expected: e,
                found,
            }
            .to_string();
            assert!(
                shown.starts_with(&format!("{file}:{line}: expected ")),
                "{shown}"
            );
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn psi_of_an_idle_machine_is_all_zero() {
    let text = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n\
                full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
    let s = parse_psi(Path::new(PSI), text).unwrap();
    assert_eq!(s.some, PsiLine::default());
    assert_eq!(s.full, Some(PsiLine::default()));
}

#[test]
fn psi_under_pressure_reads_every_field() {
    let text = "some avg10=23.87 avg60=11.04 avg300=3.21 total=48207331\n\
                full avg10=7.52 avg60=3.30 avg300=0.91 total=17322049\n";
    let s = parse_psi(Path::new(PSI), text).unwrap();
    assert_eq!(
        s.some,
        PsiLine {
            avg10: 23.87,
            avg60: 11.04,
            avg300: 3.21,
            total: 48207331
        }
    );
    assert_eq!(s.full.unwrap().avg10, 7.52);
}

#[test]
fn psi_without_a_full_line_and_with_unknown_fields_is_accepted() {
    let text = "some avg10=1.00 avg60=2.00 avg300=3.00 total=4 future=9\n";
    let s = parse_psi(Path::new(PSI), text).unwrap();
    assert_eq!(s.full, None);
    assert_eq!(s.some.avg300, 3.0);
}

#[test]
fn malformed_psi_is_a_parse_error_with_file_and_line() {
    let p = Path::new(PSI);
    assert_parse_error(
        parse_psi(p, "some avg10=abc avg60=0.00 avg300=0.00 total=0\n"),
        PSI,
        1,
        "a percentage after 'avg10='",
    );
    assert_parse_error(
        parse_psi(
            p,
            "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 total=0\n",
        ),
        PSI,
        2,
        "avg300=",
    );
    assert_parse_error(
        parse_psi(p, "some avg10=0.00 avg60=0.00 avg300=0.00 total=-5\n"),
        PSI,
        1,
        "unsigned integer after 'total='",
    );
    assert_parse_error(
        parse_psi(p, "some avg10=inf avg60=0.00 avg300=0.00 total=0\n"),
        PSI,
        1,
        "percentage",
    );
    assert_parse_error(
        parse_psi(p, "partial avg10=0.00\n"),
        PSI,
        1,
        "'some' or 'full'",
    );
    assert_parse_error(parse_psi(p, "some avg10 0.00\n"), PSI, 1, "key=value");
    assert_parse_error(parse_psi(p, ""), PSI, 1, "'some avg10=...' line");
    assert_parse_error(
        parse_psi(p, "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"),
        PSI,
        2,
        "'some",
    );
}

#[test]
fn long_garbage_is_shortened_in_the_error() {
    let garbage = "é".repeat(500);
    match parse_psi(Path::new(PSI), &garbage) {
        Err(Error::Parse { found, .. }) => {
            assert!(
                found.chars().count() <= 83,
                "{} chars",
                found.chars().count()
            );
            assert!(found.ends_with("..."));
        }
        other => panic!("{other:?}"),
    }
}

const EVENTS: &str = "/sys/fs/cgroup/job.slice/memory.events";

#[test]
fn memory_events_of_a_group_that_hit_its_limit() {
    let text = "low 0\nhigh 1284\nmax 37\noom 2\noom_kill 1\noom_group_kill 0\n";
    let e = parse_memory_events(Path::new(EVENTS), text).unwrap();
    assert_eq!(
        e,
        MemoryEvents {
            low: 0,
            high: 1284,
            max: 37,
            oom: 2,
            oom_kill: 1
        }
    );
}

#[test]
fn memory_events_from_an_old_kernel_without_oom_kill() {
    let e = parse_memory_events(Path::new(EVENTS), "low 0\nhigh 0\nmax 5\noom 0\n").unwrap();
    assert_eq!((e.max, e.oom_kill), (5, 0));
}

#[test]
fn malformed_memory_events_are_parse_errors() {
    let p = Path::new(EVENTS);
    assert_parse_error(
        parse_memory_events(p, "low 0\nhigh\n"),
        EVENTS,
        2,
        "'<name> <count>'",
    );
    assert_parse_error(
        parse_memory_events(p, "low 0\nhigh 1 2\n"),
        EVENTS,
        2,
        "'<name> <count>'",
    );
    assert_parse_error(
        parse_memory_events(p, "low 0\nhigh -1\nmax 0\noom 0\n"),
        EVENTS,
        2,
        "a count after 'high'",
    );
    assert_parse_error(
        parse_memory_events(p, "low 0\nhigh 0\nmax 0\n"),
        EVENTS,
        4,
        "'oom <count>'",
    );
}

#[test]
fn memory_limit_is_bytes_or_max() {
    let p = Path::new("memory.max");
    assert_eq!(parse_memory_limit(p, "max\n").unwrap(), None);
    assert_eq!(
        parse_memory_limit(p, "8589934592\n").unwrap(),
        Some(8 << 30)
    );
    assert_parse_error(
        parse_memory_limit(p, "8G\n"),
        "memory.max",
        1,
        "byte count or 'max'",
    );
    assert_parse_error(
        parse_memory_limit(p, ""),
        "memory.max",
        1,
        "byte count or 'max'",
    );
    assert_parse_error(
        parse_memory_limit(p, "max\nmax\n"),
        "memory.max",
        2,
        "nothing after the first line",
    );
}

#[test]
fn memory_current_and_stat_read_byte_counts() {
    let p = Path::new("memory.current");
    assert_eq!(parse_memory_current(p, "2754772992\n").unwrap(), 2754772992);
    assert_parse_error(
        parse_memory_current(p, "lots\n"),
        "memory.current",
        1,
        "byte count",
    );

    let stat = "anon 1842307072\nfile 912465920\nkernel 40091648\nshmem 4096\n\
                file_mapped 52985856\ninactive_anon 1841537024\nactive_anon 770048\n\
                inactive_file 634806272\nactive_file 277659648\nunevictable 0\n";
    let s = Path::new("memory.stat");
    assert_eq!(
        parse_memory_stat(s, stat, "inactive_file").unwrap(),
        Some(634806272)
    );
    assert_eq!(parse_memory_stat(s, stat, "zswap").unwrap(), None);
    assert_parse_error(
        parse_memory_stat(s, "anon 1\ninactive_file x\n", "inactive_file"),
        "memory.stat",
        2,
        "byte count after 'inactive_file'",
    );
}

#[test]
fn proc_cgroup_finds_the_v2_path_or_none_on_v1() {
    let p = Path::new("/proc/self/cgroup");
    assert_eq!(
        parse_proc_cgroup(p, "0::/user.slice/user-1000.slice/session-2.scope\n").unwrap(),
        Some("/user.slice/user-1000.slice/session-2.scope".into())
    );
    let hybrid = "9:name=systemd:/\n4:memory:/process_api/76d1\n1:cpu:/\n0::/\n";
    assert_eq!(parse_proc_cgroup(p, hybrid).unwrap(), Some("/".into()));
    let v1_only = "4:memory:/docker/abc\n1:cpu,cpuacct:/docker/abc\n";
    assert_eq!(parse_proc_cgroup(p, v1_only).unwrap(), None);
    assert_parse_error(
        parse_proc_cgroup(p, "1:cpu:/\ngarbage\n0::/\n"),
        "/proc/self/cgroup",
        2,
        "'<id>:<controllers>:<path>'",
    );
}

#[test]
fn mountinfo_gives_the_cgroup2_mount_point() {
    let p = Path::new("/proc/self/mountinfo");
    let unified = "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n\
                   24 22 0:22 / /sys rw,nosuid shared:7 - sysfs sysfs rw\n\
                   30 24 0:26 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(
        parse_cgroup2_mount(p, unified).unwrap(),
        Some(Cgroup2Mount {
            root: "/".into(),
            mount_point: PathBuf::from("/sys/fs/cgroup")
        })
    );
    let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
                  35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
                  41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    assert_eq!(
        parse_cgroup2_mount(p, hybrid).unwrap().unwrap().mount_point,
        PathBuf::from("/sys/fs/cgroup/unified")
    );
    let escaped = "41 31 0:38 / /mnt/my\\040cgroups rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        parse_cgroup2_mount(p, escaped)
            .unwrap()
            .unwrap()
            .mount_point,
        PathBuf::from("/mnt/my cgroups")
    );
    let docker = "612 590 0:26 /docker/4f1c /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n";
    let mount = parse_cgroup2_mount(p, docker).unwrap().unwrap();
    assert_eq!(mount.root, "/docker/4f1c");
    assert_eq!(
        mount.group_dir("/docker/4f1c/worker"),
        PathBuf::from("/sys/fs/cgroup/worker")
    );
    assert_eq!(
        mount.group_dir("/docker/4f1cd"),
        PathBuf::from("/sys/fs/cgroup/docker/4f1cd"),
        "a sibling whose name shares a prefix is not under the root"
    );
    let none = "22 1 259:2 / / rw - ext4 /dev/sda1 rw\n";
    assert_eq!(parse_cgroup2_mount(p, none).unwrap(), None);
    assert_parse_error(
        parse_cgroup2_mount(p, "22 1 259:2 / / rw ext4\n"),
        "/proc/self/mountinfo",
        1,
        "' - ' separator",
    );
    assert_parse_error(
        parse_cgroup2_mount(p, "22 1 259:2 / - cgroup2 cgroup2 rw\n"),
        "/proc/self/mountinfo",
        1,
        "a root and a mount point",
    );
}

proptest! {
    #[test]
    fn parsers_never_panic_on_arbitrary_text(text in "\\PC*", lines in "([a-z_ ]{0,12}[0-9.=a-z -]{0,20}\n){0,6}") {
        let p = Path::new("f");
        for t in [&text, &lines] {
            let _ = parse_psi(p, t);
            let _ = parse_memory_events(p, t);
            let _ = parse_memory_limit(p, t);
            let _ = parse_memory_current(p, t);
            let _ = parse_memory_stat(p, t, "inactive_file");
            let _ = parse_proc_cgroup(p, t);
            let _ = parse_cgroup2_mount(p, t);
        }
    }
}
