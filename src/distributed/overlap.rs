//! The gradient all-reduce, overlapped with the backward pass (as PyTorch DDP's reducer does).
//!
//! A bucket is a range of the flat gradient vector (the parameters in model order). The
//! backward pass runs layers from the last, so once layer `i`'s backward is recorded, every
//! gradient from layer `i`'s first parameter to the end is final, and so is every bucket that
//! starts there or later. [`DataParallel::backward_done`] (the trainer calls it from the
//! checkpointer's per-layer hook, during the *last* micro-batch only: the earlier ones still
//! add to every gradient) then does two things, in this order:
//! 1. it reduces every bucket it had sent at an earlier hook: their copies were submitted
//!    before the layer's backward, so the host waits only for them while the GPU computes
//!    the layer (this is the overlap);
//! 2. it sends the buckets that became final into the free staging slots: their GPU copies
//!    are queued behind the layer's backward, and their maps are granted by the next hook.
//!
//! [`DataParallel::finish_exchange`] (after the backward) sends and reduces what is left: the
//! time the step waits for. Buckets always go from the last to the first, one collective each,
//! whatever the timing, so every rank calls the same collectives in the same order, and the
//! sums are those of an exchange after the backward, bit for bit (same buckets, same calls).
//!
//! A rank that fails midway (its backward, its GPU) must still take part in every collective
//! of the step, or the others would wait forever: the rest of its buckets are "reduced" from
//! zeros on the host, without the GPU, and the failure is then agreed on as before.
//!
//! Time spent in the hooks is counted as hidden (the GPU had the layer's backward queued), time
//! in `finish_exchange` as exposed. Hidden is an upper bound: if the GPU finishes the layer
//! before the host is done with the hook, the rest of the hook is not hidden.

use super::data_parallel::DataParallel;
use super::flat::FlatLayout;
use super::pipeline::{Bucket, DEPTH, Piece, Slots};
use crate::backend::BufferUsage;
use crate::error::{Error, Result};
use crate::tensor::Context;
use std::ops::Range;
use std::time::Instant;

/// One step's exchange of the gradients, open across the backward pass.
pub(crate) struct Overlap {
    grads: Vec<wgpu::Buffer>,
    layout: FlatLayout,
    /// Flat index of each layer's first parameter value.
    layer_starts: Vec<usize>,
    /// Bucket ranges of the flat vector, ascending; exchanged from the last.
    buckets: Vec<Range<usize>>,
    /// Buckets final, counted from the last.
    ready: usize,
    /// Buckets sent to a slot, counted from the last (the `j`-th goes to slot `j % depth`).
    sent: usize,
    /// Buckets whose collective ran, counted from the last.
    reduced: usize,
    /// Buckets sent before the latest hook's backward was submitted.
    sent_earlier: usize,
    /// `None` once the GPU side has failed (the rest is reduced from zeros).
    slots: Option<Slots>,
}

impl Overlap {
    /// The `j`-th bucket sent (from the last), as copy pieces of the gradient buffers.
    fn bucket(&self, j: usize) -> Bucket<'_> {
        let range = self.buckets[self.buckets.len() - 1 - j].clone();
        let pieces: Vec<Piece<'_>> = self
            .layout
            .segments(range.clone())
            .into_iter()
            .map(|s| Piece {
                buffer: &self.grads[s.tensor],
                offset: (s.offset * 4) as u64,
                values: s.len,
                at: s.at,
            })
            .collect();
        Bucket {
            send: pieces.clone(),
            send_len: range.len(),
            recv: pieces,
            recv_len: range.len(),
        }
    }

    /// Whether any bucket of this step has left the GPU's gradients (then the step cannot
    /// be retried: the other ranks have its sums).
    pub fn started(&self) -> bool {
        self.sent > 0 || self.reduced > 0
    }
}

impl DataParallel {
    /// Opens this step's gradient exchange over `grads` (each parameter's gradient buffer and
    /// length, in model order); `layer_values[i]` is the number of parameter values of layer
    /// `i`. Takes the staging now; on failure the exchange stays open in its host-only form,
    /// so that [`Self::finish_exchange`] still takes part in every collective.
    pub fn begin_exchange(
        &mut self,
        ctx: &Context,
        grads: Vec<(wgpu::Buffer, usize)>,
        layer_values: &[usize],
    ) -> Result<()> {
        self.reduced_this_step = false;
        let layout = FlatLayout::new(grads.iter().map(|g| g.1));
        let total = layout.total();
        let bucket = self.bucket_elements().min(total).max(1);
        let buckets: Vec<Range<usize>> = (0..total)
            .step_by(bucket)
            .map(|s| s..(s + bucket).min(total))
            .collect();
        let mut layer_starts = Vec::with_capacity(layer_values.len());
        let mut at = 0;
        for v in layer_values {
            layer_starts.push(at);
            at += v;
        }
        let f16 = self.compression.is_f16();
        let depth = DEPTH.min(buckets.len());
        let prepared = if at != total {
            Err(Error::invalid(
                "exchange layers",
                format!("the layers hold {at} parameter values but the gradients {total}"),
            ))
        } else if self.compression == super::GradCompression::F16ErrorFeedback {
            self.prepare_residuals(ctx, &buckets)
        } else {
            Ok(())
        };
        let slots =
            prepared.and_then(|()| Slots::new(ctx, &mut self.reserved, depth, bucket, bucket, f16));
        let (slots, result) = match slots {
            Ok(s) => (Some(s), Ok(())),
            Err(e) => (None, Err(e)),
        };
        self.exchange_open = Some(Overlap {
            grads: grads.into_iter().map(|g| g.0).collect(),
            layout,
            layer_starts,
            buckets,
            ready: 0,
            sent: 0,
            reduced: 0,
            sent_earlier: 0,
            slots,
        });
        result
    }

    /// Whether this step's exchange has sent gradients already: then the step cannot be
    /// retried (the other ranks hold its sums).
    pub fn exchange_started(&self) -> bool {
        self.exchange_open.as_ref().is_some_and(Overlap::started)
    }

    /// The hook: layer `layer`'s backward is recorded, its gradients and those of every later
    /// layer are final. Reduces what was sent earlier and sends what became final (see the
    /// module docs). No-op without an open exchange.
    pub fn backward_done(&mut self, ctx: &Context, layer: usize) -> Result<()> {
        let Some(open) = self.exchange_open.as_mut() else {
            return Ok(());
        };
        if open.slots.is_none() {
            return Ok(());
        }
        let started = Instant::now();
        let from = open.layer_starts.get(layer).copied().unwrap_or(0);
        let n = open.buckets.len();
        let ready = open.buckets.iter().filter(|b| b.start >= from).count();
        open.ready = open.ready.max(ready).min(n);
        let result = self.advance(ctx, false);
        self.hidden_seconds += started.elapsed().as_secs_f64();
        result
    }

    /// Sends and reduces every bucket not yet reduced, then closes the exchange (no-op
    /// without one). With `ok == false` (this rank's step failed) or after a GPU failure, the
    /// rest is reduced from zeros on the host; the first error is returned once every
    /// collective of the step has run. Returns whether there was an exchange.
    pub fn finish_exchange(&mut self, ctx: &Context, ok: bool) -> Result<bool> {
        let Some(open) = self.exchange_open.as_mut() else {
            return Ok(false);
        };
        let started = Instant::now();
        open.ready = open.buckets.len();
        if !ok {
            open.slots = None;
        }
        let mut result = self.advance(ctx, true);
        let zeros = self.reduce_rest_from_zeros();
        if result.is_ok() {
            result = zeros;
        }
        let open = self.exchange_open.take();
        // The staging goes back to the pool (unmapped), for the next step to take again.
        let gpu_done = open.and_then(|o| o.slots).is_some();
        self.reserved.clear();
        if gpu_done && result.is_ok() {
            ctx.backend().flush()?;
            self.reduced_this_step = ok;
        }
        self.exposed_seconds += started.elapsed().as_secs_f64();
        result.map(|()| true)
    }

    /// Reduces the buckets sent before this hook, then sends final buckets into free slots;
    /// with `all`, until every bucket is reduced. A GPU error drops the slots (the caller
    /// then reduces the rest from zeros).
    fn advance(&mut self, ctx: &Context, all: bool) -> Result<()> {
        let result = self.advance_gpu(ctx, all);
        if result.is_err() {
            if let Some(o) = self.exchange_open.as_mut() {
                o.slots = None;
            }
        }
        result
    }

    fn advance_gpu(&mut self, ctx: &Context, all: bool) -> Result<()> {
        let Some(mut open) = self.exchange_open.take() else {
            return Ok(());
        };
        let result = (|| {
            let Some(mut slots) = open.slots.take() else {
                return Ok(());
            };
            let r = self.run_buckets(ctx, &mut open, &mut slots, all);
            open.slots = Some(slots);
            r
        })();
        self.exchange_open = Some(open);
        result
    }

    fn run_buckets(
        &mut self,
        ctx: &Context,
        open: &mut Overlap,
        slots: &mut Slots,
        all: bool,
    ) -> Result<()> {
        let depth = slots.depth();
        // The layer's backward goes to the GPU before the host waits for anything.
        ctx.backend().flush()?;
        let n = open.buckets.len();
        loop {
            let target = if all { open.sent } else { open.sent_earlier };
            while open.reduced < target {
                self.receive_one(ctx, open, slots)?;
            }
            while open.sent < open.ready && open.sent - open.reduced < depth {
                let j = open.sent;
                let residual = self.residuals.get(n - 1 - j).map(|r| r.raw());
                slots.send(ctx, j % depth, &open.bucket(j), residual)?;
                open.sent += 1;
            }
            open.sent_earlier = open.sent;
            if !all || open.reduced == n {
                return Ok(());
            }
        }
    }

    /// Reduces the oldest bucket in flight. Its collective counts as run even if what
    /// follows it fails.
    fn receive_one(&mut self, ctx: &Context, open: &mut Overlap, slots: &mut Slots) -> Result<()> {
        let j = open.reduced;
        let bucket = open.bucket(j);
        let send_len = bucket.send_len as u64;
        let slot = j % slots.depth();
        let collective = &*self.collective;
        let mut ran = false;
        let result = if self.compression.is_f16() {
            slots.receive_f16(ctx, slot, &bucket, &mut self.host16, |s, r| {
                ran = true;
                collective.all_reduce_f16(s, r)
            })
        } else {
            slots.receive(ctx, slot, &bucket, &mut self.host, |s, r| {
                ran = true;
                collective.all_reduce_into(s, r)
            })
        };
        if ran {
            open.reduced += 1;
            self.comm_bytes += send_len * self.compression.bytes_per_value();
        }
        self.collective_seconds += result?;
        Ok(())
    }

    /// The collectives of the buckets not yet reduced, on zeros, host only.
    fn reduce_rest_from_zeros(&mut self) -> Result<()> {
        let Some(open) = self.exchange_open.as_mut() else {
            return Ok(());
        };
        let n = open.buckets.len();
        let mut first_error = Ok(());
        while open.reduced < n {
            let len = open.buckets[n - 1 - open.reduced].len();
            let r = if self.compression.is_f16() {
                let zeros = vec![0u16; len];
                self.host16.resize(len.max(self.host16.len()), 0);
                self.collective
                    .all_reduce_f16(&zeros, &mut self.host16[..len])
            } else {
                let zeros = vec![0f32; len];
                self.host.resize(len.max(self.host.len()), 0.0);
                self.collective
                    .all_reduce_into(&zeros, &mut self.host[..len])
            };
            open.reduced += 1;
            if let Err(e) = r {
                // The transport itself failed: the rest would fail too.
                open.reduced = n;
                if first_error.is_ok() {
                    first_error = Err(e);
                }
            }
        }
        first_error
    }

    /// One zeroed `f32` residual per bucket for error feedback, kept while the buckets stay
    /// the same (tag [`super::COMM_STATE`]).
    fn prepare_residuals(&mut self, ctx: &Context, buckets: &[Range<usize>]) -> Result<()> {
        let fits = self.residuals.len() == buckets.len()
            && self
                .residuals
                .iter()
                .zip(buckets)
                .all(|(r, b)| r.size() >= (b.len() * 4) as u64);
        if fits {
            return Ok(());
        }
        self.residuals.clear();
        for b in buckets {
            let r = ctx.memory().acquire(
                (b.len().max(1) * 4) as u64,
                BufferUsage::Storage,
                super::COMM_STATE,
            )?;
            crate::compute::fill(ctx.gpu(), r.raw(), b.len(), 0.0)?;
            self.residuals.push(r);
        }
        Ok(())
    }
}
