//! [`DataParallel`]: moves parameters and gradients between the GPU and a [`Collective`], in
//! buckets.
//!
//! Gradients (and, at the start, parameters) are cut into buckets of the flat parameter
//! vector and exchanged through [`super::pipeline`]: each bucket is copied on the GPU into a
//! mapped staging buffer from the pool, reduced over the ranks straight from that mapping, and
//! copied back through an upload staging buffer, with the next buckets' copies already
//! running. Bucketing bounds the extra memory (two slots of staging, one host vector of one
//! bucket) whatever the model size, and keeps each collective large enough to run near the
//! link's bandwidth.

use super::flat::{self, FlatLayout};
use super::pipeline::{self, Bucket};
use super::{Collective, DEFAULT_BUCKET_BYTES, GradCompression};
use crate::WgpuBackend;
use crate::backend::BufferUsage;
use crate::error::Result;
use crate::memory::ManagedBuffer;
use crate::nn::Parameter;
use crate::tensor::{Context, Tensor};
use std::time::Instant;

/// The data-parallel side of a trainer: a collective, bucket size, staging and timing.
pub struct DataParallel {
    pub(crate) collective: Box<dyn Collective>,
    bucket_elements: usize,
    /// What gradients travel as.
    pub(super) compression: GradCompression,
    /// Host memory the collective writes its result into, at most one bucket.
    pub(super) host: Vec<f32>,
    /// The same for an f16 wire.
    pub(super) host16: Vec<u16>,
    comm_seconds: f64,
    pub(super) collective_seconds: f64,
    wait_seconds: f64,
    /// Exchange time spent while the backward pass had GPU work queued (`overlap.rs`).
    pub(super) hidden_seconds: f64,
    /// Exchange time the step waited for after its backward pass.
    pub(super) exposed_seconds: f64,
    pub(super) comm_bytes: u64,
    /// Working buffers taken from the pool before the step's agreement (see [`Self::reserve`]).
    pub(super) reserved: Vec<ManagedBuffer<WgpuBackend>>,
    /// Error-feedback residuals, one per bucket (f16 with error feedback only).
    pub(super) residuals: Vec<ManagedBuffer<WgpuBackend>>,
    /// This step's gradient exchange, while it is open (see `distributed/overlap.rs`).
    pub(super) exchange_open: Option<super::overlap::Overlap>,
    /// Whether this step's gradients were summed already by an overlapped exchange.
    pub(super) reduced_this_step: bool,
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
            compression: GradCompression::None,
            host: Vec::new(),
            host16: Vec::new(),
            comm_seconds: 0.0,
            collective_seconds: 0.0,
            wait_seconds: 0.0,
            hidden_seconds: 0.0,
            exposed_seconds: 0.0,
            reserved: Vec::new(),
            residuals: Vec::new(),
            exchange_open: None,
            reduced_this_step: false,
            comm_bytes: 0,
        }
    }

    /// With gradients exchanged as `compression` (see [`GradCompression`]).
    pub fn with_compression(mut self, compression: GradCompression) -> Self {
        self.compression = compression;
        self
    }

    /// What gradients travel as.
    pub fn compression(&self) -> GradCompression {
        self.compression
    }

    /// Of [`Self::comm_seconds`], the gradient exchange done while the backward pass still had
    /// GPU work queued (an upper bound; see `distributed/overlap.rs`).
    pub fn hidden_seconds(&self) -> f64 {
        self.hidden_seconds
    }

    /// Of [`Self::comm_seconds`], the gradient exchange the steps waited for after their
    /// backward pass.
    pub fn exposed_seconds(&self) -> f64 {
        self.exposed_seconds
    }

    /// True once (then false) when this step's gradients were summed by an overlapped
    /// exchange, so the update must not sum them again.
    pub(crate) fn take_reduced(&mut self) -> bool {
        std::mem::take(&mut self.reduced_this_step)
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
        self.comm_seconds + self.hidden_seconds + self.exposed_seconds
    }

    /// Of [`Self::comm_seconds`], the seconds inside the collectives themselves (MPI moving
    /// and summing host memory); the rest is GPU-host copies and waiting for them.
    pub fn collective_seconds(&self) -> f64 {
        self.collective_seconds
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
        (self.host.capacity() * 4 + self.host16.capacity() * 2) as u64
    }

    /// Takes from the pool, now, the working buffers the next exchange of `total` values will
    /// use (the staging of the pipeline; with `zero1` also ZeRO-1's chunk buffers).
    /// The trainer calls it before the step's agreement, so that a rank short of memory says
    /// so there, and every rank stops, instead of failing alone inside a collective the others
    /// are waiting in.
    pub fn reserve(&mut self, ctx: &Context, total: usize, zero1: bool) -> Result<()> {
        self.reserved.clear();
        if total == 0 {
            return Ok(());
        }
        let sizes = if zero1 {
            // The chunk gradient and parameter, and staging big enough for both phases.
            let world = self.world_size();
            let c = super::zero::chunk_len(self.bucket_elements, world, total);
            let chunks = super::block_len(total, world).div_ceil(c);
            let slots = pipeline::DEPTH.min(chunks);
            let mut sizes = vec![(BufferUsage::Storage, c), (BufferUsage::Storage, c)];
            for _ in 0..slots {
                sizes.push((BufferUsage::Readback, world * c));
                sizes.push((BufferUsage::Upload, world * c));
            }
            sizes
        } else {
            let bucket = self.bucket_elements.min(total);
            let slots = pipeline::DEPTH.min(total.div_ceil(bucket));
            let mut sizes: Vec<_> = [BufferUsage::Readback, BufferUsage::Upload]
                .into_iter()
                .cycle()
                .take(2 * slots)
                .map(|usage| (usage, bucket))
                .collect();
            if self.compression.is_f16() {
                // The f32 gather and the packed bucket (staging of f32 size fits f16 too).
                sizes.push((BufferUsage::Storage, bucket));
                sizes.push((BufferUsage::Storage, crate::compute::f16_words(bucket)));
            }
            sizes
        };
        for (usage, elements) in sizes {
            match pipeline::acquire(ctx, usage, elements) {
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
        pipeline::take_reserved(ctx, &mut self.reserved, BufferUsage::Storage, elements)
    }

    /// Copies rank 0's parameter values to every rank.
    pub fn broadcast_parameters(&mut self, ctx: &Context, params: &[&mut Parameter]) -> Result<()> {
        let values: Vec<&Tensor> = params.iter().map(|p| &p.value).collect();
        self.for_each_bucket(ctx, &values, |c, sent, received| {
            received.copy_from_slice(sent);
            c.broadcast(received, 0)
        })
    }

    /// Sums every parameter's gradient over the ranks, in place (as [`Self::compression`]
    /// says). The trainer scales each rank's gradient by its share of the global batch, so
    /// the sum is the batch mean. The same exchange as the overlapped one (`overlap.rs`), run
    /// after the backward pass: buckets from the last.
    pub fn all_reduce_gradients(&mut self, ctx: &Context, params: &[&mut Parameter]) -> Result<()> {
        let grads = params
            .iter()
            .map(|p| (p.grad.raw().clone(), p.grad.len()))
            .collect::<Vec<_>>();
        let total = grads.iter().map(|g| g.1).sum::<usize>();
        let begun = self.begin_exchange(ctx, grads, &[total]);
        let finished = self.finish_exchange(ctx, begun.is_ok());
        self.reduced_this_step = false;
        self.reserved.clear();
        begun.and(finished).map(|_| ())
    }

    /// Exchanges `tensors`, bucket by bucket of their flat vector, each bucket's result going
    /// back where it came from (see [`super::pipeline`]).
    fn for_each_bucket(
        &mut self,
        ctx: &Context,
        tensors: &[&Tensor],
        op: impl FnMut(&dyn Collective, &[f32], &mut [f32]) -> Result<()>,
    ) -> Result<()> {
        let layout = FlatLayout::new(tensors.iter().map(|t| t.len()));
        let total = layout.total();
        let bucket = self.bucket_elements.min(total).max(1);
        let buckets: Vec<Bucket<'_>> = (0..total)
            .step_by(bucket)
            .map(|start| {
                let end = (start + bucket).min(total);
                let pieces = flat::pieces(tensors, &layout, start..end, 0);
                Bucket {
                    send: pieces.clone(),
                    send_len: end - start,
                    recv: pieces,
                    recv_len: end - start,
                }
            })
            .collect();
        self.exchange(ctx, &buckets, op, |_| Ok(()))?;
        self.reserved.clear();
        Ok(())
    }

    /// Runs [`pipeline::exchange`] over this rank's collective, host vector and reserved
    /// staging (which stays reserved for the next exchange of the step), counting its time.
    pub(crate) fn exchange(
        &mut self,
        ctx: &Context,
        buckets: &[Bucket<'_>],
        op: impl FnMut(&dyn Collective, &[f32], &mut [f32]) -> Result<()>,
        after: impl FnMut(usize) -> Result<()>,
    ) -> Result<()> {
        let result = pipeline::exchange(
            ctx,
            &*self.collective,
            buckets,
            &mut self.host,
            &mut self.reserved,
            op,
            after,
        );
        if result.is_err() {
            self.reserved.clear();
        }
        let time = result?;
        self.comm_seconds += time.total;
        self.collective_seconds += time.collective;
        self.comm_bytes += buckets.iter().map(|b| b.send_len as u64 * 4).sum::<u64>();
        Ok(())
    }

    /// Lets the working buffers reserved for this step go back to the pool.
    pub(crate) fn release_reserved(&mut self) {
        self.reserved.clear();
    }
}
