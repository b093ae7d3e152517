//! Printable reports: totals and peaks by source location, tag and scope; live buffers with
//! where they were made (leaks); and what memory looked like at an out-of-memory failure.
//!
//! Reports are plain data with a `Display` table, in the manner of gpu-allocator's
//! `AllocatorReport`: a user can print them, compare them or pick them apart in a test.

use super::event::{AccountSample, Event, SourceLocation, location_string};
use super::group::GroupStats;
use super::profiler::{Inner, LiveBuffer, MemoryProfiler};
use crate::sync::lock;
use crate::units::human_bytes;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// One row of a [`GroupReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRow {
    /// `file:line`, the tag, or the scope path.
    pub key: String,
    /// The group's totals.
    pub stats: GroupStats,
}

/// Totals and peak live bytes per group, largest peak first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupReport {
    /// What the groups are (`"location"`, `"tag"`, `"scope"`).
    pub grouped_by: &'static str,
    /// The rows, largest peak live bytes first.
    pub rows: Vec<GroupRow>,
}

impl GroupReport {
    fn new(grouped_by: &'static str, mut rows: Vec<GroupRow>) -> Self {
        rows.sort_by(|a, b| {
            (b.stats.peak_live_bytes, b.stats.total_bytes, &a.key).cmp(&(
                a.stats.peak_live_bytes,
                a.stats.total_bytes,
                &b.key,
            ))
        });
        Self { grouped_by, rows }
    }

    /// The row for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&GroupStats> {
        self.rows.iter().find(|r| r.key == key).map(|r| &r.stats)
    }
}

impl fmt::Display for GroupReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .rows
            .iter()
            .map(|r| r.key.len())
            .chain([self.grouped_by.len()])
            .max()
            .unwrap_or(0);
        writeln!(
            f,
            "{:<width$}  {:>8}  {:>8}  {:>12}  {:>12}  {:>12}",
            self.grouped_by, "count", "hits", "total", "live", "peak live"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<width$}  {:>8}  {:>8}  {:>12}  {:>12}  {:>12}",
                r.key,
                r.stats.count,
                r.stats.hits,
                human_bytes(r.stats.total_bytes),
                human_bytes(r.stats.live_bytes),
                human_bytes(r.stats.peak_live_bytes),
            )?;
        }
        Ok(())
    }
}

/// Live buffers with where each was made: a leak report when taken at a point where the
/// buffers should all have been released.
#[derive(Debug, Clone)]
pub struct LeakReport {
    /// The buffers, oldest first.
    pub buffers: Vec<LiveBuffer>,
}

impl LeakReport {
    /// True when nothing is live.
    pub fn is_empty(&self) -> bool {
        self.buffers.is_empty()
    }

    /// Number of live buffers.
    pub fn len(&self) -> usize {
        self.buffers.len()
    }

    /// Their size-class bytes.
    pub fn bytes(&self) -> u64 {
        self.buffers.iter().map(|b| b.size).sum()
    }
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} live buffer(s), {}",
            self.buffers.len(),
            human_bytes(self.bytes())
        )?;
        for b in &self.buffers {
            write!(
                f,
                "\n  #{} {} '{}' at {} (acquired at {:.3} ms",
                b.id,
                human_bytes(b.size),
                b.tag,
                location_string(b.location),
                b.acquired.as_secs_f64() * 1e3
            )?;
            if let Some(s) = &b.scope {
                write!(f, " in {s}")?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// What memory looked like when an acquisition failed for good.
#[derive(Debug, Clone)]
pub struct OomReport {
    /// When (since the profiler's start).
    pub time: Duration,
    /// The size class asked for.
    pub requested: u64,
    /// The tag of the failed request.
    pub tag: &'static str,
    /// Where the failed request was made.
    pub location: Option<SourceLocation>,
    /// The account at the failure.
    pub account: AccountSample,
    /// Live bytes by source location, largest first (count = live buffers).
    pub top_sources: Vec<GroupRow>,
    /// The largest live buffers, largest first.
    pub top_buffers: Vec<LiveBuffer>,
}

impl OomReport {
    /// Reserved over live bytes: how much of what the backend holds is not in use (1.0 is
    /// none; infinite when nothing is live).
    pub fn fragmentation(&self) -> f64 {
        if self.account.live == 0 {
            if self.account.reserved() == 0 {
                1.0
            } else {
                f64::INFINITY
            }
        } else {
            self.account.reserved() as f64 / self.account.live as f64
        }
    }

    pub(super) fn build(inner: &Inner, event: &Event, top: usize) -> Self {
        let mut by_site: HashMap<String, GroupStats> = HashMap::new();
        for b in inner.live.values() {
            let g = by_site.entry(location_string(b.location)).or_default();
            g.count += 1;
            g.total_bytes += b.size;
            g.live_bytes += b.size;
            g.peak_live_bytes = g.live_bytes;
        }
        let mut top_sources: Vec<GroupRow> = by_site
            .into_iter()
            .map(|(key, stats)| GroupRow { key, stats })
            .collect();
        top_sources.sort_by(|a, b| (b.stats.live_bytes, &a.key).cmp(&(a.stats.live_bytes, &b.key)));
        top_sources.truncate(top);
        let mut top_buffers: Vec<LiveBuffer> = inner.live.values().cloned().collect();
        top_buffers.sort_by(|a, b| (b.size, a.seq).cmp(&(a.size, b.seq)));
        top_buffers.truncate(top);
        Self {
            time: event.time,
            requested: event.size,
            tag: event.tag,
            location: event.location,
            account: event.account,
            top_sources,
            top_buffers,
        }
    }
}

impl fmt::Display for OomReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "out of memory at {:.3} ms: {} for '{}' at {}",
            self.time.as_secs_f64() * 1e3,
            human_bytes(self.requested),
            self.tag,
            location_string(self.location)
        )?;
        writeln!(
            f,
            "live {}, cached {}, reserved {}; fragmentation (reserved / live) {:.2}",
            human_bytes(self.account.live),
            human_bytes(self.account.cached),
            human_bytes(self.account.reserved()),
            self.fragmentation()
        )?;
        write!(f, "live bytes by source:")?;
        for r in &self.top_sources {
            write!(
                f,
                "\n  {}  {} in {} buffer(s)",
                r.key,
                human_bytes(r.stats.live_bytes),
                r.stats.count
            )?;
        }
        Ok(())
    }
}

impl MemoryProfiler {
    /// Totals and peaks by the source location of the acquisition.
    pub fn by_source(&self) -> GroupReport {
        let inner = lock(&self.inner);
        let rows = inner
            .groups
            .by_source
            .values()
            .map(|(l, stats)| GroupRow {
                key: location_string(Some(l)),
                stats: *stats,
            })
            .collect();
        GroupReport::new("location", rows)
    }

    /// Totals and peaks by accounting tag.
    pub fn by_tag(&self) -> GroupReport {
        let inner = lock(&self.inner);
        let rows = inner
            .groups
            .by_tag
            .iter()
            .map(|(t, stats)| GroupRow {
                key: t.to_string(),
                stats: *stats,
            })
            .collect();
        GroupReport::new("tag", rows)
    }

    /// Totals and peaks by the scope the acquisition was made in (acquisitions outside any
    /// scope are not listed).
    pub fn by_scope(&self) -> GroupReport {
        let inner = lock(&self.inner);
        let rows = inner
            .groups
            .by_scope
            .iter()
            .map(|(s, stats)| GroupRow {
                key: s.to_string(),
                stats: *stats,
            })
            .collect();
        GroupReport::new("scope", rows)
    }
}
