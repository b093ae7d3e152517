//! Per-kernel GPU time from timestamp queries, into the memory profiler's timeline.
//!
//! Where the device has `wgpu::Features::TIMESTAMP_QUERY` (requested by
//! [`WgpuBackend`](crate::WgpuBackend) whenever the adapter offers it), each dispatch recorded
//! while a full-mode profiler is attached writes a timestamp at the start and end of its
//! compute pass. [`Gpu::collect_kernel_times`](super::Gpu::collect_kernel_times) (also run
//! when the query set fills) resolves them, reads them back, and records one
//! [`EventKind::Kernel`](crate::profile::EventKind::Kernel) slice per dispatch.
//!
//! Durations and the gaps between kernels are the GPU's own. Where a batch sits on the CPU
//! clock is an estimate: wgpu offers no CPU-GPU clock correlation, so a batch's first kernel
//! is placed at the time its first dispatch was recorded (the GPU cannot start it earlier).
//!
//! The query resolve and readback buffers are created here rather than through the
//! [`Backend`](crate::Backend): they need query-resolve usage, which no accounted buffer has,
//! and they are tools of the profiler, not memory of the program.

use crate::backend::WgpuBackend;
use crate::error::{Error, Result};
use crate::profile::{MemoryProfiler, ProfileMode};
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// Dispatches timed per batch before the timestamps are collected.
const CAPACITY: u32 = 256;

pub(super) struct KernelTimer {
    profiler: Arc<MemoryProfiler>,
    queries: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// The kernel of each recorded query pair, in order.
    names: Vec<Cow<'static, str>>,
    /// Profiler time when the first of `names` was recorded.
    first_recorded: Duration,
    /// Nanoseconds per timestamp tick.
    period: f64,
}

impl KernelTimer {
    /// A timer for `backend`, or `None` when the device has no timestamp queries.
    pub(super) fn new(backend: &WgpuBackend, profiler: Arc<MemoryProfiler>) -> Option<Self> {
        let device = backend.device();
        if !device.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let bytes = u64::from(CAPACITY) * 2 * 8;
        let queries = device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("wgmem kernel timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count: CAPACITY * 2,
        });
        let buffer = |label, usage| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: bytes,
                usage,
                mapped_at_creation: false,
            })
        };
        Some(Self {
            profiler,
            queries,
            resolve: buffer(
                "wgmem timestamp resolve",
                wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            ),
            readback: buffer(
                "wgmem timestamp readback",
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
            names: Vec::new(),
            first_recorded: Duration::ZERO,
            period: f64::from(backend.queue().get_timestamp_period()),
        })
    }

    /// True when the next dispatch should be timed (the profiler keeps an event log).
    pub(super) fn active(&self) -> bool {
        self.profiler.mode() == ProfileMode::Full
    }

    /// True when the query set has no room for another dispatch.
    pub(super) fn full(&self) -> bool {
        self.names.len() as u32 >= CAPACITY
    }

    /// Claims the next query pair for `kernel`; returns the pass's timestamp writes.
    pub(super) fn claim(
        &mut self,
        kernel: Cow<'static, str>,
    ) -> wgpu::ComputePassTimestampWrites<'_> {
        let i = self.names.len() as u32;
        if i == 0 {
            self.first_recorded = self.profiler.elapsed();
        }
        self.names.push(kernel);
        wgpu::ComputePassTimestampWrites {
            query_set: &self.queries,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        }
    }

    /// Resolves and reads back the recorded timestamps and gives them to the profiler.
    /// Returns how many kernels were recorded.
    pub(super) fn collect(&mut self, backend: &WgpuBackend) -> Result<usize> {
        let n = self.names.len() as u32;
        if n == 0 {
            return Ok(0);
        }
        let bytes = u64::from(n) * 2 * 8;
        backend.encode(|encoder| {
            encoder.resolve_query_set(&self.queries, 0..2 * n, &self.resolve, 0);
            encoder.copy_buffer_to_buffer(&self.resolve, 0, &self.readback, 0, bytes);
        })?;
        backend.flush()?;
        let (tx, rx) = std::sync::mpsc::channel();
        self.readback
            .slice(..bytes)
            .map_async(wgpu::MapMode::Read, move |r| {
                let _ = tx.send(r);
            });
        backend
            .device()
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::DeviceLost {
                reason: e.to_string(),
            })?;
        rx.recv()
            .map_err(|_| Error::Map("the map callback never ran".into()))?
            .map_err(|e| Error::Map(e.to_string()))?;
        let ticks: Vec<u64> = {
            let view = self
                .readback
                .slice(..bytes)
                .get_mapped_range()
                .map_err(|e| Error::Map(e.to_string()))?;
            bytemuck::pod_collect_to_vec(&view[..])
        };
        self.readback.unmap();
        let base = ticks[0];
        let ns =
            |t: u64| Duration::from_nanos((t.saturating_sub(base) as f64 * self.period) as u64);
        for (i, name) in self.names.drain(..).enumerate() {
            let (start, end) = (ticks[2 * i], ticks[2 * i + 1]);
            let duration = ns(end).saturating_sub(ns(start));
            self.profiler
                .record_kernel(&name, self.first_recorded + ns(start), duration);
        }
        Ok(n as usize)
    }
}
