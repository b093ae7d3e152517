//! Writing the profile to files: one call for the trace and both plots, so a program's
//! `--profile out.json` flag needs one line.

use super::chrome::chrome_trace;
use super::profiler::MemoryProfiler;
use super::svg::{class_heatmap_svg, timeline_svg};
use crate::error::Result;
use std::path::{Path, PathBuf};

/// The files [`MemoryProfiler::write_all`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileFiles {
    /// The Chrome / Perfetto trace, `<prefix>.json`.
    pub trace: PathBuf,
    /// The memory timeline, `<prefix>_timeline.svg`.
    pub timeline: PathBuf,
    /// The size-class heatmap, `<prefix>_classes.svg`.
    pub classes: PathBuf,
}

const PLOT_SIZE: (u32, u32) = (1000, 480);
const HEATMAP_BUCKETS: usize = 120;

impl MemoryProfiler {
    /// The event log as a Chrome trace / Perfetto JSON document.
    pub fn chrome_trace_json(&self) -> String {
        chrome_trace(&self.events()).to_string()
    }

    /// The memory timeline as an SVG document.
    pub fn timeline_svg(&self) -> Result<String> {
        timeline_svg(&self.events(), PLOT_SIZE)
    }

    /// The size-class heatmap as an SVG document.
    pub fn class_heatmap_svg(&self) -> Result<String> {
        class_heatmap_svg(&self.events(), HEATMAP_BUCKETS, PLOT_SIZE)
    }

    /// Writes `<prefix>.json` (trace), `<prefix>_timeline.svg` and `<prefix>_classes.svg`.
    /// A trailing `.json` on `prefix` is dropped first, so `write_all("out.json")` and
    /// `write_all("out")` write the same files. Parent directories must exist.
    pub fn write_all(&self, prefix: impl AsRef<Path>) -> Result<ProfileFiles> {
        let prefix = prefix.as_ref();
        let stem = if prefix.extension().is_some_and(|e| e == "json") {
            prefix.with_extension("")
        } else {
            prefix.to_path_buf()
        };
        let with = |suffix: &str| {
            let mut s = stem.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        let files = ProfileFiles {
            trace: with(".json"),
            timeline: with("_timeline.svg"),
            classes: with("_classes.svg"),
        };
        let events = self.events();
        std::fs::write(&files.trace, chrome_trace(&events).to_string())?;
        std::fs::write(&files.timeline, timeline_svg(&events, PLOT_SIZE)?)?;
        std::fs::write(
            &files.classes,
            class_heatmap_svg(&events, HEATMAP_BUCKETS, PLOT_SIZE)?,
        )?;
        Ok(files)
    }
}
