//! The Linux footprint: the cgroup v2 group's `memory.current`, else `/proc/self/status` `VmRSS`.
//!
//! A container's limit is its cgroup's `memory.max`, and what the kernel counts against it is
//! `memory.current`; that is the figure an OOM kill follows. Outside a cgroup v2 group (cgroup
//! v1, the root group) the resident set is the best figure a process can read about itself.

use super::{FootprintLimit, FootprintMeasure, ProcessFootprint};
use crate::error::Result;
use crate::pressure::parse::{
    parse_memory_current, parse_memory_limit, parse_memory_stat, parse_proc_status_bytes,
};
use crate::pressure::{detect_cgroup_dir, read_optional};
use std::path::Path;

/// This process's footprint: its cgroup's, else its resident set.
pub(super) fn read() -> Result<Option<ProcessFootprint>> {
    if let Some(dir) = detect_cgroup_dir()? {
        if let Some(footprint) = cgroup_footprint(&dir)? {
            return Ok(Some(footprint));
        }
    }
    proc_status_footprint(Path::new("/proc/self/status"))
}

/// The footprint of the cgroup v2 group in `dir`: `memory.current` less `inactive_file` from
/// `memory.stat` (page cache the kernel drops first, which a build or a data loader fills; the
/// same working-set figure the cgroup pressure source uses), with `memory.max` as the limit
/// when it is set. `Ok(None)` when the group has no `memory.current` (the root group, no memory
/// controller).
pub fn cgroup_footprint(dir: &Path) -> Result<Option<ProcessFootprint>> {
    let current_file = dir.join("memory.current");
    let Some(text) = read_optional(&current_file)? else {
        return Ok(None);
    };
    let current = parse_memory_current(&current_file, &text)?;
    let stat_file = dir.join("memory.stat");
    let inactive_file = match read_optional(&stat_file)? {
        Some(text) => parse_memory_stat(&stat_file, &text, "inactive_file")?.unwrap_or(0),
        None => 0,
    };
    let bytes = current.saturating_sub(inactive_file);
    let max_file = dir.join("memory.max");
    let limit = match read_optional(&max_file)? {
        Some(text) => parse_memory_limit(&max_file, &text)?,
        None => None,
    };
    Ok(Some(ProcessFootprint {
        bytes,
        measure: FootprintMeasure::CgroupMemoryCurrent,
        limit: limit.map(|l| (l, FootprintLimit::CgroupMemoryMax)),
    }))
}

/// The resident set (`VmRSS`) from a `/proc/<pid>/status` file. `Ok(None)` when the file is
/// absent or has no `VmRSS` line.
pub fn proc_status_footprint(status_file: &Path) -> Result<Option<ProcessFootprint>> {
    let Some(text) = read_optional(status_file)? else {
        return Ok(None);
    };
    Ok(
        parse_proc_status_bytes(status_file, &text, "VmRSS")?.map(|bytes| ProcessFootprint {
            bytes,
            measure: FootprintMeasure::ProcStatusVmRss,
            limit: None,
        }),
    )
}
