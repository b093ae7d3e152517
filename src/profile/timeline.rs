//! Time series made from the event log: the account (live / cached / reserved) after each
//! event, and live bytes per size class per time bucket (the heatmap's data).
//!
//! Both are pure functions of a slice of events, so the exports and the tests share them.
//! When the ring buffer has dropped old events, the per-class replay starts from zero at the
//! oldest event kept; values are clamped at zero rather than going negative.

use super::event::{AccountSample, Event, EventKind};
use super::profiler::MemoryProfiler;
use std::collections::BTreeMap;
use std::time::Duration;

/// The account just after one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelinePoint {
    /// When (since the profiler's start).
    pub time: Duration,
    /// Live and cached bytes then.
    pub account: AccountSample,
}

/// True for the events that change the account (alloc, hit, free, evict, OOM, pressure).
fn is_memory_event(e: &Event) -> bool {
    !matches!(e.kind, EventKind::Scope { .. } | EventKind::Kernel { .. })
}

/// The account after each memory event, in time order.
pub fn timeline_of(events: &[Event]) -> Vec<TimelinePoint> {
    events
        .iter()
        .filter(|e| is_memory_event(e))
        .map(|e| TimelinePoint {
            time: e.time,
            account: e.account,
        })
        .collect()
}

/// Live bytes per size class over time, in equal time buckets: `bytes[bucket][class]` is the
/// highest live byte count of `classes[class]` within the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassHeatmap {
    /// The size classes seen, ascending.
    pub classes: Vec<u64>,
    /// Width of a bucket.
    pub bucket: Duration,
    /// Start of the first bucket.
    pub start: Duration,
    /// Per bucket, per class: peak live bytes.
    pub bytes: Vec<Vec<u64>>,
}

impl ClassHeatmap {
    /// Replays the alloc / hit / free events into `buckets` buckets (at least 1).
    pub fn from_events(events: &[Event], buckets: usize) -> Self {
        let buckets = buckets.max(1);
        let mem: Vec<&Event> = events.iter().filter(|e| is_memory_event(e)).collect();
        let classes: Vec<u64> = {
            let mut c: Vec<u64> = mem
                .iter()
                .filter(|e| matches!(e.kind, EventKind::Alloc | EventKind::PoolHit))
                .map(|e| e.size)
                .collect();
            c.sort_unstable();
            c.dedup();
            c
        };
        let (start, end) = match (mem.first(), mem.last()) {
            (Some(a), Some(b)) => (a.time, b.time),
            _ => (Duration::ZERO, Duration::ZERO),
        };
        let span = end
            .saturating_sub(start)
            .max(Duration::from_nanos(buckets as u64));
        let bucket = span / buckets as u32 + Duration::from_nanos(1);
        let index: BTreeMap<u64, usize> =
            classes.iter().enumerate().map(|(i, c)| (*c, i)).collect();
        let mut live = vec![0u64; classes.len()];
        let mut bytes = vec![vec![0u64; classes.len()]; buckets];
        let mut current = 0usize;
        for e in mem {
            let b = (((e.time - start).as_nanos() / bucket.as_nanos()) as usize).min(buckets - 1);
            while current < b {
                // Buckets without events keep the live bytes of the one before.
                current += 1;
                bytes[current].clone_from(&live);
            }
            let Some(&i) = index.get(&e.size) else {
                continue;
            };
            match e.kind {
                EventKind::Alloc | EventKind::PoolHit => live[i] += e.size,
                EventKind::Free => live[i] = live[i].saturating_sub(e.size),
                _ => continue,
            }
            bytes[b][i] = bytes[b][i].max(live[i]);
        }
        Self {
            classes,
            bucket,
            start,
            bytes,
        }
    }

    /// The largest value in the map (0 when empty).
    pub fn max(&self) -> u64 {
        self.bytes.iter().flatten().copied().max().unwrap_or(0)
    }
}

impl MemoryProfiler {
    /// The account after each recorded memory event (full mode only; empty otherwise).
    pub fn timeline(&self) -> Vec<TimelinePoint> {
        timeline_of(&self.events())
    }

    /// Live bytes per size class over time in `buckets` buckets (full mode only).
    pub fn class_heatmap(&self, buckets: usize) -> ClassHeatmap {
        ClassHeatmap::from_events(&self.events(), buckets)
    }
}
