//! [`ShardedAdam`]: ZeRO stage 1, Adam whose moments are split over the ranks.
//!
//! The parameters are seen as one flat vector of `N` values, padded to `world · b` with
//! `b = ⌈N / world⌉` (see [`super::Shards::blocks`]); rank `r` keeps the Adam moments of its
//! block `r·b .. (r+1)·b` only, so optimizer memory per rank is `2 · 4 · b` bytes instead of
//! `2 · 4 · N`. The block is processed in chunks of `c` values (the bucket size over the
//! world size), each with moment buffers of its own, in two pipelined exchanges
//! ([`super::pipeline`]):
//! 1. **reduce-scatter** the gradients, chunk by chunk: rank `r` receives the sum over ranks of
//!    chunk `k` of its block, copied into a chunk gradient buffer; then, on the GPU, the same
//!    chunk of the parameters is copied into a chunk parameter buffer, updated by the ordinary
//!    Adam kernel with the chunk's moments (Adam is elementwise, so a chunk that spans
//!    parameters is updated exactly as the parameters would be one by one), and copied back.
//!    The next chunk's gradients are on their way to the host meanwhile;
//! 2. **all-gather** every rank's updated block, chunk by chunk, into the parameters.
//!
//! A rank's block is written only by its own update before the all-gather, and read only
//! after it, so the two exchanges never race. The GPU working buffers (chunk gradient and
//! parameter, tag [`super::COMM`]) are `2 · c` values and the staging `2 · 2 · world · c`,
//! taken from the pool for the step only, whatever the model size. Padding values have zero
//! gradient and zero moments, so their update is zero and they are never written back. With
//! one rank the result equals [`crate::optim::Adam`]'s bit for bit (same kernel, same values).

use super::block_len;
use super::data_parallel::DataParallel;
use super::flat::{self, FlatLayout};
use super::pipeline::{Bucket, Piece};
use crate::compute::{self, AdamParams};
use crate::error::{Error, Result};
use crate::nn::Parameter;
use crate::tensor::{Context, Tensor, tags};
use std::sync::Arc;

struct Shard {
    layout: FlatLayout,
    /// Values per rank (`⌈N / world⌉`).
    block: usize,
    /// Values per chunk.
    chunk: usize,
    /// Adam's moments `(m, v)` of each chunk of this rank's block.
    moments: Vec<(Tensor, Tensor)>,
}

/// Values per chunk of a rank's block: a bucket's share per rank, at most the block.
pub(crate) fn chunk_len(bucket_elements: usize, world: usize, total: usize) -> usize {
    (bucket_elements / world.max(1)).clamp(1, block_len(total, world).max(1))
}

/// Adam with ZeRO-1 sharded moments. See the module docs.
pub struct ShardedAdam {
    hp: AdamParams,
    step: u32,
    shard: Option<Shard>,
}

impl std::fmt::Debug for ShardedAdam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedAdam")
            .field("step", &self.step)
            .field("block", &self.shard.as_ref().map(|s| s.block))
            .finish_non_exhaustive()
    }
}

impl ShardedAdam {
    /// Sharded Adam with these hyperparameters (take them from the `Adam` being replaced).
    pub fn new(hp: AdamParams) -> Self {
        Self {
            hp,
            step: 0,
            shard: None,
        }
    }

    /// Steps taken.
    pub fn steps(&self) -> u32 {
        self.step
    }

    /// Bytes of Adam moments on this rank (`tags::OPTIMIZER`).
    pub fn state_bytes(&self) -> u64 {
        self.shard.as_ref().map_or(0, |s| {
            s.moments
                .iter()
                .map(|(m, v)| m.buffer().size() + v.buffer().size())
                .sum()
        })
    }

    /// The moments this rank will hold for parameters of `param_bytes` bytes over `world` ranks.
    pub fn planned_state_bytes(param_bytes: u64, world: usize) -> u64 {
        2 * 4 * block_len((param_bytes / 4) as usize, world) as u64
    }

    /// One update of every parameter from the (unreduced, rank-local) gradients; zeroes them.
    pub fn step(
        &mut self,
        dp: &mut DataParallel,
        ctx: &Arc<Context>,
        params: Vec<&mut Parameter>,
    ) -> Result<()> {
        let world = dp.world_size();
        let rank = dp.rank();
        let layout = FlatLayout::new(params.iter().map(|p| p.value.len()));
        if self.shard.as_ref().is_some_and(|s| s.layout != layout) {
            return Err(Error::invalid(
                "ShardedAdam parameters",
                "the parameters changed since the first step; pass the same list every step",
            ));
        }
        let total = layout.total();
        if total == 0 {
            return Ok(());
        }
        if self.shard.is_none() {
            let block = block_len(total, world);
            let chunk = chunk_len(dp.bucket_elements(), world, total);
            let mut moments = Vec::new();
            for k in (0..block).step_by(chunk) {
                let len = chunk.min(block - k);
                moments.push((
                    ctx.zeros(&[len], tags::OPTIMIZER)?,
                    ctx.zeros(&[len], tags::OPTIMIZER)?,
                ));
            }
            self.shard = Some(Shard {
                layout: layout.clone(),
                block,
                chunk,
                moments,
            });
        }
        let shard = self.shard.as_ref().expect("created above");
        let (b, c) = (shard.block, shard.chunk);
        let grads: Vec<&Tensor> = params.iter().map(|p| &p.grad).collect();
        let values: Vec<&Tensor> = params.iter().map(|p| &p.value).collect();
        let chunks: Vec<(usize, usize)> = (0..b).step_by(c).map(|k| (k, c.min(b - k))).collect();
        // Working buffers for this step only.
        let chunk_grad = dp.working_buffer(ctx, c)?;
        let chunk_param = dp.working_buffer(ctx, c)?;
        self.step += 1;
        // 1. Reduce-scatter chunk k of every rank's block of the gradients into `chunk_grad`,
        //    and 2. update this rank's chunk with Adam, in place in the parameters.
        let scatter: Vec<Bucket<'_>> = chunks
            .iter()
            .map(|&(k, len)| Bucket {
                send: every_block(&grads, &layout, world, b, k, len),
                send_len: world * len,
                recv: vec![Piece {
                    buffer: chunk_grad.raw(),
                    offset: 0,
                    values: len,
                    at: 0,
                }],
                recv_len: len,
            })
            .collect();
        let (hp, step) = (self.hp, self.step);
        dp.exchange(
            ctx,
            &scatter,
            |collective, sent, received| collective.reduce_scatter(sent, received),
            |i| {
                let (k, len) = chunks[i];
                let start = rank * b + k;
                if total.saturating_sub(start) < len {
                    // Padding: keep it finite (zero) so it cannot reach the moments as NaN.
                    compute::fill(ctx.gpu(), chunk_param.raw(), len, 0.0)?;
                }
                let range = start..start + len;
                flat::pack(ctx, &values, &layout, range.clone(), chunk_param.raw(), 0)?;
                let (m, v) = &shard.moments[i];
                compute::adam(
                    ctx.gpu(),
                    chunk_param.raw(),
                    chunk_grad.raw(),
                    m.raw(),
                    v.raw(),
                    len,
                    step,
                    &hp,
                )?;
                flat::unpack(ctx, chunk_param.raw(), 0, &values, &layout, range)
            },
        )?;
        // 3. All-gather chunk k of every rank's block into the parameters.
        let gather: Vec<Bucket<'_>> = chunks
            .iter()
            .map(|&(k, len)| Bucket {
                send: flat::pieces(&values, &layout, rank * b + k..rank * b + k + len, 0),
                send_len: len,
                recv: every_block(&values, &layout, world, b, k, len),
                recv_len: world * len,
            })
            .collect();
        let gathered = dp.exchange(
            ctx,
            &gather,
            |collective, sent, received| collective.all_gather(sent, received),
            |_| Ok(()),
        );
        dp.release_reserved();
        gathered?;
        for p in params {
            p.zero_grad()?;
        }
        Ok(())
    }
}

/// Chunk `k..k + len` of every rank's block (of `block` values) of the flat vector of
/// `tensors`, as the pieces of one bucket, rank after rank.
fn every_block<'a>(
    tensors: &[&'a Tensor],
    layout: &FlatLayout,
    world: usize,
    block: usize,
    k: usize,
    len: usize,
) -> Vec<Piece<'a>> {
    (0..world)
        .flat_map(|r| {
            let start = r * block + k;
            flat::pieces(tensors, layout, start..start + len, r * len)
        })
        .collect()
}
