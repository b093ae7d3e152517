//! The crate's one error type.
//!
//! Each variant is a case a caller handles differently: an out-of-memory can be recovered from
//! (free something, shrink the batch, retry); a request over the device maximum never fits; a
//! shape mismatch is a bug in the caller's code; a lost device means rebuilding from saved state.
//! Every variant says what was asked and what would have been accepted.

use crate::memory::MemoryStats;
use std::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in wgmem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No adapter matched the request (or none exists on this machine).
    #[error("no GPU adapter found: {reason}; adapters seen: [{}]", seen.join(", "))]
    NoAdapter {
        /// Why the search failed (the filter that matched nothing, or the driver's answer).
        reason: String,
        /// The adapters that were enumerated, as `name (backend, type)`.
        seen: Vec<String>,
    },

    /// The adapter refused to create a device.
    #[error("the adapter '{adapter}' could not create a device: {reason}")]
    DeviceRequest {
        /// Adapter name.
        adapter: String,
        /// The driver's message.
        reason: String,
    },

    /// An allocation of zero bytes was asked for.
    #[error("cannot allocate a buffer of 0 bytes; ask for at least 1 byte")]
    ZeroSize,

    /// A single buffer larger than the device can ever create.
    #[error("requested {requested} bytes, but this device's largest buffer is {max} bytes")]
    TooLarge {
        /// Bytes asked for.
        requested: u64,
        /// The device's `max_buffer_size`.
        max: u64,
    },

    /// The memory (device, or the manager's hard limit) is exhausted even after eviction and
    /// cleanup. Carries the request and a snapshot of the account at the time.
    #[error("{0}")]
    OutOfMemory(Box<OutOfMemoryReport>),

    /// A byte range falls outside a buffer.
    #[error("{op}: range {offset}..{end} is outside the buffer of {size} bytes", end = offset + len)]
    OutOfBounds {
        /// The operation (`"read"`, `"write"`, `"copy source"`, ...).
        op: &'static str,
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// Size of the buffer.
        size: u64,
    },

    /// An offset or length is not a multiple of the required alignment.
    #[error("{op}: {what} {value} is not a multiple of {alignment}")]
    Misaligned {
        /// The operation.
        op: &'static str,
        /// Which value (`"offset"`, `"length"`).
        what: &'static str,
        /// The value given.
        value: u64,
        /// The alignment required.
        alignment: u64,
    },

    /// One operation would write a buffer it also reads or writes elsewhere (a copy's source
    /// and destination, a kernel's output and one of its inputs).
    #[error(
        "the same buffer is both written and read (or written twice) by one operation; use a second buffer"
    )]
    SameBuffer,

    /// Tensor or buffer shapes do not fit together.
    #[error("shape mismatch in {op}: {left:?} vs {right:?} ({reason})")]
    Shape {
        /// The operation.
        op: &'static str,
        /// The first operand's shape.
        left: Vec<usize>,
        /// The second operand's shape.
        right: Vec<usize>,
        /// What would have been accepted.
        reason: String,
    },

    /// A value given by the caller is not acceptable.
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// The argument.
        what: &'static str,
        /// What was wrong and what would be right.
        reason: String,
    },

    /// An operand has the wrong element type for the operation.
    #[error("{op}: {what} is {found}, but this operation needs {expected}")]
    DType {
        /// The operation.
        op: &'static str,
        /// Which operand.
        what: &'static str,
        /// The element type that would be accepted.
        expected: crate::DType,
        /// The element type given.
        found: crate::DType,
    },

    /// The device cannot store or compute on this element type.
    #[error(
        "{dtype} tensors need {feature}, which the adapter '{adapter}' does not offer; use f32 (Precision::F32) there"
    )]
    UnsupportedDType {
        /// The element type asked for.
        dtype: crate::DType,
        /// The missing device feature.
        feature: &'static str,
        /// The adapter.
        adapter: String,
    },

    /// A WGSL shader failed to parse or validate.
    #[error("shader '{name}' does not compile: {message}")]
    ShaderCompile {
        /// The shader's name (file stem).
        name: String,
        /// naga's diagnostic, with the source location.
        message: String,
    },

    /// The GPU device was lost (driver reset, unplugged, or destroyed).
    #[error("the GPU device was lost: {reason}; rebuild the backend and resume from saved state")]
    DeviceLost {
        /// The driver's reason.
        reason: String,
    },

    /// A transfer between host and device memory (a write or a read) did not complete. The
    /// buffer's contents are unspecified afterwards; the buffer itself is still valid.
    #[error("the {op} between host and device failed: {reason}")]
    Transfer {
        /// `"write"` or `"read"`.
        op: &'static str,
        /// What the driver (or the fault injector) said.
        reason: String,
    },

    /// A saved state file is not one this version can read: wrong magic, version, or a
    /// truncated or inconsistent record.
    #[error("state file {}: {reason}", path.display())]
    StateFile {
        /// The file.
        path: std::path::PathBuf,
        /// What was wrong, and where (byte offset) when known.
        reason: String,
    },

    /// Mapping a buffer for reading failed.
    #[error("could not map a buffer for reading: {0}")]
    Map(String),

    /// The loss became NaN or infinite.
    #[error("the loss is {loss} at step {step}; lower the learning rate or check the inputs")]
    NonFiniteLoss {
        /// The optimizer step at which it happened.
        step: u64,
        /// The value seen.
        loss: f32,
    },

    /// A collective operation of data-parallel training cannot be done as asked (lengths that
    /// do not match the world, a root outside it, MPI not available), or another rank failed
    /// the step this rank was taking with it.
    #[error("collective {op}: {reason}")]
    Collective {
        /// The operation (`"all_reduce"`, `"reduce_scatter"`, `"train_step"`, ...).
        op: &'static str,
        /// What was wrong and what would be accepted.
        reason: String,
    },

    /// An input sample holds NaN or an infinity (found before the step ran, so nothing was
    /// computed from it).
    #[error(
        "the input at row {row}, feature {column} of the batch at step {step} is {value}; clean or drop that sample"
    )]
    NonFiniteInput {
        /// The optimizer step the batch was for.
        step: u64,
        /// 0-based row within the batch.
        row: usize,
        /// 0-based feature index.
        column: usize,
        /// The value found.
        value: f32,
    },

    /// A data file is malformed.
    #[error("data line {line}, column {column}: {reason}")]
    Csv {
        /// 1-based line number.
        line: usize,
        /// 1-based column (field) number.
        column: usize,
        /// What was found and what was expected.
        reason: String,
    },

    /// An I/O error (saving state, reading data).
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),

    /// A file the crate reads (an OS statistics file such as `/proc/pressure/memory` or a
    /// cgroup's `memory.events`) does not have the expected form.
    #[error("{}:{line}: expected {expected}, found {}", file.display(), quoted_or_eof(found))]
    Parse {
        /// The file that was read.
        file: std::path::PathBuf,
        /// 1-based line number; one past the last line when something is missing.
        line: usize,
        /// What would have been accepted.
        expected: String,
        /// The offending text, shortened when long; empty when the file ended too soon.
        found: String,
    },
}

/// What was asked and what the account looked like when an allocation could not be satisfied.
#[derive(Debug, Clone)]
pub struct OutOfMemoryReport {
    /// Bytes asked for (after rounding to the size class).
    pub requested: u64,
    /// The limit that was hit, if it was the manager's hard limit rather than the device.
    pub limit: Option<u64>,
    /// The account at the time of failure.
    pub stats: MemoryStats,
    /// The largest live allocations, largest first: `(tag, bytes)`.
    pub largest: Vec<(String, u64)>,
    /// The driver's message, when the device itself refused.
    pub device_message: Option<String>,
}

impl fmt::Display for OutOfMemoryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "out of memory: requested {}",
            crate::memory::human_bytes(self.requested)
        )?;
        if let Some(limit) = self.limit {
            write!(
                f,
                " with a hard limit of {}",
                crate::memory::human_bytes(limit)
            )?;
        }
        write!(
            f,
            "; live {}, cached {}",
            crate::memory::human_bytes(self.stats.live_bytes),
            crate::memory::human_bytes(self.stats.cached_bytes)
        )?;
        if let Some(msg) = &self.device_message {
            write!(f, "; device: {msg}")?;
        }
        if !self.largest.is_empty() {
            write!(f, "; largest live:")?;
            for (tag, bytes) in &self.largest {
                write!(f, " {tag}={}", crate::memory::human_bytes(*bytes))?;
            }
        }
        Ok(())
    }
}

/// `'text'`, or `end of file` for nothing.
fn quoted_or_eof(found: &str) -> String {
    if found.is_empty() {
        "end of file".to_owned()
    } else {
        format!("'{found}'")
    }
}

impl Error {
    /// True when freeing memory and retrying might succeed.
    pub fn is_out_of_memory(&self) -> bool {
        matches!(self, Error::OutOfMemory(_))
    }

    pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidArgument {
            what,
            reason: reason.into(),
        }
    }
}
