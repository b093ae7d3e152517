//! The allocation seam: the one place where buffer memory is obtained and released.
//!
//! Everything above this module (pool, manager, pressure, checkpointing) is generic over
//! [`Backend`], so it can be tested fast and exactly on [`HostBackend`] and run for real on
//! [`WgpuBackend`]. The trait is kept small on purpose: allocate, free, write, read, copy,
//! capabilities, and the two submission counters the pool needs to free late.
//!
//! # Rules every backend follows (the conformance suite in `tests/` checks them)
//! - `allocate(0)` is [`Error::ZeroSize`]; a size over `max_buffer_size` is [`Error::TooLarge`];
//!   a refused allocation is [`Error::DeviceOutOfMemory`].
//! - Sizes are rounded up to [`Capabilities::copy_alignment`]; [`Backend::size`] returns the
//!   rounded size.
//! - Writes and copies need offsets and lengths that are multiples of `copy_alignment`
//!   ([`Error::Misaligned`]) and ranges inside the buffer ([`Error::OutOfBounds`]); reads need
//!   only the range to be inside the buffer.
//! - Work is ordered: a read sees every write and copy issued before it.
//! - `free` takes the buffer by value, so a buffer cannot be freed twice.

#[cfg(any(test, feature = "testing"))]
mod fault_plan;
mod host;
mod transfer;
mod usage;
mod wgpu_backend;

#[cfg(any(test, feature = "testing"))]
pub use fault_plan::{FaultCounts, FaultPlan};

pub use host::{HostBackend, HostBuffer};
pub use transfer::{TransferCounts, TransferPath};
pub use usage::UsageFlags;
pub(crate) use wgpu_backend::MapRequest;
pub use wgpu_backend::{
    CoopMode, DEFAULT_FLUSH_EVERY, DeviceSignals, WgpuBackend, WgpuBackendOptions,
};

use crate::error::{Error, Result};

/// How a buffer will be used. Pools keep buffers of different usages apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BufferUsage {
    /// Read and written by kernels, copied to and from (the usual case: tensors, scratch).
    Storage,
    /// Small read-only parameters for kernels.
    Uniform,
    /// Host-readable staging: the GPU copies into it and the host maps it to read
    /// (`MAP_READ | COPY_DST` on wgpu). Used to move results off the GPU in bulk.
    Readback,
    /// Host-writable staging: the host maps it to write and the GPU copies from it
    /// (`MAP_WRITE | COPY_SRC` on wgpu). Used to move data onto the GPU in bulk.
    Upload,
    /// Exactly these usages, for buffers an application binds in pipelines of its own
    /// (vertex, index, indirect, uniform, or any combination). Each distinct set is pooled
    /// apart from every other set and from the four usages above. On wgpu,
    /// `BufferUsage::from(wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST)` makes one;
    /// a set the device cannot give is a typed error when the buffer is allocated.
    Custom(UsageFlags),
}

/// A monotonically increasing id of GPU work handed to the device.
///
/// The pool stamps a released buffer with [`Backend::last_submission`] and reuses it only once
/// [`Backend::completed_submission`] has reached that stamp.
pub type SubmissionIndex = u64;

/// What a backend can do. Read once at creation; constant afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The largest single buffer, in bytes.
    pub max_buffer_size: u64,
    /// The largest range one storage binding may cover, in bytes.
    pub max_storage_binding_size: u64,
    /// Offsets and lengths of writes and copies must be multiples of this.
    pub copy_alignment: u64,
    /// Alignment of storage-buffer binding offsets.
    pub storage_offset_alignment: u64,
    /// Bytes this backend should hold at most for good performance (see [`BudgetSource`]).
    pub memory_budget: u64,
    /// Where the budget figure came from.
    pub budget_source: BudgetSource,
    /// True when device memory is the machine's memory (Apple Silicon, integrated GPUs, host).
    pub unified_memory: bool,
}

/// Where [`Capabilities::memory_budget`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetSource {
    /// Metal's `recommendedMaxWorkingSetSize`.
    MetalRecommendedWorkingSet,
    /// Set in code through the backend's options.
    Configured,
    /// The `WGMEM_MEMORY_BUDGET` environment variable (bytes, or with a K/M/G suffix).
    Environment,
    /// Nothing better was known: see [`DEFAULT_MEMORY_BUDGET`].
    Default,
}

/// The budget used when the platform reports none and none is configured: 4 GiB. Conservative on purpose; set `WGMEM_MEMORY_BUDGET` or
/// [`WgpuBackendOptions::memory_budget`] to the real figure.
pub const DEFAULT_MEMORY_BUDGET: u64 = 4 << 30;

/// Describes the device behind a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterDescription {
    /// Adapter name as the driver reports it (`"Apple M3 Max"`, `"llvmpipe (LLVM 15.0.6, 256 bits)"`).
    pub name: String,
    /// The graphics API in use (`"Metal"`, `"Vulkan"`, `"Gl"`, `"Host"`).
    pub api: String,
    /// Kind of device (`"DiscreteGpu"`, `"IntegratedGpu"`, `"Cpu"`, ...).
    pub device_type: String,
    /// Driver name and version, where known.
    pub driver: String,
}

impl std::fmt::Display for AdapterDescription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}", self.name, self.api, self.device_type)?;
        if !self.driver.is_empty() {
            write!(f, ", {}", self.driver)?;
        }
        write!(f, ")")
    }
}

/// The allocation seam. See the module docs for the rules every implementation follows.
pub trait Backend: Send + Sync + 'static {
    /// The raw buffer handle. Owned by whoever allocated it until passed back to [`Backend::free`].
    type Buffer: Send + Sync + 'static;

    /// A short name for logs: `"wgpu"` or `"host"`.
    fn name(&self) -> &'static str;

    /// The device behind this backend.
    fn adapter(&self) -> &AdapterDescription;

    /// Limits and budget.
    fn capabilities(&self) -> &Capabilities;

    /// Creates a buffer of at least `size` bytes (rounded up to the copy alignment), zeroed.
    fn allocate(&self, size: u64, usage: BufferUsage) -> Result<Self::Buffer>;

    /// Releases a buffer. Taking it by value is what makes a double free impossible.
    fn free(&self, buffer: Self::Buffer);

    /// The buffer's size in bytes (after rounding).
    fn size(&self, buffer: &Self::Buffer) -> u64;

    /// Copies `data` into `buffer` at `offset`. Ordered after all earlier work.
    fn write(&self, buffer: &Self::Buffer, offset: u64, data: &[u8]) -> Result<()>;

    /// [`Backend::write`] for a buffer that no submission has used since it was allocated or
    /// handed out again by the pool (which hands out only buffers whose work has completed):
    /// the memory layer calls it for a buffer it has not yet lent to a kernel. A backend that
    /// maps buffers for writes (zero-copy) may then map it at once, even while other work is
    /// in flight. Called wrongly, on a buffer that is in use, a backend must still be correct
    /// (wgpu maps a buffer only once the work that uses it has completed). The default is
    /// `write`.
    fn write_unused(&self, buffer: &Self::Buffer, offset: u64, data: &[u8]) -> Result<()> {
        self.write(buffer, offset, data)
    }

    /// Copies `out.len()` bytes from `buffer` at `offset` into `out`, waiting for earlier work.
    fn read(&self, buffer: &Self::Buffer, offset: u64, out: &mut [u8]) -> Result<()>;

    /// Copies `len` bytes between two distinct buffers on the device.
    fn copy(
        &self,
        src: &Self::Buffer,
        src_offset: u64,
        dst: &Self::Buffer,
        dst_offset: u64,
        len: u64,
    ) -> Result<()>;

    /// The index of the most recent work handed to the device (0 before any).
    fn last_submission(&self) -> SubmissionIndex;

    /// The highest index known to have completed. Does not block; may poll the device.
    fn completed_submission(&self) -> SubmissionIndex;

    /// Blocks until all work handed to the device has completed.
    fn wait_idle(&self) -> Result<()>;

    /// What the driver itself reports as allocated for the device (Metal's
    /// `MTLDevice.currentAllocatedSize`), a cross-check of the manager's reserved bytes.
    /// `None` (the default) where the backend has no such figure.
    fn device_allocated_bytes(&self) -> Option<u64> {
        None
    }
}

/// The error a backend returns when the device (or the host, for [`HostBackend`]) refuses an
/// allocation of `requested` bytes: [`Error::DeviceOutOfMemory`]. The memory manager retries
/// (evict, wait, clean up) and, if every retry fails, answers with the report of its account.
pub(crate) fn device_out_of_memory(requested: u64, message: String) -> Error {
    Error::DeviceOutOfMemory { requested, message }
}

/// Checks the size rules of `allocate` and returns the rounded size.
pub(crate) fn checked_allocation_size(size: u64, caps: &Capabilities) -> Result<u64> {
    if size == 0 {
        return Err(Error::ZeroSize);
    }
    if size > caps.max_buffer_size {
        return Err(Error::TooLarge {
            requested: size,
            max: caps.max_buffer_size,
        });
    }
    Ok(size
        .next_multiple_of(caps.copy_alignment)
        .min(caps.max_buffer_size))
}

/// Checks that `offset..offset+len` lies inside a buffer of `size` bytes.
pub(crate) fn check_range(op: &'static str, offset: u64, len: u64, size: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(Error::OutOfBounds {
            op,
            offset,
            len: len.min(u64::MAX - offset),
            size,
        }),
    }
}

/// Checks the alignment rule of writes and copies.
pub(crate) fn check_aligned(op: &'static str, offset: u64, len: u64, alignment: u64) -> Result<()> {
    if offset % alignment != 0 {
        return Err(Error::Misaligned {
            op,
            what: "offset",
            value: offset,
            alignment,
        });
    }
    if len % alignment != 0 {
        return Err(Error::Misaligned {
            op,
            what: "length",
            value: len,
            alignment,
        });
    }
    Ok(())
}

/// Parses a byte count such as `1073741824`, `512M`, `8G` or `64KiB`.
pub fn parse_bytes(text: &str) -> Result<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let number: u64 = digits.parse().map_err(|_| {
        Error::invalid(
            "byte count",
            format!("'{text}' is not a number like 512M, 8G or 1048576"),
        )
    })?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        other => {
            return Err(Error::invalid(
                "byte count",
                format!("unknown unit '{other}' in '{text}'; use K, M, G or T"),
            ));
        }
    };
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| Error::invalid("byte count", format!("'{text}' does not fit in 64 bits")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_byte_counts_with_units() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("512M").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("8 GiB").unwrap(), 8 << 30);
        assert_eq!(parse_bytes("64kb").unwrap(), 64 << 10);
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("12X").is_err());
        assert!(parse_bytes("99999999999999999999T").is_err());
    }

    #[test]
    fn range_check_rejects_overflow_and_past_end() {
        assert!(check_range("read", 0, 16, 16).is_ok());
        assert!(check_range("read", 1, 16, 16).is_err());
        assert!(check_range("read", u64::MAX, 2, 16).is_err());
    }
}
