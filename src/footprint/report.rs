//! The footprint set beside the manager's account: what the OS charges, what wgmem holds, and
//! the difference.

use super::{FootprintLimit, FootprintMeasure, ProcessFootprint};
use crate::memory::human_bytes;
use std::fmt;

/// The process footprint beside the manager's reserved bytes (and, on Metal, the driver's own
/// count), as [`crate::MemoryStats::footprint`] and the training report show it.
///
/// ```
/// use wgmem::footprint::{FootprintMeasure, FootprintReport, ProcessFootprint};
///
/// let report = FootprintReport {
///     process: ProcessFootprint {
///         bytes: 3 << 30,
///         measure: FootprintMeasure::Supplied,
///         limit: None,
///     },
///     reserved_bytes: 1 << 30,
///     device_allocated_bytes: None,
/// };
/// assert_eq!(report.outside_wgmem(), 2 << 30);
/// assert!(report.to_string().contains("outside wgmem 2.00 GiB"));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FootprintReport {
    /// What the OS charges the process.
    pub process: ProcessFootprint,
    /// The manager's reserved bytes (live + cached) at the same moment.
    pub reserved_bytes: u64,
    /// What the device driver reports as allocated for the device (Metal's
    /// `MTLDevice.currentAllocatedSize`), a cross-check of `reserved_bytes`; `None` where the
    /// backend has no such figure.
    pub device_allocated_bytes: Option<u64>,
}

impl FootprintReport {
    /// Footprint bytes that are not the manager's reserved bytes: the driver's own memory,
    /// caches, the program's CPU memory, other libraries. 0 when the footprint is smaller
    /// (device memory of a discrete GPU is not in a process's footprint).
    pub fn outside_wgmem(&self) -> u64 {
        self.process.bytes.saturating_sub(self.reserved_bytes)
    }

    /// The footprint as a fraction of its limit, where the OS gives a limit.
    pub fn limit_fraction(&self) -> Option<f64> {
        self.process
            .limit_bytes()
            .filter(|l| *l > 0)
            .map(|l| self.process.bytes as f64 / l as f64)
    }
}

impl fmt::Display for FootprintReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let measure = match self.process.measure {
            FootprintMeasure::ApplePhysFootprint => "phys_footprint",
            FootprintMeasure::CgroupMemoryCurrent => "cgroup memory.current - inactive_file",
            FootprintMeasure::ProcStatusVmRss => "VmRSS",
            FootprintMeasure::Supplied => "supplied",
        };
        write!(
            f,
            "footprint {} ({measure}), wgmem reserved {}, outside wgmem {}",
            human_bytes(self.process.bytes),
            human_bytes(self.reserved_bytes),
            human_bytes(self.outside_wgmem()),
        )?;
        if let Some((limit, source)) = self.process.limit {
            let source = match source {
                FootprintLimit::IosAvailableMemory => "os_proc_available_memory",
                FootprintLimit::CgroupMemoryMax => "cgroup memory.max",
                FootprintLimit::Supplied => "supplied",
            };
            write!(f, "; limit {} ({source})", human_bytes(limit))?;
        }
        if let Some(device) = self.device_allocated_bytes {
            write!(f, "; device allocated {}", human_bytes(device))?;
        }
        Ok(())
    }
}
