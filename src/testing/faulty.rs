//! [`FaultyBackend`]: any [`Backend`] with failures injected on demand.
//!
//! Real devices fail in ways a test cannot provoke on purpose: an allocation refused when
//! memory is full, a transfer that does not complete, a driver reset that loses the device.
//! This wrapper makes each of them happen when a test says so, so the layers above (pool,
//! manager, trainer) can be shown to turn every one into a typed error and keep their
//! account exact. It counts what it injected, and it counts the bytes and buffers it handed
//! out and got back, so a test can check that nothing leaked whatever failed.
//!
//! Every knob takes `&self`, so a test can keep an `Arc` to the backend it gave a manager
//! and change the faults mid-run.

use crate::backend::{AdapterDescription, Backend, BufferUsage, Capabilities, SubmissionIndex};
use crate::error::{Error, OutOfMemoryReport, Result};
use crate::memory::MemoryStats;
use crate::sync::lock;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a [`FaultyBackend`] has injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Allocations refused with [`Error::OutOfMemory`].
    pub allocations: u64,
    /// Writes failed with [`Error::Transfer`].
    pub writes: u64,
    /// Reads failed with [`Error::Transfer`].
    pub reads: u64,
    /// Operations refused with [`Error::DeviceLost`] after [`FaultyBackend::lose_device`].
    pub device_lost: u64,
}

impl FaultCounts {
    /// All injected faults together.
    pub fn total(&self) -> u64 {
        self.allocations + self.writes + self.reads + self.device_lost
    }
}

#[derive(Debug)]
struct Plan {
    rng: ChaCha8Rng,
    /// 1-based index (counting every `allocate` call) of allocations that must fail.
    fail_allocation_at: Vec<u64>,
    allocation_rate: f64,
    write_rate: f64,
    read_rate: f64,
    lost: Option<String>,
    counts: FaultCounts,
}

/// A [`Backend`] that forwards to `B` except where a fault is planned. See the module docs.
///
/// ```
/// use std::sync::Arc;
/// use wgmem::testing::FaultyBackend;
/// use wgmem::{BufferUsage, Error, HostBackend, MemoryManager};
///
/// let backend = Arc::new(FaultyBackend::new(HostBackend::new(), 7));
/// let manager = MemoryManager::new(Arc::clone(&backend));
/// backend.fail_allocation_at(backend.allocate_calls() + 1);
/// // The manager retries a refused allocation (evict, wait, clean up) before giving up:
/// // one injected failure is survived.
/// let buffer = manager.acquire(1024, BufferUsage::Storage, "demo")?;
/// assert_eq!(backend.faults().allocations, 1);
/// backend.lose_device("unplugged");
/// assert!(matches!(buffer.write(0, &[0; 4]), Err(Error::DeviceLost { .. })));
/// # Ok::<(), wgmem::Error>(())
/// ```
#[derive(Debug)]
pub struct FaultyBackend<B: Backend> {
    inner: B,
    plan: Mutex<Plan>,
    allocate_calls: AtomicU64,
    allocated_bytes: AtomicU64,
    live_buffers: AtomicU64,
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner` with no faults planned; `seed` drives the random failure rates.
    pub fn new(inner: B, seed: u64) -> Self {
        Self {
            inner,
            plan: Mutex::new(Plan {
                rng: ChaCha8Rng::seed_from_u64(seed),
                fail_allocation_at: Vec::new(),
                allocation_rate: 0.0,
                write_rate: 0.0,
                read_rate: 0.0,
                lost: None,
                counts: FaultCounts::default(),
            }),
            allocate_calls: AtomicU64::new(0),
            allocated_bytes: AtomicU64::new(0),
            live_buffers: AtomicU64::new(0),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Makes the `n`th call to `allocate` (1-based, counting every call since creation, see
    /// [`Self::allocate_calls`]) fail with an out-of-memory.
    pub fn fail_allocation_at(&self, n: u64) {
        lock(&self.plan).fail_allocation_at.push(n);
    }

    /// Each later allocation fails with probability `rate` (clamped to 0..=1).
    pub fn set_allocation_failure_rate(&self, rate: f64) {
        lock(&self.plan).allocation_rate = clamp_rate(rate);
    }

    /// Each later write fails with probability `rate` (clamped to 0..=1).
    pub fn set_write_failure_rate(&self, rate: f64) {
        lock(&self.plan).write_rate = clamp_rate(rate);
    }

    /// Each later read fails with probability `rate` (clamped to 0..=1).
    pub fn set_read_failure_rate(&self, rate: f64) {
        lock(&self.plan).read_rate = clamp_rate(rate);
    }

    /// Clears every planned fault and rate (a lost device stays lost).
    pub fn clear_faults(&self) {
        let mut plan = lock(&self.plan);
        plan.fail_allocation_at.clear();
        plan.allocation_rate = 0.0;
        plan.write_rate = 0.0;
        plan.read_rate = 0.0;
    }

    /// From now on every operation but `free` (and the counters) returns
    /// [`Error::DeviceLost`] with `reason`. `free` still releases the inner buffer, so a
    /// lost device leaks nothing.
    pub fn lose_device(&self, reason: impl Into<String>) {
        lock(&self.plan).lost = Some(reason.into());
    }

    /// True after [`Self::lose_device`].
    pub fn is_lost(&self) -> bool {
        lock(&self.plan).lost.is_some()
    }

    /// The faults injected so far.
    pub fn faults(&self) -> FaultCounts {
        lock(&self.plan).counts
    }

    /// Calls to `allocate` so far, failed ones included.
    pub fn allocate_calls(&self) -> u64 {
        self.allocate_calls.load(Ordering::SeqCst)
    }

    /// Bytes allocated through this wrapper and not yet freed.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes.load(Ordering::SeqCst)
    }

    /// Buffers allocated through this wrapper and not yet freed.
    pub fn live_buffers(&self) -> u64 {
        self.live_buffers.load(Ordering::SeqCst)
    }

    /// `Err(DeviceLost)` (counted) when the device is lost.
    fn check_lost(&self, plan: &mut Plan) -> Result<()> {
        match &plan.lost {
            Some(reason) => {
                let reason = reason.clone();
                plan.counts.device_lost += 1;
                Err(Error::DeviceLost { reason })
            }
            None => Ok(()),
        }
    }

    fn transfer(&self, op: &'static str) -> Result<()> {
        let mut plan = lock(&self.plan);
        self.check_lost(&mut plan)?;
        let rate = if op == "write" {
            plan.write_rate
        } else {
            plan.read_rate
        };
        if rate > 0.0 && plan.rng.random_bool(rate) {
            if op == "write" {
                plan.counts.writes += 1;
            } else {
                plan.counts.reads += 1;
            }
            return Err(Error::Transfer {
                op,
                reason: "injected fault".into(),
            });
        }
        Ok(())
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

impl<B: Backend> Backend for FaultyBackend<B> {
    type Buffer = B::Buffer;

    fn name(&self) -> &'static str {
        "faulty"
    }

    fn adapter(&self) -> &AdapterDescription {
        self.inner.adapter()
    }

    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }

    fn allocate(&self, size: u64, usage: BufferUsage) -> Result<B::Buffer> {
        let call = self.allocate_calls.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut plan = lock(&self.plan);
            self.check_lost(&mut plan)?;
            let planned = plan.fail_allocation_at.iter().position(|&n| n == call);
            if let Some(i) = planned {
                plan.fail_allocation_at.swap_remove(i);
            }
            let rate = plan.allocation_rate;
            if planned.is_some() || (rate > 0.0 && plan.rng.random_bool(rate)) {
                plan.counts.allocations += 1;
                return Err(Error::OutOfMemory(Box::new(OutOfMemoryReport {
                    requested: size,
                    limit: None,
                    stats: MemoryStats::default(),
                    largest: Vec::new(),
                    device_message: Some(format!("injected fault at allocation {call}")),
                })));
            }
        }
        let buffer = self.inner.allocate(size, usage)?;
        self.allocated_bytes
            .fetch_add(self.inner.size(&buffer), Ordering::SeqCst);
        self.live_buffers.fetch_add(1, Ordering::SeqCst);
        Ok(buffer)
    }

    fn free(&self, buffer: B::Buffer) {
        self.allocated_bytes
            .fetch_sub(self.inner.size(&buffer), Ordering::SeqCst);
        self.live_buffers.fetch_sub(1, Ordering::SeqCst);
        self.inner.free(buffer);
    }

    fn size(&self, buffer: &B::Buffer) -> u64 {
        self.inner.size(buffer)
    }

    fn write(&self, buffer: &B::Buffer, offset: u64, data: &[u8]) -> Result<()> {
        self.transfer("write")?;
        self.inner.write(buffer, offset, data)
    }

    fn read(&self, buffer: &B::Buffer, offset: u64, out: &mut [u8]) -> Result<()> {
        self.transfer("read")?;
        self.inner.read(buffer, offset, out)
    }

    fn copy(
        &self,
        src: &B::Buffer,
        src_offset: u64,
        dst: &B::Buffer,
        dst_offset: u64,
        len: u64,
    ) -> Result<()> {
        self.check_lost(&mut lock(&self.plan))?;
        self.inner.copy(src, src_offset, dst, dst_offset, len)
    }

    fn last_submission(&self) -> SubmissionIndex {
        self.inner.last_submission()
    }

    fn completed_submission(&self) -> SubmissionIndex {
        self.inner.completed_submission()
    }

    fn wait_idle(&self) -> Result<()> {
        self.check_lost(&mut lock(&self.plan))?;
        self.inner.wait_idle()
    }

    fn device_allocated_bytes(&self) -> Option<u64> {
        self.inner.device_allocated_bytes()
    }
}
