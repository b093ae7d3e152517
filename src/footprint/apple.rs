//! The Apple footprint: `task_info(TASK_VM_INFO)`'s `phys_footprint`, and on iOS the limit from
//! `os_proc_available_memory()`.
//!
//! `phys_footprint` is the kernel's ledger of the memory charged to the task (dirty and
//! compressed anonymous memory, IOKit and GPU allocations that are charged to it); it is what
//! Activity Monitor's "Memory" column and Xcode's memory gauge show, and what jetsam compares
//! with the limit on iOS. `resident_size` is not: it leaves out compressed memory and counts
//! shared pages.
//!
//! The `libc` crate declares `task_info`, `mach_task_self` and the Mach types; it lacks the
//! `task_vm_info` structure, the `TASK_VM_INFO` flavour and `os_proc_available_memory`, which
//! are declared here from `<mach/task_info.h>` and `<os/proc.h>`. Type-checked and linted for
//! both Apple targets in CI; not yet run on a Mac or an iPhone.

use super::{FootprintMeasure, ProcessFootprint};
use crate::error::{Error, Result};

/// `TASK_VM_INFO` from `<mach/task_info.h>`.
const TASK_VM_INFO: libc::task_flavor_t = 22;

/// `task_vm_info` up to and including `phys_footprint` (revision 1 of the structure; later
/// revisions only append fields, and the kernel fills as many as the count asks for).
/// The header packs the structure to 4 bytes; with two `integer_t` after the first `u64`
/// every `u64` still falls on an 8-byte offset, so `repr(C)` gives the same layout.
#[repr(C)]
#[derive(Default)]
struct TaskVmInfoRev1 {
    virtual_size: libc::mach_vm_size_t,
    region_count: libc::integer_t,
    page_size: libc::integer_t,
    resident_size: libc::mach_vm_size_t,
    resident_size_peak: libc::mach_vm_size_t,
    device: libc::mach_vm_size_t,
    device_peak: libc::mach_vm_size_t,
    internal: libc::mach_vm_size_t,
    internal_peak: libc::mach_vm_size_t,
    external: libc::mach_vm_size_t,
    external_peak: libc::mach_vm_size_t,
    reusable: libc::mach_vm_size_t,
    reusable_peak: libc::mach_vm_size_t,
    purgeable_volatile_pmap: libc::mach_vm_size_t,
    purgeable_volatile_resident: libc::mach_vm_size_t,
    purgeable_volatile_virtual: libc::mach_vm_size_t,
    compressed: libc::mach_vm_size_t,
    compressed_peak: libc::mach_vm_size_t,
    compressed_lifetime: libc::mach_vm_size_t,
    phys_footprint: libc::mach_vm_size_t,
}

/// `TASK_VM_INFO_REV1_COUNT`: the structure's size in `natural_t` units.
const TASK_VM_INFO_REV1_COUNT: libc::mach_msg_type_number_t =
    (size_of::<TaskVmInfoRev1>() / size_of::<libc::natural_t>()) as libc::mach_msg_type_number_t;

// The offsets of the header, so a wrong declaration fails to compile rather than misread.
// 16 + 16 * 8 = 144 bytes of revision 0 (36 natural_t), then phys_footprint.
const _: () = assert!(size_of::<TaskVmInfoRev1>() == 152);
const _: () = assert!(std::mem::offset_of!(TaskVmInfoRev1, phys_footprint) == 144);

#[cfg(target_os = "ios")]
unsafe extern "C" {
    /// `<os/proc.h>` (iOS 13+): bytes the process may still allocate before it reaches its
    /// jetsam limit; 0 when the process has no limit or the call is not permitted.
    fn os_proc_available_memory() -> libc::size_t;
}

/// This task's `phys_footprint`, and on iOS its limit.
pub(super) fn read() -> Result<Option<ProcessFootprint>> {
    let mut info = TaskVmInfoRev1::default();
    let mut count = TASK_VM_INFO_REV1_COUNT;
    // libc marks its Mach bindings deprecated in favour of the `mach2` crate, which is not a
    // dependency here; `mach_task_self()` itself is still what `<mach/mach_init.h>` provides.
    // SAFETY: it only reads the port of this task, which libSystem set up before `main`.
    #[allow(deprecated)]
    let task = unsafe { libc::mach_task_self() };
    // SAFETY: `info` is a writable `task_vm_info` prefix of `count` natural_t units, and
    // `count` says so; the kernel writes at most `count` units and updates `count` to what it
    // wrote. `task` is this task's own port, which needs no deallocation.
    let status = unsafe {
        libc::task_info(
            task,
            TASK_VM_INFO,
            (&raw mut info).cast::<libc::integer_t>(),
            &mut count,
        )
    };
    if status != libc::KERN_SUCCESS {
        return Err(Error::Io(std::io::Error::other(format!(
            "task_info(TASK_VM_INFO) failed with kern_return_t {status}"
        ))));
    }
    if count < TASK_VM_INFO_REV1_COUNT {
        // A kernel older than phys_footprint (before OS X 10.11): nothing to report.
        return Ok(None);
    }
    Ok(Some(ProcessFootprint {
        bytes: info.phys_footprint,
        measure: FootprintMeasure::ApplePhysFootprint,
        limit: limit(info.phys_footprint),
    }))
}

#[cfg(target_os = "ios")]
fn limit(footprint: u64) -> Option<(u64, super::FootprintLimit)> {
    // SAFETY: a plain C call with no arguments that only reads the task's ledger.
    let available = unsafe { os_proc_available_memory() } as u64;
    (available > 0).then(|| {
        (
            footprint.saturating_add(available),
            super::FootprintLimit::IosAvailableMemory,
        )
    })
}

/// macOS sets no footprint limit on ordinary processes.
#[cfg(not(target_os = "ios"))]
fn limit(_footprint: u64) -> Option<(u64, super::FootprintLimit)> {
    None
}
