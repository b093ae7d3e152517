//! Linux sources of memory pressure: PSI and cgroup v2.
//!
//! Linux has no single "memory pressure" notification like Apple's libdispatch source, but it
//! has two good signals. PSI (pressure stall information, `/proc/pressure/memory`, kernel 4.20+)
//! measures how much time tasks lose waiting for memory, which is the cost of pressure rather
//! than a guess at it. Cgroup v2 (`memory.events`, `memory.current`, `memory.max`) tells how
//! close a container is to its own limit, which the machine-wide figures cannot see.
//!
//! Both read files. A file that is absent or not readable (an old kernel, PSI disabled, cgroup v1,
//! a sandbox) makes the source *unavailable* (`Ok(None)`), not an error; a file with unexpected
//! content is an [`crate::Error::Parse`]. The parsers themselves live in
//! [`crate::pressure::parse`], compiled and tested on every platform.

mod cgroup;
mod psi;
mod trigger;

pub use cgroup::CgroupSource;
pub(crate) use cgroup::detect_dir as detect_cgroup_dir;
pub use psi::{PROC_PRESSURE_MEMORY, PsiSource};

use crate::error::{Error, Result};
use std::io::ErrorKind;
use std::path::Path;

/// Reads a whole file; `None` when it is absent or not readable by us (the facility is missing,
/// which is not an error).
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if unavailable(e.kind()) => Ok(None),
        Err(e) => Err(Error::Io(std::io::Error::new(
            e.kind(),
            format!("reading {}: {e}", path.display()),
        ))),
    }
}

/// Error kinds that mean "this facility is not here": absent file, no permission, or a kernel
/// that has the file but not the feature (PSI disabled at boot answers `EOPNOTSUPP`).
fn unavailable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::Unsupported
    )
}
