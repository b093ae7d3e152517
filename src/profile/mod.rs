//! Memory profiling: what was allocated where, when, and what is still live.
//!
//! A [`MemoryProfiler`] attached to a [`MemoryManager`](crate::memory::MemoryManager)
//! (`manager.set_profiler(Some(profiler))`) receives every pool hit, allocation, release,
//! eviction and out-of-memory failure, with the size, size class, tag, the innermost
//! [`scope`](MemoryProfiler::scope) on the thread and the source location of the acquire call
//! (`#[track_caller]`). From those it answers the questions a memory budget raises: which
//! lines hold the most ([`MemoryProfiler::by_source`]), what is left over after a step
//! ([`MemoryProfiler::leaks_since`]), what filled memory at an out-of-memory failure
//! ([`MemoryProfiler::oom_report`]), and how it all moved over time (a Chrome / Perfetto trace
//! and SVG plots, [`MemoryProfiler::write_all`]).
//!
//! ```
//! use std::sync::Arc;
//! use wgmem::profile::MemoryProfiler;
//! use wgmem::{BufferUsage, HostBackend, MemoryManager};
//!
//! let manager = MemoryManager::new(Arc::new(HostBackend::new()));
//! let profiler = Arc::new(MemoryProfiler::full());
//! manager.set_profiler(Some(Arc::clone(&profiler)));
//! let mark = profiler.mark();
//! let kept = {
//!     let _step = profiler.scope("step");
//!     let _tmp = manager.acquire(4096, BufferUsage::Storage, "activations")?;
//!     manager.acquire(1024, BufferUsage::Storage, "weights")?
//! };
//! let leaks = profiler.leaks_since(mark);
//! assert_eq!(leaks.len(), 1);
//! assert_eq!(leaks.buffers[0].tag, "weights");
//! println!("{}", profiler.by_source());
//! # drop(kept);
//! # Ok::<(), wgmem::Error>(())
//! ```

mod chrome;
mod event;
mod export;
mod group;
mod hooks;
mod kernels;
mod profiler;
mod report;
mod scope;
mod svg;
mod timeline;

pub use chrome::chrome_trace;
pub use event::{AccountSample, Event, EventKind, SourceLocation, location_string};
pub use export::ProfileFiles;
pub use group::GroupStats;
pub use kernels::{KernelReport, KernelRow, KernelStats};
pub use profiler::{EventCounts, LiveBuffer, Mark, MemoryProfiler, ProfileMode};
pub use report::{GroupReport, GroupRow, LeakReport, OomReport};
pub use scope::ScopeGuard;
pub use svg::{class_heatmap_svg, timeline_svg};
pub use timeline::{ClassHeatmap, TimelinePoint, timeline_of};
