//! A PSI trigger: the kernel tells us when memory stalls exceed a threshold within a window.
//!
//! The averages in a PSI file lag (the shortest is over 10 seconds and is updated every 2); a
//! trigger fires within one window of the stall, so it catches a burst of pressure early.
//! Writing `"some <stall us> <window us>"` to an open PSI file arms it; the file then reports
//! `POLLPRI` once per window in which the stall exceeded the threshold. Root (or
//! `CAP_SYS_RESOURCE`) may use any window from 0.5 to 10 s; since Linux 6.5 unprivileged users
//! may too, with windows that are a multiple of 2 s. Where it is refused, the PSI source falls
//! back to reading the averages.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::raw::{c_int, c_short, c_ulong};
use std::path::Path;
use std::time::Duration;

/// `struct pollfd` from `<poll.h>`.
#[repr(C)]
struct PollFd {
    fd: c_int,
    events: c_short,
    revents: c_short,
}

const POLLPRI: c_short = 0x002;
const POLLERR: c_short = 0x008;
const POLLNVAL: c_short = 0x020;

unsafe extern "C" {
    /// `poll(2)` from the C library (`nfds_t` is `unsigned long` in glibc and musl).
    fn poll(fds: *mut PollFd, nfds: c_ulong, timeout: c_int) -> c_int;
}

/// An armed PSI trigger on an open PSI file. Closing the file (drop) removes it.
#[derive(Debug)]
pub(super) struct PsiTrigger {
    file: File,
}

impl PsiTrigger {
    /// Arms a `some` trigger: fire when tasks were stalled for `stall` within any `window`.
    pub(super) fn arm(path: &Path, stall: Duration, window: Duration) -> io::Result<Self> {
        let mut file = OpenOptions::new().read(true).write(true).open(path)?;
        // The kernel overwrites the last byte written with a NUL, so write one ourselves.
        let spec = format!("some {} {}\0", stall.as_micros(), window.as_micros());
        file.write_all(spec.as_bytes())?;
        Ok(PsiTrigger { file })
    }

    /// True when the trigger fired since the last call (the event is consumed). Does not block.
    pub(super) fn fired(&self) -> io::Result<bool> {
        let mut fd = PollFd {
            fd: self.file.as_raw_fd(),
            events: POLLPRI,
            revents: 0,
        };
        // SAFETY: `fd` is one valid, initialised `pollfd` that lives across the call, and `nfds`
        // is 1 to match; the descriptor stays open because `self.file` is borrowed. A timeout of
        // 0 makes the call return at once.
        let n = unsafe { poll(&mut fd, 1, 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(err)
            };
        }
        if fd.revents & (POLLERR | POLLNVAL) != 0 {
            // The monitored cgroup went away, or the trigger was torn down.
            return Err(io::Error::other(
                "the PSI trigger was removed by the kernel",
            ));
        }
        Ok(fd.revents & POLLPRI != 0)
    }
}
