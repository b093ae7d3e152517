//! The process footprint: what the operating system charges this process, beside what wgmem
//! itself holds.
//!
//! The memory manager counts the bytes of the buffers it made. On Apple Silicon that is not the
//! figure the system acts on: macOS and iOS judge a process by its *physical footprint*
//! (`task_info(TASK_VM_INFO).phys_footprint`), which also holds the driver's own allocations,
//! shader and pipeline caches, the CPU side of the program, and anything a library allocates
//! behind our back (PyTorch's MPS users see a graph cache grow by gigabytes that no allocator
//! counter shows). On iOS the process is killed when the footprint reaches its limit, and
//! `os_proc_available_memory()` says how far away that is. So the account is checked against
//! the footprint, and the difference is reported as memory *outside wgmem*; a
//! [`crate::pressure::FootprintPressureSource`] watches the footprint against its budget, so
//! growth that is not ours still raises pressure.
//!
//! Where the figure comes from, by platform:
//! - macOS / iOS: `phys_footprint` (`FootprintMeasure::ApplePhysFootprint`); on iOS the limit
//!   is the footprint plus `os_proc_available_memory()`.
//! - Linux: the cgroup v2 group's `memory.current`, less the inactive page cache the kernel
//!   drops first (with `memory.max` as the limit), else
//!   `VmRSS` from `/proc/self/status`. A cgroup's figure covers every process of the group,
//!   which in a container is usually just this one.
//! - Elsewhere: nothing (`Ok(None)`).
//!
//! This module sits beside `pressure/`, below the memory manager, and knows nothing of either;
//! it only borrows the Linux file parsers of [`crate::pressure::parse`]. The Apple code is
//! type-checked and linted for `aarch64-apple-darwin` and `aarch64-apple-ios` in CI, but no
//! Apple machine runs the tests.

#[cfg(target_vendor = "apple")]
mod apple;
#[cfg(target_os = "linux")]
mod linux;
mod report;

#[cfg(target_os = "linux")]
pub use linux::{cgroup_footprint, proc_status_footprint};
pub use report::FootprintReport;

use crate::error::Result;

/// Which figure a [`ProcessFootprint`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FootprintMeasure {
    /// macOS / iOS `task_vm_info.phys_footprint`: the figure memory pressure and jetsam use.
    ApplePhysFootprint,
    /// A cgroup v2 group's `memory.current` less its `inactive_file` page cache (every process
    /// of the group).
    CgroupMemoryCurrent,
    /// `VmRSS` of `/proc/self/status`: resident pages, a lower bound of what the process uses.
    ProcStatusVmRss,
    /// Given by the caller (tests, or a figure measured elsewhere).
    Supplied,
}

/// Where [`ProcessFootprint::limit`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FootprintLimit {
    /// iOS: the footprint plus `os_proc_available_memory()`, the point where jetsam kills.
    IosAvailableMemory,
    /// The cgroup v2 group's `memory.max`.
    CgroupMemoryMax,
    /// Given by the caller.
    Supplied,
}

/// One reading of what the OS charges this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessFootprint {
    /// Bytes charged.
    pub bytes: u64,
    /// Which figure `bytes` is.
    pub measure: FootprintMeasure,
    /// The most the OS lets the process hold, where it says (iOS, a cgroup with a limit).
    pub limit: Option<(u64, FootprintLimit)>,
}

impl ProcessFootprint {
    /// The limit in bytes, if the OS gives one.
    pub fn limit_bytes(&self) -> Option<u64> {
        self.limit.map(|(bytes, _)| bytes)
    }
}

/// Reads this process's footprint now. `Ok(None)` where the platform offers no figure;
/// `Err` when the figure exists but could not be read or understood.
///
/// ```
/// let footprint = wgmem::footprint::process_footprint()?;
/// if let Some(f) = footprint {
///     assert!(f.bytes > 0, "a running process is charged something");
/// }
/// # Ok::<(), wgmem::Error>(())
/// ```
pub fn process_footprint() -> Result<Option<ProcessFootprint>> {
    #[cfg(target_vendor = "apple")]
    {
        apple::read()
    }
    #[cfg(target_os = "linux")]
    {
        linux::read()
    }
    #[cfg(not(any(target_vendor = "apple", target_os = "linux")))]
    {
        Ok(None)
    }
}
