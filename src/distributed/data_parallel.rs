//! [`DataParallel`]: moves parameters and gradients between the GPU and a [`Collective`], in
//! buckets, through a packing buffer from the pool and one reusable host staging vector.
//!
//! A bucket of gradients is packed on the GPU (one copy per parameter segment into a pooled
//! buffer tagged [`super::COMM`]), read to the host in one transfer, summed over the ranks, and
//! written back into each gradient. Bucketing bounds the extra memory (one bucket on the GPU,
//! one or two on the host) whatever the model size, and keeps each collective large enough
//! to run near the link's bandwidth.

use super::flat::{self, FlatLayout};
use super::{Collective, DEFAULT_BUCKET_BYTES};
use crate::WgpuBackend;
use crate::error::Result;
use crate::memory::ManagedBuffer;
use crate::nn::Parameter;
use crate::tensor::{Context, Tensor};
use std::time::Instant;

/// The data-parallel side of a trainer: a collective, bucket size, staging and timing.
pub struct DataParallel {
    pub(crate) collective: Box<dyn Collective>,
    bucket_elements: usize,
    /// Host staging (send side), at most one bucket.
    pub(crate) host: Vec<f32>,
    /// Host staging (receive side of reduce-scatter and all-gather), at most one bucket.
    pub(crate) host_recv: Vec<f32>,
    comm_seconds: f64,
    wait_seconds: f64,
    comm_bytes: u64,
    /// Working buffers taken from the pool before the step's agreement (see [`Self::reserve`]).
    reserved: Vec<ManagedBuffer<WgpuBackend>>,
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("rank", &self.collective.rank())
            .field("world_size", &self.collective.world_size())
            .field("bucket_elements", &self.bucket_elements)
            .finish_non_exhaustive()
    }
}

impl DataParallel {
    /// Over `collective`, with buckets of `bucket_bytes` (at least one `f32`; 0 means
    /// [`DEFAULT_BUCKET_BYTES`]).
    pub fn new(collective: Box<dyn Collective>, bucket_bytes: u64) -> Self {
        let bytes = if bucket_bytes == 0 {
            DEFAULT_BUCKET_BYTES
        } else {
            bucket_bytes
        };
        Self {
            collective,
            bucket_elements: ((bytes / 4) as usize).max(1),
            host: Vec::new(),
            host_recv: Vec::new(),
            comm_seconds: 0.0,
            wait_seconds: 0.0,
            reserved: Vec::new(),
            comm_bytes: 0,
        }
    }

    /// The collective.
    pub fn collective(&self) -> &dyn Collective {
        &*self.collective
    }

    /// This rank.
    pub fn rank(&self) -> usize {
        self.collective.rank()
    }

    /// Ranks in the world.
    pub fn world_size(&self) -> usize {
        self.collective.world_size()
    }

    /// Values per bucket.
    pub fn bucket_elements(&self) -> usize {
        self.bucket_elements
    }

    /// Seconds spent exchanging parameters and gradients: packing, GPU-host copies and the
    /// bucket collectives.
    pub fn comm_seconds(&self) -> f64 {
        self.comm_seconds
    }

    /// Seconds in the trainer's per-step agreement (one all-reduce of four values): almost
    /// all of it is waiting for the slowest rank to finish its forward and backward.
    pub fn wait_seconds(&self) -> f64 {
        self.wait_seconds
    }

    /// The per-step agreement: sums `values` over the ranks, timed as waiting.
    pub(crate) fn agree(&mut self, values: &mut [f32]) -> Result<()> {
        let started = Instant::now();
        let r = self.collective.all_reduce(values);
        self.wait_seconds += started.elapsed().as_secs_f64();
        r
    }

    /// Bytes handed to collectives so far (this rank's send side).
    pub fn comm_bytes(&self) -> u64 {
        self.comm_bytes
    }

    /// Bytes of host staging held (the vectors are kept between steps).
    pub fn host_staging_bytes(&self) -> u64 {
        ((self.host.capacity() + self.host_recv.capacity()) * 4) as u64
    }

    pub(crate) fn timed<R>(
        &mut self,
        bytes: usize,
        f: impl FnOnce(&mut Self) -> Result<R>,
    ) -> Result<R> {
        let started = Instant::now();
        let r = f(self);
        self.comm_seconds += started.elapsed().as_secs_f64();
        self.comm_bytes += bytes as u64 * 4;
        r
    }

    /// Takes from the pool, now, the working buffers the next exchange of `total` values will
    /// use (the packing buffer; with `zero1` also ZeRO-1's chunk buffers). The trainer calls it
    /// before the step's agreement, so that a rank short of memory says so there, and every
    /// rank stops, instead of failing alone inside a collective the others are waiting in.
    pub fn reserve(&mut self, ctx: &Context, total: usize, zero1: bool) -> Result<()> {
        self.reserved.clear();
        if total == 0 {
            return Ok(());
        }
        let sizes = if zero1 {
            let c = super::zero::chunk_len(self.bucket_elements, self.world_size(), total);
            vec![self.world_size() * c, c, c]
        } else {
            vec![self.bucket_elements.min(total)]
        };
        for elements in sizes {
            match flat::packing_buffer(ctx, elements) {
                Ok(b) => self.reserved.push(b),
                Err(e) => {
                    self.reserved.clear();
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// A reserved working buffer of at least `elements` values, or a new one from the pool.
    pub(crate) fn working_buffer(
        &mut self,
        ctx: &Context,
        elements: usize,
    ) -> Result<ManagedBuffer<WgpuBackend>> {
        let bytes = (elements.max(1) * 4) as u64;
        match self.reserved.iter().position(|b| b.size() >= bytes) {
            Some(i) => Ok(self.reserved.swap_remove(i)),
            None => flat::packing_buffer(ctx, elements),
        }
    }

    /// Copies rank 0's parameter values to every rank.
    pub fn broadcast_parameters(&mut self, ctx: &Context, params: &[&mut Parameter]) -> Result<()> {
        let values: Vec<&Tensor> = params.iter().map(|p| &p.value).collect();
        self.for_each_bucket(ctx, &values, |c, host| c.broadcast(host, 0))
    }

    /// Sums every parameter's gradient over the ranks, in place. The trainer scales each
    /// rank's gradient by its share of the global batch, so the sum is the batch mean.
    pub fn all_reduce_gradients(&mut self, ctx: &Context, params: &[&mut Parameter]) -> Result<()> {
        let grads: Vec<&Tensor> = params.iter().map(|p| &p.grad).collect();
        self.for_each_bucket(ctx, &grads, |c, host| c.all_reduce(host))
    }

    /// Packs each bucket of `tensors`, reads it, applies `op` on the host and writes it back.
    fn for_each_bucket(
        &mut self,
        ctx: &Context,
        tensors: &[&Tensor],
        op: impl Fn(&dyn Collective, &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        let layout = FlatLayout::new(tensors.iter().map(|t| t.len()));
        let total = layout.total();
        if total == 0 {
            return Ok(());
        }
        let bucket = self.bucket_elements.min(total);
        let pack = self.working_buffer(ctx, bucket)?;
        self.host.resize(bucket, 0.0);
        let mut start = 0;
        while start < total {
            let end = (start + bucket).min(total);
            let n = end - start;
            flat::pack(ctx, tensors, &layout, start..end, pack.raw(), 0)?;
            self.timed(n, |dp| {
                flat::read(ctx, pack.raw(), &mut dp.host[..n])?;
                op(&*dp.collective, &mut dp.host[..n])?;
                flat::unpack_host(ctx, tensors, &layout, start..end, &dp.host[..n])
            })?;
            start = end;
        }
        Ok(())
    }
}
