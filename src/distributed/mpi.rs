//! [`Mpi`]: the [`Collective`] trait over MPI (rsmpi), for processes started by `mpirun`.
//!
//! MPI reduces host memory; rsmpi has no in-place all-reduce, so a scratch vector (kept
//! between calls, sized to the largest bucket) receives the result and is copied back.

use super::{Collective, check_blocks, check_root};
use crate::error::{Error, Result};
use mpi::collective::{SystemOperation, UserOperation};
use mpi::datatype::{DynBuffer, DynBufferMut};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::{CommunicatorCollectives, Root};
use std::cell::RefCell;

/// The MPI world of this process. Dropping it finalizes MPI (once per process).
pub struct Mpi {
    world: SimpleCommunicator,
    rank: usize,
    size: usize,
    scratch: RefCell<Vec<f32>>,
    /// The sum of IEEE half values (MPI has no half type before MPI 4.1's extensions).
    f16_sum: UserOperation<'static>,
    // Last: dropped after the communicator, finalizing MPI.
    _universe: Universe,
}

impl std::fmt::Debug for Mpi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mpi")
            .field("rank", &self.rank)
            .field("size", &self.size)
            .finish()
    }
}

impl Mpi {
    /// Initializes MPI and takes its world communicator. Fails if MPI was initialized already
    /// in this process (hold one `Mpi` for the whole run).
    pub fn init() -> Result<Self> {
        let universe = mpi::initialize().ok_or_else(|| Error::Collective {
            op: "init",
            reason: "MPI is already initialized in this process; create one Mpi per run".into(),
        })?;
        let world = universe.world();
        let rank = usize::try_from(world.rank()).unwrap_or(0);
        let size = usize::try_from(world.size()).unwrap_or(1);
        Ok(Self {
            world,
            rank,
            size,
            scratch: RefCell::new(Vec::new()),
            f16_sum: UserOperation::commutative(sum_f16),
            _universe: universe,
        })
    }
}

impl Collective for Mpi {
    fn rank(&self) -> usize {
        self.rank
    }

    fn world_size(&self) -> usize {
        self.size
    }

    fn all_reduce(&self, data: &mut [f32]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut scratch = self.scratch.borrow_mut();
        scratch.resize(data.len(), 0.0);
        self.world
            .all_reduce_into(&*data, &mut scratch[..], SystemOperation::sum());
        data.copy_from_slice(&scratch);
        Ok(())
    }

    fn all_reduce_into(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_blocks("all_reduce", recv.len(), send.len(), 1)?;
        if send.is_empty() {
            return Ok(());
        }
        self.world
            .all_reduce_into(send, recv, SystemOperation::sum());
        Ok(())
    }

    fn all_reduce_f16(&self, send: &[u16], recv: &mut [u16]) -> Result<()> {
        check_blocks("all_reduce_f16", recv.len(), send.len(), 1)?;
        if send.is_empty() {
            return Ok(());
        }
        self.world.all_reduce_into(send, recv, &self.f16_sum);
        Ok(())
    }

    fn all_reduce_u64(&self, data: &mut [u64]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let send = data.to_vec();
        self.world
            .all_reduce_into(&send[..], data, SystemOperation::sum());
        Ok(())
    }

    fn broadcast(&self, data: &mut [f32], root: usize) -> Result<()> {
        check_root("broadcast", root, self.size)?;
        if data.is_empty() {
            return Ok(());
        }
        self.world.process_at_rank(root as i32).broadcast_into(data);
        Ok(())
    }

    fn reduce_scatter(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_blocks("reduce_scatter", send.len(), recv.len(), self.size)?;
        if recv.is_empty() {
            return Ok(());
        }
        self.world
            .reduce_scatter_block_into(send, recv, SystemOperation::sum());
        Ok(())
    }

    fn all_gather(&self, send: &[f32], recv: &mut [f32]) -> Result<()> {
        check_blocks("all_gather", recv.len(), send.len(), self.size)?;
        if send.is_empty() {
            return Ok(());
        }
        self.world.all_gather_into(send, recv);
        Ok(())
    }

    fn all_gather_u64(&self, send: &[u64], recv: &mut [u64]) -> Result<()> {
        check_blocks("all_gather", recv.len(), send.len(), self.size)?;
        if send.is_empty() {
            return Ok(());
        }
        self.world.all_gather_into(send, recv);
        Ok(())
    }

    fn barrier(&self) -> Result<()> {
        self.world.barrier();
        Ok(())
    }

    fn abort(&self, code: i32) -> ! {
        self.world.abort(code)
    }
}

/// MPI's reduction callback for [`Mpi::all_reduce_f16`]: `inout[i] = f16(f32(in[i]) +
/// f32(inout[i]))`, one rounding per rank added (the buffers are always `u16`; anything else
/// is left untouched, which cannot happen through this crate). Converts a chunk at a time
/// with `half`'s slice conversions (F16C where the CPU has it).
fn sum_f16(read: DynBuffer<'_>, write: DynBufferMut<'_>) {
    use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
    const CHUNK: usize = 1024;
    if let (Some(read), Some(write)) = (read.downcast::<u16>(), write.downcast::<u16>()) {
        let (mut a, mut b) = ([0f32; CHUNK], [0f32; CHUNK]);
        for (r, w) in read.chunks(CHUNK).zip(write.chunks_mut(CHUNK)) {
            let n = r.len().min(w.len());
            let (a, b) = (&mut a[..n], &mut b[..n]);
            r[..n]
                .reinterpret_cast::<half::f16>()
                .convert_to_f32_slice(a);
            w[..n]
                .reinterpret_cast::<half::f16>()
                .convert_to_f32_slice(b);
            for (x, y) in b.iter_mut().zip(a.iter()) {
                *x += *y;
            }
            w[..n]
                .reinterpret_cast_mut::<half::f16>()
                .convert_from_f32_slice(b);
        }
    }
}
