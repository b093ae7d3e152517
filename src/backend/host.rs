//! [`HostBackend`]: the [`Backend`] trait over host memory.
//!
//! It exists so that everything above the trait (pool, manager, pressure, checkpointing) can be
//! tested fast and exactly, without a GPU, and as the target of checkpoint offload. It follows
//! the same rules as the GPU backend (alignment, bounds, zeroed buffers) so that a test passing
//! here means the same thing there. Two test knobs model a real device: a capacity after which
//! allocation fails with an out-of-memory, and held completion, which keeps "submitted" work
//! from completing until [`HostBackend::complete_all`] so the pool's late-free logic can be seen.
//! With [`HostBackend::with_zero_copy`] it also models zero-copy on unified memory: a write or
//! read takes the direct path (no submission) only when nothing is in flight, by the same rule
//! as the GPU backend ([`crate::backend::TransferPath`]), and counts which path it took.

use super::transfer::{TransferCounters, choose_path};
use super::{
    AdapterDescription, Backend, BudgetSource, BufferUsage, Capabilities, SubmissionIndex,
    TransferCounts, TransferPath, check_aligned, check_range, checked_allocation_size,
};
use crate::error::{Error, Result};
use crate::sync::lock;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A buffer in host memory.
#[derive(Debug)]
pub struct HostBuffer {
    id: u64,
    bytes: Mutex<Box<[u8]>>,
}

impl HostBuffer {
    /// A unique id (for tests that check a buffer is not handed out twice).
    pub fn id(&self) -> u64 {
        self.id
    }
}

/// Host-memory implementation of [`Backend`].
#[derive(Debug)]
pub struct HostBackend {
    adapter: AdapterDescription,
    caps: Capabilities,
    capacity: u64,
    allocated: AtomicU64,
    next_id: AtomicU64,
    submitted: AtomicU64,
    completed: AtomicU64,
    hold_completion: AtomicBool,
    allocations: AtomicU64,
    zero_copy: bool,
    transfers: TransferCounters,
}

impl Default for HostBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl HostBackend {
    /// A host backend with a 1 GiB largest buffer, a 4 GiB budget and no capacity limit.
    pub fn new() -> Self {
        Self::with_capacity(u64::MAX)
    }

    /// A host backend that fails allocation with [`Error::OutOfMemory`] once `capacity` bytes
    /// are allocated, as a device would when its memory is full.
    pub fn with_capacity(capacity: u64) -> Self {
        Self {
            adapter: AdapterDescription {
                name: "host memory".into(),
                api: "Host".into(),
                device_type: "Cpu".into(),
                driver: String::new(),
            },
            caps: Capabilities {
                max_buffer_size: 1 << 30,
                max_storage_binding_size: 1 << 30,
                copy_alignment: 4,
                storage_offset_alignment: 256,
                memory_budget: capacity.min(super::DEFAULT_MEMORY_BUDGET),
                budget_source: BudgetSource::Configured,
                unified_memory: true,
            },
            capacity,
            allocated: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            submitted: AtomicU64::new(0),
            completed: AtomicU64::new(0),
            hold_completion: AtomicBool::new(false),
            allocations: AtomicU64::new(0),
            zero_copy: false,
            transfers: TransferCounters::default(),
        }
    }

    /// Sets the budget reported in [`Capabilities::memory_budget`].
    pub fn with_budget(mut self, budget: u64) -> Self {
        self.caps.memory_budget = budget;
        self
    }

    /// Models zero-copy on unified memory: writes and reads made while no submission is in
    /// flight take [`TransferPath::Direct`] (a direct write is a host store, not a submission);
    /// the others take [`TransferPath::Staged`], as without it. Off by default.
    pub fn with_zero_copy(mut self, on: bool) -> Self {
        self.zero_copy = on;
        self
    }

    /// How many writes and reads took each path.
    pub fn transfer_counts(&self) -> TransferCounts {
        self.transfers.snapshot()
    }

    /// Sets the largest single buffer.
    pub fn with_max_buffer_size(mut self, max: u64) -> Self {
        self.caps.max_buffer_size = max;
        self.caps.max_storage_binding_size = max;
        self
    }

    /// While held, work "submitted" by writes and copies does not complete until
    /// [`HostBackend::complete_all`] or [`Backend::wait_idle`]; models a busy GPU.
    pub fn hold_completion(&self, hold: bool) {
        self.hold_completion.store(hold, Ordering::SeqCst);
        if !hold {
            self.complete_all();
        }
    }

    /// Marks all submitted work complete.
    pub fn complete_all(&self) {
        self.completed
            .store(self.submitted.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Bytes currently allocated through this backend.
    pub fn allocated_bytes(&self) -> u64 {
        self.allocated.load(Ordering::SeqCst)
    }

    /// Number of `allocate` calls that succeeded.
    pub fn allocation_count(&self) -> u64 {
        self.allocations.load(Ordering::SeqCst)
    }

    /// A write that takes `path`: a staged one is a submission, a direct one a host store.
    fn write_by(
        &self,
        buffer: &HostBuffer,
        offset: u64,
        data: &[u8],
        path: TransferPath,
    ) -> Result<()> {
        let len = data.len() as u64;
        check_aligned("write", offset, len, self.caps.copy_alignment)?;
        let mut bytes = lock(&buffer.bytes);
        check_range("write", offset, len, bytes.len() as u64)?;
        bytes[offset as usize..(offset + len) as usize].copy_from_slice(data);
        if path == TransferPath::Staged {
            self.submit();
        }
        self.transfers.write(path);
        Ok(())
    }

    /// The path a write or read takes now.
    fn path(&self) -> TransferPath {
        choose_path(
            self.zero_copy,
            self.submitted.load(Ordering::SeqCst),
            self.completed.load(Ordering::SeqCst),
        )
    }

    fn submit(&self) {
        let index = self.submitted.fetch_add(1, Ordering::SeqCst) + 1;
        if !self.hold_completion.load(Ordering::SeqCst) {
            self.completed.fetch_max(index, Ordering::SeqCst);
        }
    }
}

impl Backend for HostBackend {
    type Buffer = HostBuffer;

    fn name(&self) -> &'static str {
        "host"
    }

    fn adapter(&self) -> &AdapterDescription {
        &self.adapter
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn allocate(&self, size: u64, usage: BufferUsage) -> Result<HostBuffer> {
        if let BufferUsage::Custom(flags) = usage {
            super::usage::check_named(flags)?;
        }
        let size = checked_allocation_size(size, &self.caps)?;
        let reserved = self
            .allocated
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |now| {
                now.checked_add(size)
                    .filter(|total| *total <= self.capacity)
            });
        if let Err(now) = reserved {
            return Err(super::device_out_of_memory(
                size,
                format!("host capacity {} bytes, {} in use", self.capacity, now),
            ));
        }
        self.allocations.fetch_add(1, Ordering::Relaxed);
        Ok(HostBuffer {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            bytes: Mutex::new(vec![0u8; size as usize].into_boxed_slice()),
        })
    }

    fn free(&self, buffer: HostBuffer) {
        let size = buffer
            .bytes
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u64;
        self.allocated.fetch_sub(size, Ordering::SeqCst);
    }

    fn size(&self, buffer: &HostBuffer) -> u64 {
        lock(&buffer.bytes).len() as u64
    }

    fn write(&self, buffer: &HostBuffer, offset: u64, data: &[u8]) -> Result<()> {
        self.write_by(buffer, offset, data, self.path())
    }

    /// No submission uses the buffer: with zero-copy it is mapped even while work is in flight.
    fn write_unused(&self, buffer: &HostBuffer, offset: u64, data: &[u8]) -> Result<()> {
        let path = choose_path(self.zero_copy, 0, 0);
        self.write_by(buffer, offset, data, path)
    }

    fn read(&self, buffer: &HostBuffer, offset: u64, out: &mut [u8]) -> Result<()> {
        let bytes = lock(&buffer.bytes);
        let len = out.len() as u64;
        check_range("read", offset, len, bytes.len() as u64)?;
        out.copy_from_slice(&bytes[offset as usize..(offset + len) as usize]);
        self.transfers.read(self.path());
        Ok(())
    }

    fn copy(
        &self,
        src: &HostBuffer,
        src_offset: u64,
        dst: &HostBuffer,
        dst_offset: u64,
        len: u64,
    ) -> Result<()> {
        if src.id == dst.id {
            return Err(Error::SameBuffer);
        }
        check_aligned("copy source", src_offset, len, self.caps.copy_alignment)?;
        check_aligned(
            "copy destination",
            dst_offset,
            len,
            self.caps.copy_alignment,
        )?;
        // Lock in id order so two threads copying a->b and b->a cannot deadlock.
        let (first, second) = if src.id < dst.id {
            (src, dst)
        } else {
            (dst, src)
        };
        let a = lock(&first.bytes);
        let b = lock(&second.bytes);
        let (s, mut d) = if src.id < dst.id { (a, b) } else { (b, a) };
        check_range("copy source", src_offset, len, s.len() as u64)?;
        check_range("copy destination", dst_offset, len, d.len() as u64)?;
        let (so, dof, n) = (src_offset as usize, dst_offset as usize, len as usize);
        d[dof..dof + n].copy_from_slice(&s[so..so + n]);
        self.submit();
        Ok(())
    }

    fn last_submission(&self) -> SubmissionIndex {
        self.submitted.load(Ordering::SeqCst)
    }

    fn completed_submission(&self) -> SubmissionIndex {
        self.completed.load(Ordering::SeqCst)
    }

    fn wait_idle(&self) -> Result<()> {
        self.complete_all();
        Ok(())
    }
}
