//! The macOS / iOS source: libdispatch's memory-pressure notifications.
//!
//! On Apple Silicon the GPU's memory is the machine's memory, so the system's memory pressure is
//! the GPU's pressure too, and the kernel's own judgement (the one that makes apps drop caches
//! or get jetsammed on iOS) is the best signal there is. libdispatch delivers it as a dispatch
//! source of type `DISPATCH_SOURCE_TYPE_MEMORYPRESSURE` with the events normal, warn and critical.
//!
//! The handler is a plain C function (`dispatch_source_set_event_handler_f`), not a block, so no
//! Objective-C block runtime is needed. It runs on a global dispatch queue and stores the latest
//! level in an atomic that [`DispatchPressureSource::poll`] reads. The handler's context is an
//! `Arc` turned into a raw pointer; the source's finalizer turns it back and drops it once
//! libdispatch has finished with the source, so the atomic outlives every handler call.
//!
//! This module is type-checked for `aarch64-apple-darwin` and `aarch64-apple-ios` in CI, but no
//! Apple machine runs the tests: its behaviour is verified by hand on a Mac only.

use super::{PressureLevel, PressureSource};
use crate::error::Result;
use std::ffi::c_void;
use std::sync::Arc;
use std::sync::atomic::{AtomicPtr, AtomicU8, Ordering};

/// Opaque libdispatch types; only pointers to them cross the boundary.
#[repr(C)]
struct DispatchObject {
    _private: [u8; 0],
}

#[repr(C)]
struct DispatchSourceType {
    _private: [u8; 0],
}

type DispatchSource = *mut DispatchObject;
type DispatchQueue = *mut DispatchObject;

/// `DISPATCH_MEMORYPRESSURE_NORMAL`, `_WARN`, `_CRITICAL` from `<dispatch/source.h>`.
const MEMORYPRESSURE_NORMAL: usize = 0x01;
const MEMORYPRESSURE_WARN: usize = 0x02;
const MEMORYPRESSURE_CRITICAL: usize = 0x04;

// libdispatch is part of libSystem, which every Apple binary links.
unsafe extern "C" {
    /// What the `DISPATCH_SOURCE_TYPE_MEMORYPRESSURE` macro takes the address of.
    static _dispatch_source_type_memorypressure: DispatchSourceType;

    fn dispatch_get_global_queue(identifier: isize, flags: usize) -> DispatchQueue;
    fn dispatch_source_create(
        kind: *const DispatchSourceType,
        handle: usize,
        mask: usize,
        queue: DispatchQueue,
    ) -> DispatchSource;
    fn dispatch_set_context(object: DispatchSource, context: *mut c_void);
    fn dispatch_set_finalizer_f(object: DispatchSource, finalizer: extern "C" fn(*mut c_void));
    fn dispatch_source_set_event_handler_f(
        source: DispatchSource,
        handler: extern "C" fn(*mut c_void),
    );
    fn dispatch_source_get_data(source: DispatchSource) -> usize;
    fn dispatch_resume(object: DispatchSource);
    fn dispatch_source_cancel(source: DispatchSource);
    fn dispatch_release(object: DispatchSource);
}

/// What the handler shares with the Rust side.
struct HandlerState {
    /// The latest level, as [`PressureLevel`] index.
    level: AtomicU8,
    /// The dispatch source, set before it is resumed, so the handler can read its data.
    source: AtomicPtr<DispatchObject>,
}

/// Runs on a dispatch queue each time the system's memory pressure changes.
extern "C" fn on_event(context: *mut c_void) {
    // SAFETY: `context` is the pointer from `Arc::into_raw` set in `new`; that reference is
    // released only by `finalize`, which libdispatch calls after the last handler has returned.
    let state = unsafe { &*(context as *const HandlerState) };
    let source = state.source.load(Ordering::Acquire);
    // SAFETY: the source was stored before `dispatch_resume`, the only thing that lets this
    // handler run, and it is not released before the handler has finished (see `Drop`).
    let data = unsafe { dispatch_source_get_data(source) };
    // Several events may be coalesced into one call; keep the worst.
    let level = if data & MEMORYPRESSURE_CRITICAL != 0 {
        PressureLevel::Critical
    } else if data & MEMORYPRESSURE_WARN != 0 {
        PressureLevel::Warning
    } else if data & MEMORYPRESSURE_NORMAL != 0 {
        PressureLevel::Normal
    } else {
        return;
    };
    state.level.store(level.index() as u8, Ordering::Release);
}

/// Releases the handler's reference to the shared state once libdispatch is done with it.
extern "C" fn finalize(context: *mut c_void) {
    // SAFETY: called once, by libdispatch, with the context set in `new`: the pointer from
    // `Arc::into_raw`, whose reference is given back here exactly once.
    drop(unsafe { Arc::from_raw(context as *const HandlerState) });
}

/// A [`PressureSource`] fed by libdispatch's memory-pressure events (macOS and iOS).
///
/// Reports [`PressureLevel::Normal`] until the first event: libdispatch reports changes, not the
/// current state. Cancelled and released on drop.
pub struct DispatchPressureSource {
    state: Arc<HandlerState>,
    source: DispatchSource,
}

// SAFETY: the raw source pointer is only used to cancel and release the source in `Drop`, and
// libdispatch objects may be used from any thread.
unsafe impl Send for DispatchPressureSource {}

impl std::fmt::Debug for DispatchPressureSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatchPressureSource")
            .field("level", &self.latest())
            .finish_non_exhaustive()
    }
}

impl DispatchPressureSource {
    /// Subscribes to the system's memory-pressure events. `None` when libdispatch refuses to
    /// create the source.
    pub fn new() -> Option<Self> {
        let state = Arc::new(HandlerState {
            level: AtomicU8::new(PressureLevel::Normal.index() as u8),
            source: AtomicPtr::new(std::ptr::null_mut()),
        });
        let mask = MEMORYPRESSURE_NORMAL | MEMORYPRESSURE_WARN | MEMORYPRESSURE_CRITICAL;
        // SAFETY: plain C calls with valid arguments: the address of libdispatch's own source
        // type, a mask of documented flags, and a global queue (which needs no release).
        let source = unsafe {
            let queue = dispatch_get_global_queue(0, 0);
            dispatch_source_create(
                &raw const _dispatch_source_type_memorypressure,
                0,
                mask,
                queue,
            )
        };
        if source.is_null() {
            log::warn!("libdispatch refused a memory-pressure source");
            return None;
        }
        state.source.store(source, Ordering::Release);
        let context = Arc::into_raw(state.clone()) as *mut c_void;
        // SAFETY: `source` is a valid, suspended source we own. The context outlives every
        // handler call because `finalize` frees it only when libdispatch destroys the source.
        // The handler and finalizer are `extern "C"` functions that never unwind (they only
        // load and store atomics). Resuming last makes the handler able to run.
        unsafe {
            dispatch_set_context(source, context);
            dispatch_set_finalizer_f(source, finalize);
            dispatch_source_set_event_handler_f(source, on_event);
            dispatch_resume(source);
        }
        Some(DispatchPressureSource { state, source })
    }

    fn latest(&self) -> PressureLevel {
        PressureLevel::from_index(self.state.level.load(Ordering::Acquire) as usize)
    }
}

impl PressureSource for DispatchPressureSource {
    fn name(&self) -> &str {
        "dispatch"
    }

    fn poll(&mut self) -> Result<Option<PressureLevel>> {
        Ok(Some(self.latest()))
    }
}

impl Drop for DispatchPressureSource {
    fn drop(&mut self) {
        // SAFETY: `self.source` is the resumed source created in `new` and released only here.
        // Cancelling stops new handler calls; libdispatch keeps the source alive until a running
        // handler returns, then calls `finalize` to free the context.
        unsafe {
            dispatch_source_cancel(self.source);
            dispatch_release(self.source);
        }
    }
}
