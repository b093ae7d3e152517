//! GPU time by kernel: where a step's device time goes.
//!
//! The timeline keeps each timed dispatch as an event, but the ring of events is bounded and a
//! training step dispatches hundreds of kernels; the question a slow step raises is "which
//! kernels take the time", so the profiler also keeps a running total per kernel name that no
//! ring overflow loses. [`MemoryProfiler::by_kernel`] returns it as a table.

use super::profiler::MemoryProfiler;
use crate::sync::lock;
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

/// Dispatches and GPU time of one kernel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Timed dispatches.
    pub dispatches: u64,
    /// Their summed GPU time.
    pub total: Duration,
}

/// One row of a [`KernelReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRow {
    /// The kernel's label (`shader::entry`, with the tile or fragment variant where it has one).
    pub kernel: String,
    /// Its totals.
    pub stats: KernelStats,
}

/// GPU time per kernel, most time first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelReport {
    /// The rows, most total time first.
    pub rows: Vec<KernelRow>,
}

impl KernelReport {
    /// The summed GPU time of every timed dispatch.
    pub fn total(&self) -> Duration {
        self.rows.iter().map(|r| r.stats.total).sum()
    }

    /// The row for `kernel`, if it ran.
    pub fn get(&self, kernel: &str) -> Option<&KernelStats> {
        self.rows
            .iter()
            .find(|r| r.kernel == kernel)
            .map(|r| &r.stats)
    }
}

impl fmt::Display for KernelReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.rows.iter().map(|r| r.kernel.len()).max().unwrap_or(6);
        let total = self.total().as_secs_f64();
        writeln!(
            f,
            "{:<width$}  {:>10}  {:>12}  {:>10}  {:>6}",
            "kernel", "dispatches", "total ms", "mean us", "share"
        )?;
        for r in &self.rows {
            let t = r.stats.total.as_secs_f64();
            writeln!(
                f,
                "{:<width$}  {:>10}  {:>12.3}  {:>10.2}  {:>5.1}%",
                r.kernel,
                r.stats.dispatches,
                t * 1e3,
                t * 1e6 / r.stats.dispatches.max(1) as f64,
                if total > 0.0 { 100.0 * t / total } else { 0.0 }
            )?;
        }
        write!(f, "{:<width$}  {:>10}  {:>12.3}", "all", "", total * 1e3)
    }
}

/// The running totals the profiler keeps.
#[derive(Debug, Default)]
pub(super) struct KernelTotals(HashMap<String, KernelStats>);

impl KernelTotals {
    pub(super) fn add(&mut self, kernel: &str, duration: Duration) {
        let s = match self.0.get_mut(kernel) {
            Some(s) => s,
            None => self.0.entry(kernel.to_string()).or_default(),
        };
        s.dispatches += 1;
        s.total += duration;
    }
}

impl MemoryProfiler {
    /// GPU time per kernel since the profiler was made or [`reset`](Self::reset), from the
    /// timestamps of [`Gpu::set_profiler`](crate::compute::Gpu::set_profiler) (full mode only;
    /// empty on a device without timestamp queries). Collect pending timings with
    /// [`Gpu::collect_kernel_times`](crate::compute::Gpu::collect_kernel_times) first.
    pub fn by_kernel(&self) -> KernelReport {
        let inner = lock(&self.inner);
        let mut rows: Vec<KernelRow> = inner
            .kernels
            .0
            .iter()
            .map(|(k, s)| KernelRow {
                kernel: k.clone(),
                stats: *s,
            })
            .collect();
        rows.sort_by(|a, b| (b.stats.total, &a.kernel).cmp(&(a.stats.total, &b.kernel)));
        KernelReport { rows }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_per_kernel_sorted_by_time() {
        let p = MemoryProfiler::full();
        p.record_kernel("a", Duration::ZERO, Duration::from_micros(5));
        p.record_kernel("b", Duration::ZERO, Duration::from_micros(30));
        p.record_kernel("a", Duration::ZERO, Duration::from_micros(7));
        let r = p.by_kernel();
        assert_eq!(r.rows[0].kernel, "b");
        assert_eq!(
            r.get("a"),
            Some(&KernelStats {
                dispatches: 2,
                total: Duration::from_micros(12)
            })
        );
        assert_eq!(r.total(), Duration::from_micros(42));
        let text = r.to_string();
        assert!(text.contains("71.4%"), "{text}");
        p.reset();
        assert!(p.by_kernel().rows.is_empty());
    }

    #[test]
    fn tracking_mode_keeps_no_kernel_times() {
        let p = MemoryProfiler::tracking();
        p.record_kernel("a", Duration::ZERO, Duration::from_micros(5));
        assert!(p.by_kernel().rows.is_empty());
    }
}
