//! Named, nestable scopes (`profiler.scope("layer3.backward")`), one stack per thread.
//!
//! Events take the innermost open scope of the thread that records them, so a report can say
//! not only which line allocated but in which phase of the step. The stack is thread-local
//! (no lock), keyed by profiler so two profilers on one thread do not see each other's scopes;
//! an entry holds its `/`-joined path ready-made, so tagging an event is an `Arc` clone.

use super::profiler::MemoryProfiler;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

struct Frame {
    profiler: u64,
    path: Arc<str>,
    name: Arc<str>,
    opened: Duration,
}

thread_local! {
    static STACK: RefCell<Vec<Frame>> = const { RefCell::new(Vec::new()) };
    static THREAD: u64 = {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

/// A small number for the current thread, stable for its life.
pub(super) fn thread_number() -> u64 {
    THREAD.with(|t| *t)
}

/// The innermost scope of `profiler` open on this thread, as a path.
pub(super) fn current(profiler: u64) -> Option<Arc<str>> {
    STACK.with(|s| {
        s.borrow()
            .iter()
            .rev()
            .find(|f| f.profiler == profiler)
            .map(|f| Arc::clone(&f.path))
    })
}

/// Opens a scope; returns the depth it got.
pub(super) fn push(profiler: u64, name: &str, opened: Duration) -> usize {
    STACK.with(|s| {
        let mut stack = s.borrow_mut();
        let mut depth = 0;
        let mut parent = None;
        for f in stack.iter().filter(|f| f.profiler == profiler) {
            depth += 1;
            parent = Some(Arc::clone(&f.path));
        }
        let path: Arc<str> = match parent {
            Some(p) => format!("{p}/{name}").into(),
            None => name.into(),
        };
        stack.push(Frame {
            profiler,
            path,
            name: name.into(),
            opened,
        });
        depth
    })
}

/// Closes the innermost scope of `profiler` on this thread: `(name, path, opened)`.
fn pop(profiler: u64) -> Option<(Arc<str>, Arc<str>, Duration)> {
    STACK.with(|s| {
        let mut stack = s.borrow_mut();
        let i = stack.iter().rposition(|f| f.profiler == profiler)?;
        let f = stack.remove(i);
        Some((f.name, f.path, f.opened))
    })
}

/// An open scope; closing it (dropping the guard) records a scope event with its duration.
/// Guards of one thread close in reverse order of opening, as their lexical scopes do; the
/// guard is `!Send` so it cannot close on another thread's stack.
#[must_use = "the scope closes when the guard is dropped"]
pub struct ScopeGuard<'a> {
    profiler: Option<&'a MemoryProfiler>,
    depth: usize,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl<'a> ScopeGuard<'a> {
    pub(super) fn open(profiler: &'a MemoryProfiler, name: &str) -> Self {
        let depth = push(profiler.id(), name, profiler.elapsed());
        Self {
            profiler: Some(profiler),
            depth,
            _not_send: std::marker::PhantomData,
        }
    }

    pub(super) fn inactive() -> Self {
        Self {
            profiler: None,
            depth: 0,
            _not_send: std::marker::PhantomData,
        }
    }

    /// Nesting depth of this scope on its thread (0 for the outermost; 0 when inactive).
    pub fn depth(&self) -> usize {
        self.depth
    }
}

impl Drop for ScopeGuard<'_> {
    fn drop(&mut self) {
        if let Some(p) = self.profiler {
            if let Some((name, path, opened)) = pop(p.id()) {
                p.record_scope(name, path, opened, self.depth);
            }
        }
    }
}
