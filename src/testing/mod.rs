//! Test support compiled only with the `testing` feature (and in the crate's own unit tests):
//! a fault-injecting backend, so the layers above the [`crate::backend::Backend`] seam can be
//! shown to survive every failure a device can produce.
//!
//! It lives in the crate rather than in `tests/` so that downstream crates can run their own
//! code under the same faults (`wgmem = { features = ["testing"] }` in their dev-dependencies).

mod faulty;

pub use crate::backend::{FaultCounts, FaultPlan};
pub use faulty::FaultyBackend;
