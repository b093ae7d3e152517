//! Lock helpers shared by the crate.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, recovering the data if another thread panicked while holding it. Every mutex in
/// this crate guards state that stays consistent between statements (counters, maps, byte
/// copies), so a poisoned lock is still safe to use, and recovering keeps one panicking user
/// thread from turning every later allocation into a panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
