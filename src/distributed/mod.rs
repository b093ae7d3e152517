//! Data-parallel training across processes: the collectives and how values are split.
//!
//! wgpu cannot share a buffer between two devices (or two processes), so the gradients of
//! data-parallel training travel through host memory: each rank copies a bucket of gradients
//! into a mapped staging buffer (from the pool, tag [`COMM`]), reduces it with the other ranks
//! over a [`Collective`] straight from the mapping, and copies the result back, with the next
//! buckets' copies already in flight (the pipeline: `distributed/pipeline.rs`). This module
//! holds the seam ([`Collective`]), a one-process world ([`Local`]), MPI behind the `mpi`
//! feature ([`Mpi`]), and the arithmetic of shards ([`Shards`], [`block_len`]).
//!
//! In training, the gradient exchange overlaps the backward pass (`distributed/overlap.rs`):
//! each bucket leaves as soon as the backward pass has passed its layers, and the step waits
//! only for what is left; with [`GradCompression::F16`] buckets travel as half values, packed
//! and unpacked on the GPU (`distributed/compress.rs`).
//!
//! What limits the scaling, measured on two H200s (BENCHMARKS.md): the exchange of the
//! 460 MiB of gradients of the benchmark MLP takes about 210 ms, 96% of it inside MPI's
//! shared-memory all-reduce, against a 28 ms step on one GPU.
//!
//! # Shapes of the collectives
//! All collectives work on host `f32` slices and must be called by every rank in the same
//! order with the same lengths (MPI's rule; a mismatch is a hang or an abort, not an error
//! this crate can see on one rank, so the trainer derives every length from the model alone).
//! - `all_reduce(data)`: element-wise sum over ranks, in place.
//! - `broadcast(data, root)`: every rank ends with `root`'s values.
//! - `reduce_scatter(send, recv)`: `send.len() == world · recv.len()`; rank `r` receives the
//!   sum over ranks of `send[r·b .. (r+1)·b]` with `b = recv.len()` ("block" form).
//! - `all_gather(send, recv)`: `recv.len() == world · send.len()`; block `r` of `recv` is rank
//!   `r`'s `send`.
//!
//! # Odd sizes
//! A vector of `n` values that does not divide by the world size is padded at its end with
//! zeros to `world · block_len(n, world)`; rank `r` owns the block
//! `r·b .. min((r+1)·b, n)` (so the last ranks may own fewer real values, or none).
//! [`Shards`] gives those ranges. Padding is zero on the way in, so sums over it stay zero,
//! and it is dropped on the way out.
//!
//! Batches are split differently, by rows: [`Shards::balanced`] gives rank `r` either
//! `⌊B/world⌋` or `⌈B/world⌉` rows, and the shards add up to the batch.
//!
//! ```
//! use wgmem::distributed::{Collective, Local, Shards};
//!
//! let world = Local; // one process: rank 0 of 1
//! let mut grads = vec![1.0f32, 2.0, 3.0];
//! world.all_reduce(&mut grads)?;
//! assert_eq!(grads, [1.0, 2.0, 3.0]);
//! // 10 values over 4 ranks: blocks of 3, padded to 12; rank 3 owns one real value.
//! let values = Shards::blocks(10, 4);
//! assert_eq!((values.padded_len(), values.range(3)), (12, 9..10));
//! // A batch of 10 rows over 4 ranks: 3, 3, 2 and 2 rows.
//! let rows = Shards::balanced(10, 4);
//! assert_eq!((0..4).map(|r| rows.range(r).len()).collect::<Vec<_>>(), [3, 3, 2, 2]);
//! # Ok::<(), wgmem::Error>(())
//! ```
//!
//! What is counted: the staging buffers ([`crate::BufferUsage::Readback`] and
//! [`crate::BufferUsage::Upload`]) and ZeRO-1's chunk buffers come from the pool under the
//! [`COMM`] tag (and the sharded moments under `optimizer`), so the [`crate::MemoryManager`]
//! sees them. The host vector the collective writes into (one bucket, kept between steps) is
//! host memory the manager does not hold; its size is reported per rank in
//! [`crate::train::RankReport::host_staging_bytes`].

use crate::error::{Error, Result};
use std::ops::Range;

mod compress;
mod data_parallel;
mod flat;
#[cfg(feature = "mpi")]
mod mpi;
mod overlap;
mod pipeline;
mod zero;

#[cfg(feature = "mpi")]
pub use self::mpi::Mpi;
pub use compress::{COMM_STATE, GradCompression};
pub use data_parallel::DataParallel;
pub use zero::ShardedAdam;

/// The memory tag of gradient packing buffers and ZeRO shards.
pub const COMM: &str = "comm";

/// The default size of one gradient bucket: 8 MiB.
///
/// Measured on the two-H200 host (BENCHMARKS.md, `benches/exchange.rs`): Open MPI 4.1's
/// shared-memory all-reduce of the 460 MiB of MLP gradients took about 120 ms in 4-16 MiB
/// messages and 380 ms in 32 MiB ones (its default algorithm changes there), while buckets
/// much smaller than a few MiB pay a submit and a map per bucket. Staging is
/// `2 · 2` buckets, so small buckets also keep the exchange's memory small.
pub const DEFAULT_BUCKET_BYTES: u64 = 8 << 20;

/// Collective operations over the ranks of a job. See the module docs for the shapes.
///
/// Errors are [`Error::Collective`] for arguments that cannot be right (lengths that do not
/// match the world, a root outside it). Failures inside the transport abort the job (MPI's
/// default error handler), because the other ranks could not be told.
pub trait Collective {
    /// This process's rank, `0..world_size()`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn world_size(&self) -> usize;
    /// Element-wise sum over all ranks, in place.
    fn all_reduce(&self, data: &mut [f32]) -> Result<()>;
    /// Element-wise sum over all ranks of `send`, into `recv` (same length): the form that
    /// reads straight from a mapped staging buffer. The default copies and reduces in place.
    fn all_reduce_into(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_blocks("all_reduce", recv.len(), send.len(), 1)?;
        recv.copy_from_slice(send);
        self.all_reduce(recv)
    }
    /// Element-wise sum over all ranks of IEEE half-precision values (their bits), `send`
    /// into `recv` (same length): the compressed gradient exchange
    /// ([`GradCompression::F16`]). The default widens to `f32`, sums with
    /// [`Self::all_reduce`] and rounds once, so it is exact to one rounding but moves `f32`
    /// on the wire; [`Mpi`] overrides it to move half the bytes.
    fn all_reduce_f16(&self, send: &[u16], recv: &mut [u16]) -> Result<()> {
        use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
        check_blocks("all_reduce_f16", recv.len(), send.len(), 1)?;
        let mut wide = vec![0f32; send.len()];
        send.reinterpret_cast::<half::f16>()
            .convert_to_f32_slice(&mut wide);
        self.all_reduce(&mut wide)?;
        recv.reinterpret_cast_mut::<half::f16>()
            .convert_from_f32_slice(&wide);
        Ok(())
    }
    /// Element-wise sum over all ranks of `u64` counters, in place (reports, flags).
    fn all_reduce_u64(&self, data: &mut [u64]) -> Result<()>;
    /// Copies `root`'s `data` to every rank.
    fn broadcast(&self, data: &mut [f32], root: usize) -> Result<()>;
    /// Sums `send` over ranks and gives rank `r` block `r` (`send.len() == world · recv.len()`).
    fn reduce_scatter(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// Concatenates every rank's `send` in rank order (`recv.len() == world · send.len()`).
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()>;
    /// Concatenates every rank's `u64` values in rank order (reports).
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()>;
    /// Waits until every rank has reached this call.
    fn barrier(&self) -> Result<()>;
    /// Ends every rank of the job with exit status `code`: what a rank does after an error
    /// the others cannot know of (they may be waiting in a collective for it, and an orderly
    /// MPI finalize would wait for them in turn). One process: exits.
    fn abort(&self, code: i32) -> ! {
        std::process::exit(code)
    }
}

/// A shared world: several trainers in turn over one MPI initialization.
impl<C: Collective + ?Sized> Collective for std::rc::Rc<C> {
    fn rank(&self) -> usize {
        (**self).rank()
    }
    fn world_size(&self) -> usize {
        (**self).world_size()
    }
    fn all_reduce(&self, data: &mut [f32]) -> Result<()> {
        (**self).all_reduce(data)
    }
    fn all_reduce_into(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        (**self).all_reduce_into(send, recv)
    }
    fn all_reduce_f16(&self, send: &[u16], recv: &mut [u16]) -> Result<()> {
        (**self).all_reduce_f16(send, recv)
    }
    fn all_reduce_u64(&self, data: &mut [u64]) -> Result<()> {
        (**self).all_reduce_u64(data)
    }
    fn broadcast(&self, data: &mut [f32], root: usize) -> Result<()> {
        (**self).broadcast(data, root)
    }
    fn reduce_scatter(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        (**self).reduce_scatter(send, recv)
    }
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        (**self).all_gather(send, recv)
    }
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        (**self).all_gather_u64(send, recv)
    }
    fn barrier(&self) -> Result<()> {
        (**self).barrier()
    }
    fn abort(&self, code: i32) -> ! {
        (**self).abort(code)
    }
}

/// The one-process world: rank 0 of 1. Every collective is the identity, and costs nothing
/// beyond the argument checks (and a copy where `send` and `recv` differ).
#[derive(Debug, Clone, Copy, Default)]
pub struct Local;

impl Collective for Local {
    fn rank(&self) -> usize {
        0
    }
    fn world_size(&self) -> usize {
        1
    }
    fn all_reduce(&self, _data: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_u64(&self, _data: &mut [u64]) -> Result<()> {
        Ok(())
    }
    fn broadcast(&self, _data: &mut [f32], root: usize) -> Result<()> {
        check_root("broadcast", root, 1)
    }
    fn reduce_scatter(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_blocks("reduce_scatter", send.len(), recv.len(), 1)?;
        recv.copy_from_slice(send);
        Ok(())
    }
    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_blocks("all_gather", recv.len(), send.len(), 1)?;
        recv.copy_from_slice(send);
        Ok(())
    }
    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        check_blocks("all_gather", recv.len(), send.len(), 1)?;
        recv.copy_from_slice(send);
        Ok(())
    }
    fn barrier(&self) -> Result<()> {
        Ok(())
    }
}

/// Checks `whole == world · block`.
pub(crate) fn check_blocks(
    op: &'static str,
    whole: usize,
    block: usize,
    world: usize,
) -> Result<()> {
    if block.checked_mul(world) != Some(whole) {
        return Err(Error::Collective {
            op,
            reason: format!(
                "the full buffer has {whole} values, but {world} ranks x {block} values per \
                 rank = {}; pad the full buffer to a multiple of the world size (see Shards)",
                block.saturating_mul(world)
            ),
        });
    }
    Ok(())
}

/// Checks that `root` is a rank.
pub(crate) fn check_root(op: &'static str, root: usize, world: usize) -> Result<()> {
    if root >= world {
        return Err(Error::Collective {
            op,
            reason: format!("root rank {root} is outside a world of {world} ranks"),
        });
    }
    Ok(())
}

/// Values per rank when `n` values are split in equal blocks over `world` ranks (padded):
/// `⌈n / world⌉`.
pub fn block_len(n: usize, world: usize) -> usize {
    n.div_ceil(world.max(1))
}

/// How `n` values (or rows) are split over the ranks of a world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shards {
    n: usize,
    world: usize,
    balanced: bool,
}

impl Shards {
    /// Equal blocks of [`block_len`] values, the last ones short (the layout of
    /// `reduce_scatter` and `all_gather` after padding).
    pub fn blocks(n: usize, world: usize) -> Self {
        Self {
            n,
            world: world.max(1),
            balanced: false,
        }
    }

    /// Rows of a batch: the first `n % world` ranks take one row more than the others.
    pub fn balanced(n: usize, world: usize) -> Self {
        Self {
            n,
            world: world.max(1),
            balanced: true,
        }
    }

    /// The real values (or rows) rank `rank` owns.
    pub fn range(&self, rank: usize) -> Range<usize> {
        if self.balanced {
            let (q, r) = (self.n / self.world, self.n % self.world);
            let start = rank * q + rank.min(r);
            start..start + q + usize::from(rank < r)
        } else {
            let b = block_len(self.n, self.world);
            (rank * b).min(self.n)..((rank + 1) * b).min(self.n)
        }
    }

    /// The padded length, `world · block_len(n, world)` (the block layout's full length).
    pub fn padded_len(&self) -> usize {
        self.world * block_len(self.n, self.world)
    }
}

/// The world this process was started in: MPI when built with the `mpi` feature and started by
/// `mpirun` (Open MPI's `OMPI_COMM_WORLD_SIZE` or a PMI `PMI_SIZE` is set), [`Local`] otherwise.
pub fn from_env() -> Result<Box<dyn Collective>> {
    #[cfg(feature = "mpi")]
    {
        let launched = ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        if launched {
            return Ok(Box::new(Mpi::init()?));
        }
    }
    Ok(Box::new(Local))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_shards_add_up_to_the_batch() {
        for n in [0, 1, 5, 64, 1797] {
            for world in 1..6 {
                let s = Shards::balanced(n, world);
                let total: usize = (0..world).map(|r| s.range(r).len()).sum();
                assert_eq!(total, n);
                assert_eq!(s.range(0).start, 0);
                for r in 1..world {
                    assert_eq!(s.range(r).start, s.range(r - 1).end);
                }
            }
        }
    }

    #[test]
    fn block_shards_cover_odd_lengths_with_padding_at_the_end() {
        let s = Shards::blocks(10, 4);
        assert_eq!(s.padded_len(), 12);
        let got: Vec<_> = (0..4).map(|r| s.range(r)).collect();
        assert_eq!(got, vec![0..3, 3..6, 6..9, 9..10]);
        let s = Shards::blocks(2, 4);
        assert_eq!(
            (0..4).map(|r| s.range(r).len()).collect::<Vec<_>>(),
            [1, 1, 0, 0]
        );
    }

    #[test]
    fn local_world_is_the_identity_and_checks_lengths() {
        let l = Local;
        let mut x = vec![1.0, 2.0];
        l.all_reduce(&mut x).unwrap();
        assert_eq!(x, [1.0, 2.0]);
        let mut out = vec![0.0; 2];
        l.reduce_scatter(&x, &mut out).unwrap();
        assert_eq!(out, x);
        l.all_gather(&x, &mut out).unwrap();
        assert_eq!(out, x);
        assert!(matches!(
            l.all_gather(&x, &mut [0.0; 3]),
            Err(Error::Collective { .. })
        ));
        assert!(l.broadcast(&mut x, 1).is_err());
    }
}
