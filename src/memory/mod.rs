//! Memory accounting and pooling above the [`crate::backend::Backend`] seam.
//!
//! [`MemoryManager`] is the single account of bytes; [`BufferPool`] holds released buffers by
//! [`SizeClasses`] for reuse; [`ManagedBuffer`] is the RAII handle users hold; scratch
//! buffers and [`Workspace`] cover temporaries. Everything here is generic over the backend,
//! so it is tested exactly on `HostBackend` and runs unchanged on the GPU.

mod account;
mod cleanup;
mod config;
mod footprint;
mod managed;
mod manager;
mod pool;
mod pressure_response;
mod scratch;
mod size_class;
mod stats;

pub use crate::units::human_bytes;
pub use cleanup::{CleanupId, CleanupReason, CleanupRequest};
pub use config::MemoryConfig;
pub use managed::ManagedBuffer;
pub use manager::MemoryManager;
pub use pool::{BufferPool, Pooled};
pub use scratch::Workspace;
pub use size_class::SizeClasses;
pub use stats::MemoryStats;
