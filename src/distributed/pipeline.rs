//! The exchange of buckets between the GPU and a [`Collective`], pipelined.
//!
//! A bucket is a list of GPU ranges copied into one host-readable staging buffer
//! ([`BufferUsage::Readback`]), a host operation that reads that mapped staging and writes a
//! host vector (the collective), and a list of GPU ranges the result is copied back to through
//! one host-writable staging buffer ([`BufferUsage::Upload`]).
//!
//! Why pipelined: a bucket's trip is GPU copy → map → collective → host copy → GPU copy, and
//! only the collective needs the host. So [`DEPTH`] slots of (readback, upload) staging
//! rotate: the copies of the next buckets are submitted before the host starts on this one,
//! the host waits only for the submission that filled the bucket it needs
//! ([`WgpuBackend::wait_map`]), and the upload of a bucket runs while the host reduces the
//! next. The host touches each value twice: the collective reads it from the mapped readback
//! buffer (no copy out first), and one copy writes the result into the mapped upload buffer
//! (the collective writes a cached host vector, not the upload buffer, because reductions
//! read their output back and upload memory may be uncached).
//!
//! Staging comes from the pool under [`super::COMM`], so the memory manager counts it:
//! `DEPTH` × (readback + upload) buckets, plus the host vector.

use super::Collective;
use crate::WgpuBackend;
use crate::backend::{BufferUsage, MapRequest};
use crate::error::{Error, Result};
use crate::memory::ManagedBuffer;
use crate::tensor::Context;
use std::time::Instant;

/// Staging slots in flight: the GPU's copies (tens of GB/s) run far ahead of a host
/// collective (a few GB/s), so two slots keep the host busy.
pub(crate) const DEPTH: usize = 2;

/// A GPU range of `values` floats at byte `offset` of `buffer`, at value `at` of its bucket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece<'a> {
    pub buffer: &'a wgpu::Buffer,
    pub offset: u64,
    pub values: usize,
    pub at: usize,
}

/// One bucket of an exchange: what is sent (gathered from the GPU) and where the result goes.
#[derive(Debug, Clone)]
pub(crate) struct Bucket<'a> {
    /// Ranges copied into the send staging. Values of `0..send_len` no piece covers are zero.
    pub send: Vec<Piece<'a>>,
    /// Values sent.
    pub send_len: usize,
    /// Ranges the result is copied to.
    pub recv: Vec<Piece<'a>>,
    /// Values received.
    pub recv_len: usize,
}

impl Bucket<'_> {
    fn covers_send(&self) -> bool {
        self.send.iter().map(|p| p.values).sum::<usize>() == self.send_len
    }
}

/// Time spent, split by where it goes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ExchangeTime {
    /// Inside the collective.
    pub collective: f64,
    /// The whole exchange (waits for copies, the collective, host copies, submits).
    pub total: f64,
}

/// The staging of an exchange, `(readback, upload)` per slot, and the maps on it. Dropping
/// it unmaps what is mapped (or aborts pending maps), so the pool never lends a mapped buffer,
/// whatever error ends the exchange.
struct Slots<'s> {
    backend: &'s WgpuBackend,
    staging: &'s [(ManagedBuffer<WgpuBackend>, ManagedBuffer<WgpuBackend>)],
    /// Maps requested on each slot and not yet granted.
    requested: Vec<Option<(MapRequest, MapRequest)>>,
    /// Whether each slot is mapped or has maps pending.
    mapped: Vec<bool>,
}

impl Slots<'_> {
    /// Records the copies of `bucket` into slot `i`'s readback buffer, submits them, and asks
    /// for both of the slot's buffers to be mapped once the GPU is done with them.
    fn send(&mut self, i: usize, bucket: &Bucket<'_>) -> Result<()> {
        let (down, up) = (self.staging[i].0.raw(), self.staging[i].1.raw());
        self.backend.encode(|encoder| {
            if !bucket.covers_send() {
                encoder.clear_buffer(down, 0, Some(bytes(bucket.send_len)));
            }
            for p in &bucket.send {
                encoder.copy_buffer_to_buffer(
                    p.buffer,
                    p.offset,
                    down,
                    bytes(p.at),
                    bytes(p.values),
                );
            }
        })?;
        self.backend.flush()?;
        let read =
            self.backend
                .request_map(down, bytes(bucket.send_len.max(1)), wgpu::MapMode::Read);
        let write =
            self.backend
                .request_map(up, bytes(bucket.recv_len.max(1)), wgpu::MapMode::Write);
        self.requested[i] = Some((read, write));
        self.mapped[i] = true;
        Ok(())
    }

    /// Waits for slot `i`'s maps, runs `op` on the sent values, writes its result into the
    /// upload buffer, unmaps, and records the copies of the result to the bucket's ranges.
    /// Returns the seconds `op` took.
    fn receive(
        &mut self,
        i: usize,
        bucket: &Bucket<'_>,
        host: &mut [f32],
        op: impl FnOnce(&[f32], &mut [f32]) -> Result<()>,
    ) -> Result<f64> {
        let (read, write) = self.requested[i].take().ok_or_else(|| Error::Collective {
            op: "exchange",
            reason: "a bucket's staging was not mapped (internal ordering error)".into(),
        })?;
        self.backend.wait_map(read)?;
        self.backend.wait_map(write)?;
        let (down, up) = (self.staging[i].0.raw(), self.staging[i].1.raw());
        let seconds = {
            let sent_bytes = down
                .slice(..bytes(bucket.send_len))
                .get_mapped_range()
                .map_err(|e| Error::Map(e.to_string()))?;
            let sent: &[f32] = bytemuck::try_cast_slice(&sent_bytes)
                .map_err(|e| Error::Map(format!("staging view is not f32-aligned: {e}")))?;
            let received = &mut host[..bucket.recv_len];
            let started = Instant::now();
            op(sent, received)?;
            let seconds = started.elapsed().as_secs_f64();
            up.slice(..bytes(bucket.recv_len))
                .get_mapped_range_mut()
                .map_err(|e| Error::Map(e.to_string()))?
                .copy_from_slice(bytemuck::cast_slice(received));
            seconds
        };
        self.unmap(i);
        self.backend.encode(|encoder| {
            for p in &bucket.recv {
                encoder.copy_buffer_to_buffer(up, bytes(p.at), p.buffer, p.offset, bytes(p.values));
            }
        })?;
        Ok(seconds)
    }

    fn unmap(&mut self, i: usize) {
        if std::mem::take(&mut self.mapped[i]) {
            // Unmapping a buffer whose map is still pending aborts the map.
            self.requested[i] = None;
            self.staging[i].0.raw().unmap();
            self.staging[i].1.raw().unmap();
        }
    }
}

impl Drop for Slots<'_> {
    fn drop(&mut self) {
        for i in 0..self.mapped.len() {
            self.unmap(i);
        }
    }
}

/// Runs `op(collective, sent, received)` over every bucket, in order, moving the values as the
/// module docs say; `after(k)` runs once bucket `k`'s result copies are recorded (to record GPU
/// work that reads them). Staging is taken from `reserved` when big enough, else from the
/// pool, and put back into `reserved` at the end.
pub(crate) fn exchange(
    ctx: &Context,
    collective: &dyn Collective,
    buckets: &[Bucket<'_>],
    host: &mut Vec<f32>,
    reserved: &mut Vec<ManagedBuffer<WgpuBackend>>,
    mut op: impl FnMut(&dyn Collective, &[f32], &mut [f32]) -> Result<()>,
    mut after: impl FnMut(usize) -> Result<()>,
) -> Result<ExchangeTime> {
    let started = Instant::now();
    let mut time = ExchangeTime::default();
    let Some(send_max) = buckets.iter().map(|b| b.send_len).max() else {
        return Ok(time);
    };
    let recv_max = buckets.iter().map(|b| b.recv_len).max().unwrap_or(0);
    let depth = DEPTH.min(buckets.len());
    let mut staging = Vec::with_capacity(depth);
    for _ in 0..depth {
        staging.push((
            take_reserved(ctx, reserved, BufferUsage::Readback, send_max)?,
            take_reserved(ctx, reserved, BufferUsage::Upload, recv_max)?,
        ));
    }
    host.resize(recv_max, 0.0);
    let mut slots = Slots {
        backend: ctx.backend(),
        staging: &staging,
        requested: (0..depth).map(|_| None).collect(),
        mapped: vec![false; depth],
    };
    for (k, bucket) in buckets.iter().enumerate().take(depth) {
        slots.send(k, bucket)?;
    }
    for (k, bucket) in buckets.iter().enumerate() {
        time.collective += slots.receive(k % depth, bucket, host, |sent, received| {
            op(collective, sent, received)
        })?;
        after(k)?;
        match buckets.get(k + depth) {
            Some(next) => slots.send(k % depth, next)?,
            None => {
                ctx.backend().flush()?;
            }
        }
    }
    drop(slots);
    reserved.extend(staging.into_iter().flat_map(|(down, up)| [down, up]));
    time.total = started.elapsed().as_secs_f64();
    Ok(time)
}

/// A buffer of `usage` for at least `values` floats, tag [`super::COMM`]: one of `reserved`
/// when one fits, else from the pool.
pub(crate) fn take_reserved(
    ctx: &Context,
    reserved: &mut Vec<ManagedBuffer<WgpuBackend>>,
    usage: BufferUsage,
    values: usize,
) -> Result<ManagedBuffer<WgpuBackend>> {
    let size = bytes(values.max(1));
    match reserved
        .iter()
        .position(|b| b.usage() == usage && b.size() >= size)
    {
        Some(i) => Ok(reserved.swap_remove(i)),
        None => acquire(ctx, usage, values),
    }
}

/// A new buffer of `usage` for at least `values` floats from the pool, tag [`super::COMM`].
pub(crate) fn acquire(
    ctx: &Context,
    usage: BufferUsage,
    values: usize,
) -> Result<ManagedBuffer<WgpuBackend>> {
    ctx.memory()
        .acquire(bytes(values.max(1)), usage, super::COMM)
}

fn bytes(values: usize) -> u64 {
    (values * 4) as u64
}
