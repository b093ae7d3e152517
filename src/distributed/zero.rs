//! [`ShardedAdam`]: ZeRO stage 1, Adam whose moments are split over the ranks.
//!
//! The parameters are seen as one flat vector of `N` values, padded to `world · b` with
//! `b = ⌈N / world⌉` (see [`super::Shards::blocks`]); rank `r` keeps the Adam moments of its
//! block `r·b .. (r+1)·b` only, so optimizer memory per rank is `2 · 4 · b` bytes instead of
//! `2 · 4 · N`. A step:
//! 1. **reduce-scatter** the gradients (in buckets of `c` values per rank): rank `r` receives
//!    the sum over ranks of its block, written into a shard gradient buffer;
//! 2. copy this rank's block of the parameters into a shard parameter buffer (on the GPU) and
//!    run the ordinary Adam kernel over the block (Adam is elementwise, so a block that spans
//!    parameters is updated exactly as the parameters would be one by one);
//! 3. **all-gather** the updated blocks (in the same buckets) and write them into every
//!    parameter, then zero the gradients.
//!
//! Padding values have zero gradient and zero moments, so their update is zero and they stay
//! zero. With one rank the result equals [`crate::optim::Adam`]'s bit for bit (same kernel,
//! same values).

use super::data_parallel::DataParallel;
use super::flat::{self, FlatLayout};
use super::{COMM, Shards, block_len};
use crate::backend::Backend;
use crate::compute::{self, AdamParams};
use crate::error::{Error, Result};
use crate::nn::Parameter;
use crate::tensor::{Context, Tensor, tags};
use std::sync::Arc;

struct Shard {
    layout: FlatLayout,
    block: usize,
    param: Tensor,
    grad: Tensor,
    m: Tensor,
    v: Tensor,
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
        self.shard
            .as_ref()
            .map_or(0, |s| s.m.buffer().size() + s.v.buffer().size())
    }

    /// Bytes of the shard's parameter and gradient working buffers (tag [`COMM`]).
    pub fn working_bytes(&self) -> u64 {
        self.shard
            .as_ref()
            .map_or(0, |s| s.param.buffer().size() + s.grad.buffer().size())
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
            self.shard = Some(Shard {
                block,
                param: ctx.zeros(&[block], COMM)?,
                grad: ctx.zeros(&[block], COMM)?,
                m: ctx.zeros(&[block], tags::OPTIMIZER)?,
                v: ctx.zeros(&[block], tags::OPTIMIZER)?,
                layout: layout.clone(),
            });
        }
        let shard = self.shard.as_ref().expect("created above");
        let b = shard.block;
        let c = (dp.bucket_elements() / world).clamp(1, b);
        let grads: Vec<&Tensor> = params.iter().map(|p| &p.grad).collect();
        let values: Vec<&Tensor> = params.iter().map(|p| &p.value).collect();
        let pack = flat::packing_buffer(ctx, world * c)?;
        dp.host.resize(world * c, 0.0);
        dp.host_recv.resize(world * c, 0.0);

        // 1. Reduce-scatter the gradients, bucket by bucket.
        for k in (0..b).step_by(c) {
            let len = c.min(b - k);
            for r in 0..world {
                let start = r * b + k;
                flat::pack(
                    ctx,
                    &grads,
                    &layout,
                    start..start + len,
                    pack.raw(),
                    r * len,
                )?;
            }
            dp.timed(world * len, |dp| {
                let (host, recv) = (&mut dp.host[..world * len], &mut dp.host_recv[..len]);
                flat::read(ctx, pack.raw(), host)?;
                for r in 0..world {
                    let valid = total.saturating_sub(r * b + k).min(len);
                    host[r * len + valid..(r + 1) * len].fill(0.0);
                }
                dp.collective.reduce_scatter(host, recv)?;
                ctx.backend()
                    .write(shard.grad.raw(), (k * 4) as u64, bytemuck::cast_slice(recv))
            })?;
        }

        // 2. Adam over this rank's block.
        let own = Shards::blocks(total, world).range(rank);
        flat::pack(ctx, &values, &layout, own, shard.param.raw(), 0)?;
        self.step += 1;
        compute::adam(
            ctx.gpu(),
            shard.param.raw(),
            shard.grad.raw(),
            shard.m.raw(),
            shard.v.raw(),
            b,
            self.step,
            &self.hp,
        )?;

        // 3. All-gather the updated blocks into every parameter.
        for k in (0..b).step_by(c) {
            let len = c.min(b - k);
            dp.timed(len, |dp| {
                let (send, recv) = (&mut dp.host[..len], &mut dp.host_recv[..world * len]);
                ctx.backend().read(
                    shard.param.raw(),
                    (k * 4) as u64,
                    bytemuck::cast_slice_mut(send),
                )?;
                dp.collective.all_gather(send, recv)?;
                for r in 0..world {
                    let start = r * b + k;
                    flat::unpack_host(
                        ctx,
                        &values,
                        &layout,
                        start..start + len,
                        &recv[r * len..(r + 1) * len],
                    )?;
                }
                Ok(())
            })?;
        }
        for p in params {
            compute::fill(ctx.gpu(), p.grad.raw(), p.grad.len(), 0.0)?;
        }
        Ok(())
    }
}
