//! Memory pressure: how hard the machine or the device budget is pressed, as three levels.
//!
//! The memory manager can give memory back (cached buffers, cleanup callbacks, a smaller batch)
//! but needs to know when. That knowledge comes from several places that differ by platform:
//! libdispatch on macOS and iOS, PSI and cgroup v2 files on Linux, and everywhere our own byte
//! count against the device budget. This module turns each into a [`PressureSource`] reporting a
//! [`PressureLevel`], and a [`PressureMonitor`] combines them (the worst level wins) and tells
//! [`PressureResponder`]s about each change, once.
//!
//! It sits below the memory manager and knows nothing of it: the manager passes its byte count
//! to a [`BudgetSource`] as a closure and registers itself as a responder.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use wgmem::pressure::{
//!     BudgetSource, PressureChange, PressureLevel, PressureMonitor, SimulatedSource,
//! };
//!
//! let os = SimulatedSource::new("os");
//! let os_pressure = os.handle();
//! let mut monitor = PressureMonitor::new();
//! monitor.add_source(os);
//! monitor.add_source(BudgetSource::new(|| (900, 1000))); // 90% of the budget: Warning
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let sink = seen.clone();
//! monitor.add_responder(Arc::new(move |c: PressureChange| sink.lock().unwrap().push(c.to)));
//!
//! monitor.poll();
//! os_pressure.set(PressureLevel::Critical);
//! monitor.poll();
//! os_pressure.set(PressureLevel::Normal);
//! monitor.poll(); // the budget still says Warning
//! assert_eq!(
//!     *seen.lock().unwrap(),
//!     [PressureLevel::Warning, PressureLevel::Critical, PressureLevel::Warning]
//! );
//! ```

#[cfg(target_vendor = "apple")]
mod apple;
mod budget;
mod footprint;
mod level;
#[cfg(target_os = "linux")]
mod linux;
mod monitor;
pub mod parse;
mod psi_thresholds;
mod responder;
mod simulated;
mod source;
mod thresholds;

#[cfg(target_vendor = "apple")]
pub use apple::DispatchPressureSource;
pub use budget::BudgetSource;
pub use footprint::FootprintPressureSource;
pub use level::{PressureChange, PressureLevel};
#[cfg(target_os = "linux")]
pub use linux::{CgroupSource, PROC_PRESSURE_MEMORY, PsiSource};
#[cfg(target_os = "linux")]
pub(crate) use linux::{detect_cgroup_dir, read_optional};
pub use monitor::{MIN_POLL_INTERVAL, PressureCounts, PressureMonitor, PressureMonitorHandle};
pub use psi_thresholds::PsiThresholds;
pub use responder::PressureResponder;
pub use simulated::{SimulatedPressure, SimulatedSource};
pub use source::PressureSource;
pub use thresholds::UsageThresholds;
