//! What the profiler records: one [`Event`] per thing that happened to memory.
//!
//! Events are plain data so that every report and export is a pure function of a slice of
//! them. They borrow nothing but `'static` strings (tags and source locations are static) and
//! share the scope path through an `Arc<str>`, so recording one is a copy, not an allocation.

use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

/// Where in the caller's code something was acquired: the `#[track_caller]` location of the
/// public acquire path.
pub type SourceLocation = &'static Location<'static>;

/// Bytes in the account just after an event: a sample of the timeline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AccountSample {
    /// Bytes handed out to users.
    pub live: u64,
    /// Bytes held by pools for reuse.
    pub cached: u64,
}

impl AccountSample {
    /// Live plus cached: what the backend holds for the manager.
    pub fn reserved(&self) -> u64 {
        self.live + self.cached
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventKind {
    /// A pool miss: a new buffer was created by the backend.
    Alloc,
    /// An acquisition served from the pool.
    PoolHit,
    /// A buffer was released to the pool (its handle dropped).
    Free,
    /// A cached buffer was destroyed (LRU eviction, a limit, pressure, `clear_cache`).
    Evict,
    /// An acquisition failed with out-of-memory after every recovery step.
    OutOfMemory,
    /// The memory-pressure level changed.
    Pressure {
        /// The level before.
        from: String,
        /// The level after.
        to: String,
        /// What reported it (OS, device budget, simulated, ...).
        source: String,
    },
    /// A scope closed; the event's time is when it opened and its `scope` is its full path.
    Scope {
        /// The scope's own name (the last part of its path).
        name: Arc<str>,
        /// How long the scope was open.
        duration: Duration,
        /// Nesting depth on its thread, 0 for the outermost.
        depth: usize,
    },
    /// A GPU kernel ran (timestamps from the device, on the profiler's clock).
    Kernel {
        /// The kernel's name.
        name: String,
        /// How long it ran.
        duration: Duration,
    },
}

impl EventKind {
    /// A short lowercase name, used in exports.
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Alloc => "alloc",
            EventKind::PoolHit => "pool_hit",
            EventKind::Free => "free",
            EventKind::Evict => "evict",
            EventKind::OutOfMemory => "oom",
            EventKind::Pressure { .. } => "pressure",
            EventKind::Scope { .. } => "scope",
            EventKind::Kernel { .. } => "kernel",
        }
    }
}

/// One recorded event. See the module docs.
#[derive(Debug, Clone)]
pub struct Event {
    /// Time since the profiler was created.
    pub time: Duration,
    /// What happened.
    pub kind: EventKind,
    /// The buffer's acquisition id (0 when the event concerns no one buffer).
    pub buffer: u64,
    /// Bytes of the buffer's size class (for an OOM, the class asked for).
    pub size: u64,
    /// Bytes the caller asked for, before rounding (0 where unknown).
    pub requested: u64,
    /// The accounting tag (`""` where none, e.g. an evicted cache entry).
    pub tag: &'static str,
    /// The innermost open scope on the recording thread, as a `/`-joined path.
    pub scope: Option<Arc<str>>,
    /// Where the buffer was acquired, when known.
    pub location: Option<SourceLocation>,
    /// A small number naming the recording thread (stable for the thread's life).
    pub thread: u64,
    /// The account just after the event.
    pub account: AccountSample,
}

/// Formats a source location as `file:line`.
pub fn location_string(location: Option<SourceLocation>) -> String {
    match location {
        Some(l) => format!("{}:{}", l.file(), l.line()),
        None => "<unknown>".to_string(),
    }
}
