//! Memory accounting above the [`crate::backend::Backend`] seam.

mod stats;

pub use stats::{MemoryStats, human_bytes};
