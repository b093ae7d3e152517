//! [`FaultyBackend`]: any [`Backend`] with failures injected on demand.
//!
//! Real devices fail in ways a test cannot provoke on purpose: an allocation refused when
//! memory is full, a transfer that does not complete, a driver reset that loses the device.
//! This wrapper makes each of them happen when a test says so, so the layers above (pool,
//! manager) can be shown to turn every one into a typed error and keep their account exact.
//! It counts the bytes and buffers it handed out and got back, so a test can check that
//! nothing leaked whatever failed.
//!
//! The decisions come from a [`FaultPlan`], the same type [`crate::WgpuBackend`] consults
//! through [`crate::WgpuBackend::set_fault_plan`] when the faults must happen under code that
//! is tied to the real backend (the trainer). Every knob takes `&self`, so a test can keep an
//! `Arc` to the backend it gave a manager and change the faults mid-run.

use crate::backend::{
    AdapterDescription, Backend, BufferUsage, Capabilities, FaultCounts, FaultPlan, SubmissionIndex,
};
use crate::error::Result;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A [`Backend`] that forwards to `B` except where its [`FaultPlan`] plans a fault. See the
/// module docs.
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
    plan: Arc<FaultPlan>,
    allocated_bytes: AtomicU64,
    live_buffers: AtomicU64,
}

impl<B: Backend> FaultyBackend<B> {
    /// Wraps `inner` with no faults planned; `seed` drives the random failure rates.
    pub fn new(inner: B, seed: u64) -> Self {
        Self::with_plan(inner, Arc::new(FaultPlan::new(seed)))
    }

    /// Wraps `inner` under a plan the caller keeps (and may share with other backends).
    pub fn with_plan(inner: B, plan: Arc<FaultPlan>) -> Self {
        Self {
            inner,
            plan,
            allocated_bytes: AtomicU64::new(0),
            live_buffers: AtomicU64::new(0),
        }
    }

    /// The wrapped backend.
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// The plan this wrapper consults.
    pub fn plan(&self) -> &Arc<FaultPlan> {
        &self.plan
    }

    /// Makes the `n`th call to `allocate` (1-based, counting every call since creation, see
    /// [`Self::allocate_calls`]) fail with an out-of-memory.
    pub fn fail_allocation_at(&self, n: u64) {
        self.plan.fail_allocation_at(n);
    }

    /// Each later allocation fails with probability `rate` (clamped to 0..=1).
    pub fn set_allocation_failure_rate(&self, rate: f64) {
        self.plan.set_allocation_failure_rate(rate);
    }

    /// Each later write fails with probability `rate` (clamped to 0..=1).
    pub fn set_write_failure_rate(&self, rate: f64) {
        self.plan.set_write_failure_rate(rate);
    }

    /// Each later read fails with probability `rate` (clamped to 0..=1).
    pub fn set_read_failure_rate(&self, rate: f64) {
        self.plan.set_read_failure_rate(rate);
    }

    /// Clears every planned fault and rate (a lost device stays lost).
    pub fn clear_faults(&self) {
        self.plan.clear_faults();
    }

    /// From now on every operation but `free` (and the counters) returns
    /// [`crate::Error::DeviceLost`] with `reason`. `free` still releases the inner buffer,
    /// so a lost device leaks nothing.
    pub fn lose_device(&self, reason: impl Into<String>) {
        self.plan.lose_device(reason);
    }

    /// True after [`Self::lose_device`].
    pub fn is_lost(&self) -> bool {
        self.plan.is_lost()
    }

    /// The faults injected so far.
    pub fn faults(&self) -> FaultCounts {
        self.plan.faults()
    }

    /// Calls to `allocate` so far, failed ones included.
    pub fn allocate_calls(&self) -> u64 {
        self.plan.allocate_calls()
    }

    /// Bytes allocated through this wrapper and not yet freed.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated_bytes.load(Ordering::SeqCst)
    }

    /// Buffers allocated through this wrapper and not yet freed.
    pub fn live_buffers(&self) -> u64 {
        self.live_buffers.load(Ordering::SeqCst)
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
        self.plan.on_allocate(size)?;
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
        self.plan.on_transfer("write")?;
        self.inner.write(buffer, offset, data)
    }

    fn read(&self, buffer: &B::Buffer, offset: u64, out: &mut [u8]) -> Result<()> {
        self.plan.on_transfer("read")?;
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
        self.plan.check_lost()?;
        self.inner.copy(src, src_offset, dst, dst_offset, len)
    }

    fn last_submission(&self) -> SubmissionIndex {
        self.inner.last_submission()
    }

    fn completed_submission(&self) -> SubmissionIndex {
        self.inner.completed_submission()
    }

    fn wait_idle(&self) -> Result<()> {
        self.plan.check_lost()?;
        self.inner.wait_idle()
    }

    fn device_allocated_bytes(&self) -> Option<u64> {
        self.inner.device_allocated_bytes()
    }
}
