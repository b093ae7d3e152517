//! Which way a host write or read goes on unified memory: mapped directly, or staged.
//!
//! On unified memory (Apple Silicon, integrated GPUs, a CPU device) a storage buffer can be
//! mapped by the host, so a write or read can copy straight into or out of it, with no staging
//! buffer and no GPU copy. But a buffer must not be mapped while the GPU may still use it: a
//! map would wait for that work (a stall), and a host write under a running kernel would race
//! it. The backends do not see which buffers a kernel binds, so the rule here is the
//! conservative one: map only when *no* submission is in flight; otherwise take the staged path,
//! which the queue orders after the work in flight. The one exception is a buffer the caller
//! knows no submission uses ([`crate::Backend::write_unused`]: a buffer the memory layer has
//! just handed out and not yet lent to a kernel), which maps at once. Both backends decide with
//! [`choose_path`], so the rule is tested on [`crate::HostBackend`] with completion held back.

use super::SubmissionIndex;
use std::sync::atomic::{AtomicU64, Ordering};

/// How one write or read was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferPath {
    /// The buffer was mapped and the bytes copied by the host.
    Direct,
    /// Through a staging buffer (or the queue's own) and a GPU copy.
    Staged,
}

/// The path for a transfer: [`TransferPath::Direct`] only when zero-copy is on for the buffer
/// and every submission made so far (`last`) has completed (`completed`).
pub(crate) fn choose_path(
    zero_copy: bool,
    last: SubmissionIndex,
    completed: SubmissionIndex,
) -> TransferPath {
    if zero_copy && completed >= last {
        TransferPath::Direct
    } else {
        TransferPath::Staged
    }
}

/// How many writes and reads took each path, since the backend was made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransferCounts {
    /// Writes copied into a mapped buffer.
    pub direct_writes: u64,
    /// Writes through the queue or a staging buffer.
    pub staged_writes: u64,
    /// Reads copied out of a mapped buffer.
    pub direct_reads: u64,
    /// Reads through a staging buffer.
    pub staged_reads: u64,
}

/// The counters behind [`TransferCounts`].
#[derive(Debug, Default)]
pub(crate) struct TransferCounters {
    direct_writes: AtomicU64,
    staged_writes: AtomicU64,
    direct_reads: AtomicU64,
    staged_reads: AtomicU64,
}

impl TransferCounters {
    /// Counts one write that took `path`.
    pub(crate) fn write(&self, path: TransferPath) {
        match path {
            TransferPath::Direct => &self.direct_writes,
            TransferPath::Staged => &self.staged_writes,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one read that took `path`.
    pub(crate) fn read(&self, path: TransferPath) {
        match path {
            TransferPath::Direct => &self.direct_reads,
            TransferPath::Staged => &self.staged_reads,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    /// The counts now.
    pub(crate) fn snapshot(&self) -> TransferCounts {
        TransferCounts {
            direct_writes: self.direct_writes.load(Ordering::Relaxed),
            staged_writes: self.staged_writes.load(Ordering::Relaxed),
            direct_reads: self.direct_reads.load(Ordering::Relaxed),
            staged_reads: self.staged_reads.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_only_when_enabled_and_nothing_is_in_flight() {
        assert_eq!(choose_path(true, 5, 5), TransferPath::Direct);
        assert_eq!(choose_path(true, 0, 0), TransferPath::Direct);
        assert_eq!(choose_path(true, 6, 5), TransferPath::Staged);
        assert_eq!(choose_path(false, 5, 5), TransferPath::Staged);
    }
}
