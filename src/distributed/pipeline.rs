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
use crate::compute;
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
/// whatever error ends the exchange. It owns its buffers, so an exchange can stay open across
/// the backward pass (`distributed/overlap.rs`).
pub(crate) struct Slots {
    staging: Vec<(ManagedBuffer<WgpuBackend>, ManagedBuffer<WgpuBackend>)>,
    /// Maps requested on each slot and not yet granted.
    requested: Vec<Option<(MapRequest, MapRequest)>>,
    /// Whether each slot is mapped or has maps pending.
    mapped: Vec<bool>,
    /// The GPU side of an f16 wire (staging then holds half values).
    narrowing: Option<Narrowing>,
}

impl Slots {
    /// `depth` slots for buckets of at most `send_max` values sent and `recv_max` received,
    /// taken from `reserved` where they fit, else from the pool. With `f16`, values travel as
    /// IEEE half values (half the staging, packed and unpacked on the GPU).
    pub fn new(
        ctx: &Context,
        reserved: &mut Vec<ManagedBuffer<WgpuBackend>>,
        depth: usize,
        send_max: usize,
        recv_max: usize,
        f16: bool,
    ) -> Result<Self> {
        let wire = |values: usize| {
            if f16 {
                compute::f16_words(values)
            } else {
                values
            }
        };
        let mut staging = Vec::with_capacity(depth);
        for _ in 0..depth {
            staging.push((
                take_reserved(ctx, reserved, BufferUsage::Readback, wire(send_max))?,
                take_reserved(ctx, reserved, BufferUsage::Upload, wire(recv_max))?,
            ));
        }
        let narrowing = match f16 {
            true => {
                let most = send_max.max(recv_max);
                Some(Narrowing {
                    wide: take_reserved(ctx, reserved, BufferUsage::Storage, most)?,
                    narrow: take_reserved(
                        ctx,
                        reserved,
                        BufferUsage::Storage,
                        compute::f16_words(most),
                    )?,
                })
            }
            false => None,
        };
        Ok(Self {
            requested: (0..depth).map(|_| None).collect(),
            mapped: vec![false; depth],
            staging,
            narrowing,
        })
    }

    /// Slots in flight at most.
    pub fn depth(&self) -> usize {
        self.staging.len()
    }

    /// Bytes `values` take on the wire.
    fn wire_bytes(&self, values: usize) -> u64 {
        match self.narrowing {
            Some(_) => (compute::f16_words(values) * 4) as u64,
            None => bytes(values),
        }
    }

    /// Records the copies of `bucket` into slot `i`'s readback buffer (through the f16 pack,
    /// with `residual` as its error feedback, on an f16 wire), submits them with everything
    /// recorded before, and asks for both of the slot's buffers to be mapped once the GPU is
    /// done with them.
    pub fn send(
        &mut self,
        ctx: &Context,
        i: usize,
        bucket: &Bucket<'_>,
        residual: Option<&wgpu::Buffer>,
    ) -> Result<()> {
        let backend = ctx.backend();
        let (down, up) = (self.staging[i].0.raw(), self.staging[i].1.raw());
        let gather = self.narrowing.as_ref().map_or(down, |n| n.wide.raw());
        backend.encode(|encoder| {
            if !bucket.covers_send() {
                encoder.clear_buffer(gather, 0, Some(bytes(bucket.send_len)));
            }
            for p in &bucket.send {
                encoder.copy_buffer_to_buffer(
                    p.buffer,
                    p.offset,
                    gather,
                    bytes(p.at),
                    bytes(p.values),
                );
            }
        })?;
        if let Some(n) = &self.narrowing {
            let (wide, narrow) = (n.wide.raw(), n.narrow.raw());
            compute::pack_f16(ctx.gpu(), wide, narrow, residual, bucket.send_len)?;
            let len = self.wire_bytes(bucket.send_len);
            backend.encode(|encoder| encoder.copy_buffer_to_buffer(narrow, 0, down, 0, len))?;
        }
        backend.flush()?;
        let read_len = self.wire_bytes(bucket.send_len.max(1));
        let write_len = self.wire_bytes(bucket.recv_len.max(1));
        let read = backend.request_map(down, read_len, wgpu::MapMode::Read);
        let write = backend.request_map(up, write_len, wgpu::MapMode::Write);
        self.requested[i] = Some((read, write));
        self.mapped[i] = true;
        Ok(())
    }

    /// Waits for slot `i`'s maps and returns them. Marks the slot as taken first, so an
    /// error leaves nothing to wait for.
    fn granted(&mut self, ctx: &Context, i: usize) -> Result<()> {
        let (read, write) = self.requested[i].take().ok_or_else(|| Error::Collective {
            op: "exchange",
            reason: "a bucket's staging was not mapped (internal ordering error)".into(),
        })?;
        ctx.backend().wait_map(read)?;
        ctx.backend().wait_map(write)
    }

    /// Waits for slot `i`'s maps, runs `op` on the sent values, writes its result into the
    /// upload buffer, unmaps, and records the copies of the result to the bucket's ranges.
    /// Returns the seconds `op` took. `f32` wire.
    pub fn receive(
        &mut self,
        ctx: &Context,
        i: usize,
        bucket: &Bucket<'_>,
        host: &mut Vec<f32>,
        op: impl FnOnce(&[f32], &mut [f32]) -> Result<()>,
    ) -> Result<f64> {
        self.granted(ctx, i)?;
        if host.len() < bucket.recv_len {
            host.resize(bucket.recv_len, 0.0);
        }
        // Handles (reference-counted), so that the slot can be unmapped while they are used.
        let (down, up) = (
            self.staging[i].0.raw().clone(),
            self.staging[i].1.raw().clone(),
        );
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
        ctx.backend().encode(|encoder| {
            for p in &bucket.recv {
                encoder.copy_buffer_to_buffer(
                    &up,
                    bytes(p.at),
                    p.buffer,
                    p.offset,
                    bytes(p.values),
                );
            }
        })?;
        Ok(seconds)
    }

    /// [`Self::receive`] on an f16 wire: `op` sees half values (bits), and the result is
    /// unpacked on the GPU before its copies to the bucket's ranges.
    pub fn receive_f16(
        &mut self,
        ctx: &Context,
        i: usize,
        bucket: &Bucket<'_>,
        host: &mut Vec<u16>,
        op: impl FnOnce(&[u16], &mut [u16]) -> Result<()>,
    ) -> Result<f64> {
        self.granted(ctx, i)?;
        let n = bucket.recv_len;
        if host.len() < n {
            host.resize(n, 0);
        }
        // Handles (reference-counted), so that the slot can be unmapped while they are used.
        let (down, up) = (
            self.staging[i].0.raw().clone(),
            self.staging[i].1.raw().clone(),
        );
        let seconds = {
            let sent_bytes = down
                .slice(..self.wire_bytes(bucket.send_len))
                .get_mapped_range()
                .map_err(|e| Error::Map(e.to_string()))?;
            let sent: &[u16] = bytemuck::try_cast_slice(&sent_bytes)
                .map_err(|e| Error::Map(format!("staging view is not u16-aligned: {e}")))?;
            let received = &mut host[..n];
            let started = Instant::now();
            op(&sent[..bucket.send_len], received)?;
            let seconds = started.elapsed().as_secs_f64();
            let mut view = up
                .slice(..self.wire_bytes(n))
                .get_mapped_range_mut()
                .map_err(|e| Error::Map(e.to_string()))?;
            // Upload memory is write-only: the values, then the zero high half of an odd count.
            view.slice(..n * 2)
                .copy_from_slice(bytemuck::cast_slice(received));
            view.slice(n * 2..).fill(0);
            seconds
        };
        self.unmap(i);
        let narrowing = self.narrowing.as_ref().ok_or_else(|| Error::Collective {
            op: "exchange",
            reason: "an f16 receive on an f32 exchange (internal error)".into(),
        })?;
        let (wide, narrow) = (narrowing.wide.raw(), narrowing.narrow.raw());
        let len = self.wire_bytes(n);
        ctx.backend()
            .encode(|encoder| encoder.copy_buffer_to_buffer(&up, 0, narrow, 0, len))?;
        compute::unpack_f16(ctx.gpu(), narrow, wide, n)?;
        ctx.backend().encode(|encoder| {
            for p in &bucket.recv {
                encoder.copy_buffer_to_buffer(
                    wide,
                    bytes(p.at),
                    p.buffer,
                    p.offset,
                    bytes(p.values),
                );
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

    /// Unmaps everything and hands the buffers back for the next exchange.
    pub fn into_reserved(mut self, reserved: &mut Vec<ManagedBuffer<WgpuBackend>>) {
        for i in 0..self.mapped.len() {
            self.unmap(i);
        }
        let staging = std::mem::take(&mut self.staging);
        reserved.extend(staging.into_iter().flat_map(|(down, up)| [down, up]));
        if let Some(n) = self.narrowing.take() {
            reserved.extend([n.wide, n.narrow]);
        }
    }
}

impl Drop for Slots {
    fn drop(&mut self) {
        for i in 0..self.mapped.len() {
            self.unmap(i);
        }
    }
}

/// The GPU working buffers of an f16 wire: the bucket gathered in `f32`, and packed.
struct Narrowing {
    wide: ManagedBuffer<WgpuBackend>,
    narrow: ManagedBuffer<WgpuBackend>,
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
    let mut slots = Slots::new(ctx, reserved, depth, send_max, recv_max, false)?;
    for (k, bucket) in buckets.iter().enumerate().take(depth) {
        slots.send(ctx, k, bucket, None)?;
    }
    for (k, bucket) in buckets.iter().enumerate() {
        time.collective += slots.receive(ctx, k % depth, bucket, host, |sent, received| {
            op(collective, sent, received)
        })?;
        after(k)?;
        match buckets.get(k + depth) {
            Some(next) => slots.send(ctx, k % depth, next, None)?,
            None => {
                ctx.backend().flush()?;
            }
        }
    }
    slots.into_reserved(reserved);
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
