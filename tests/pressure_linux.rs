//! The Linux pressure sources against real and recorded files: the machine's own PSI and
//! cgroup sources construct and poll without error (they may well be unavailable, in a sandbox
//! or on cgroup v1: that is fine), missing files make a source unavailable, and recorded PSI
//! contents map onto levels.
#![cfg(target_os = "linux")]

use std::path::PathBuf;
use std::time::Duration;
use wgmem::pressure::{
    CgroupSource, PressureLevel, PressureMonitor, PressureSource, PsiSource, PsiThresholds,
};

/// A fresh file path under the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(tag: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("wgmem-psi-{tag}-{}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn real_psi_source_polls_without_error() {
    let mut source = PsiSource::new();
    let level = source.poll().expect("PSI poll");
    eprintln!("PSI at {}: {level:?}", source.path().display());
}

#[test]
fn real_psi_trigger_arms_or_falls_back_and_polls() {
    let mut source =
        PsiSource::new().with_trigger(Duration::from_millis(150), Duration::from_secs(1));
    eprintln!("PSI trigger armed: {}", source.has_trigger());
    source.poll().expect("PSI poll with trigger");
    source.poll().expect("second poll");
}

#[test]
fn real_cgroup_source_detects_and_polls_without_error() {
    let mut source = CgroupSource::detect().expect("detect cgroup");
    let level = source.poll().expect("cgroup poll");
    eprintln!("cgroup {:?}: {level:?}", source.dir());
}

#[test]
fn real_sources_together_in_a_monitor() {
    let mut monitor = PressureMonitor::new();
    monitor.add_source(PsiSource::new());
    monitor.add_source(CgroupSource::detect().unwrap());
    monitor.poll();
    assert_eq!(monitor.counts().source_errors, 0);
}

#[test]
fn missing_psi_file_is_unavailable_not_an_error() {
    let mut source = PsiSource::with_path("/proc/pressure/no-such-resource");
    assert_eq!(source.poll().unwrap(), None);
    let mut armed = PsiSource::with_path("/nonexistent/memory.pressure")
        .with_trigger(Duration::from_millis(150), Duration::from_secs(1));
    assert!(!armed.has_trigger());
    assert_eq!(armed.poll().unwrap(), None);
}

#[test]
fn recorded_psi_maps_to_levels() {
    let file = TempFile::new(
        "levels",
        "some avg10=23.87 avg60=11.04 avg300=3.21 total=48207331\n\
         full avg10=1.52 avg60=0.30 avg300=0.09 total=1732204\n",
    );
    let mut source = PsiSource::with_path(&file.0);
    assert_eq!(source.poll().unwrap(), Some(PressureLevel::Warning));

    std::fs::write(
        &file.0,
        "some avg10=31.00 avg60=20.00 avg300=9.00 total=58207331\n\
         full avg10=6.10 avg60=2.00 avg300=0.50 total=2732204\n",
    )
    .unwrap();
    assert_eq!(source.poll().unwrap(), Some(PressureLevel::Critical));

    let strict = PsiSource::with_path(&file.0).with_thresholds(PsiThresholds {
        full_critical: 50.0,
        some_critical: 50.0,
        ..PsiThresholds::default()
    });
    assert_eq!(
        strict.unwrap().poll().unwrap(),
        Some(PressureLevel::Warning)
    );
}

#[test]
fn malformed_psi_file_is_an_error_naming_it() {
    let file = TempFile::new("malformed", "some avg10=oops\n");
    let err = PsiSource::with_path(&file.0).poll().unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&format!("{}:1", file.0.display())), "{text}");
}
