//! Chrome trace / Perfetto JSON export of the event log.
//!
//! The format is the Trace Event Format that both `chrome://tracing` and the Perfetto UI load:
//! the account becomes a counter track (`"ph":"C"`, named `memory`, with `live`, `cached` and
//! `reserved` series), scopes and GPU kernels become complete slices (`"ph":"X"`) on their
//! thread, allocations and frees become thread instants, and evictions, out-of-memory
//! failures and pressure changes become process-wide instants (`"s":"p"`) so they stand out.
//! Times are microseconds since the profiler's start.

use super::event::{Event, EventKind, location_string};
use serde_json::{Value, json};

/// The process id used in the trace (there is one process).
const PID: u64 = 1;
/// The pseudo-thread that carries GPU kernel slices.
const GPU_TID: u64 = 0;

fn micros(d: std::time::Duration) -> f64 {
    d.as_nanos() as f64 / 1e3
}

fn instant(e: &Event, scope: &str) -> Value {
    let mut args = json!({
        "size": e.size,
        "requested": e.requested,
        "tag": e.tag,
        "location": location_string(e.location),
        "buffer": e.buffer,
    });
    if let Some(s) = &e.scope {
        args["scope"] = json!(s.as_ref());
    }
    if let EventKind::Pressure { from, to, source } = &e.kind {
        args = json!({ "from": from, "to": to, "source": source });
    }
    json!({
        "name": e.kind.name(),
        "cat": "memory",
        "ph": "i",
        "s": scope,
        "ts": micros(e.time),
        "pid": PID,
        "tid": e.thread,
        "args": args,
    })
}

/// The trace of `events` as a JSON value (`{"traceEvents": [...], ...}`).
pub fn chrome_trace(events: &[Event]) -> Value {
    let mut out = vec![
        json!({"name": "process_name", "ph": "M", "pid": PID, "args": {"name": "wgmem"}}),
        json!({"name": "thread_name", "ph": "M", "pid": PID, "tid": GPU_TID, "args": {"name": "GPU kernels"}}),
    ];
    let mut threads: Vec<u64> = events.iter().map(|e| e.thread).collect();
    threads.sort_unstable();
    threads.dedup();
    for t in threads {
        out.push(
            json!({"name": "thread_name", "ph": "M", "pid": PID, "tid": t,
                        "args": {"name": format!("thread {t}")}}),
        );
    }
    for e in events {
        match &e.kind {
            EventKind::Scope {
                name,
                duration,
                depth,
            } => out.push(json!({
                "name": name.as_ref(),
                "cat": "scope",
                "ph": "X",
                "ts": micros(e.time),
                "dur": micros(*duration),
                "pid": PID,
                "tid": e.thread,
                "args": {"path": e.scope.as_deref().unwrap_or(""), "depth": depth},
            })),
            EventKind::Kernel { name, duration } => out.push(json!({
                "name": name,
                "cat": "kernel",
                "ph": "X",
                "ts": micros(e.time),
                "dur": micros(*duration),
                "pid": PID,
                "tid": GPU_TID,
            })),
            kind => {
                let scope = match kind {
                    EventKind::Evict | EventKind::OutOfMemory | EventKind::Pressure { .. } => "p",
                    _ => "t",
                };
                out.push(instant(e, scope));
                out.push(json!({
                    "name": "memory",
                    "ph": "C",
                    "ts": micros(e.time),
                    "pid": PID,
                    "args": {
                        "live": e.account.live,
                        "cached": e.account.cached,
                        "reserved": e.account.reserved(),
                    },
                }));
            }
        }
    }
    json!({
        "traceEvents": out,
        "displayTimeUnit": "ms",
        "otherData": {"generator": concat!("wgmem ", env!("CARGO_PKG_VERSION"))},
    })
}
