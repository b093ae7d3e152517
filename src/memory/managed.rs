//! [`ManagedBuffer`]: the RAII handle of a buffer acquired from a
//! [`MemoryManager`](super::MemoryManager).
//!
//! Dropping it returns the buffer to the pool and updates the account. The raw buffer is
//! only ever lent out (`&B::Buffer` tied to the handle's lifetime), and release consumes the
//! handle, so a buffer cannot be used after release or released twice: the compiler rejects
//! both.

use super::manager::MemoryManager;
use super::pool::Pooled;
use crate::backend::{Backend, BufferUsage};
use crate::error::Result;
use crate::profile::SourceLocation;
use std::sync::atomic::{AtomicBool, Ordering};

/// A pooled, accounted buffer. See the module docs.
pub struct ManagedBuffer<B: Backend> {
    manager: MemoryManager<B>,
    pooled: Option<Pooled<B::Buffer>>,
    id: u64,
    requested: u64,
    tag: &'static str,
    location: SourceLocation,
    /// The raw buffer has been lent out (to a kernel, a copy): from then on a write must
    /// assume work in flight may use it. Until then it is unused (see
    /// [`Backend::write_unused`]).
    lent: AtomicBool,
}

impl<B: Backend> ManagedBuffer<B> {
    pub(super) fn new(
        manager: MemoryManager<B>,
        pooled: Pooled<B::Buffer>,
        id: u64,
        requested: u64,
        tag: &'static str,
        location: SourceLocation,
    ) -> Self {
        Self {
            manager,
            pooled: Some(pooled),
            id,
            requested,
            tag,
            location,
            lent: AtomicBool::new(false),
        }
    }

    fn pooled(&self) -> &Pooled<B::Buffer> {
        self.pooled.as_ref().expect("present until drop")
    }

    /// The backend buffer, borrowed for as long as the handle lives.
    ///
    /// # The submission contract
    /// Dropping the handle releases the buffer, stamped with the latest submission the backend
    /// knows of; it is reused only once that submission has completed. On
    /// [`WgpuBackend`](crate::WgpuBackend), GPU work you record yourself on this buffer must
    /// therefore reach wgmem *before* the handle drops: record it with
    /// [`WgpuBackend::encode`](crate::WgpuBackend::encode), submit it with
    /// [`WgpuBackend::submit`](crate::WgpuBackend::submit), or report your own `queue.submit`
    /// with [`WgpuBackend::track_submission`](crate::WgpuBackend::track_submission). A clone of
    /// the raw handle (`wgpu::Buffer` is `Clone`) kept past the drop sees the buffer's next owner
    /// write into it: don't keep one.
    pub fn raw(&self) -> &B::Buffer {
        self.lent.store(true, Ordering::Relaxed);
        &self.pooled().buffer
    }

    /// Bytes the buffer really has (its size class).
    pub fn size(&self) -> u64 {
        self.pooled().class
    }

    /// Bytes that were asked for.
    pub fn requested(&self) -> u64 {
        self.requested
    }

    /// The accounting tag.
    pub fn tag(&self) -> &'static str {
        self.tag
    }

    /// Where in the caller's code the buffer was acquired (the `#[track_caller]` location of
    /// `acquire`, `with_temporary_buffers`, `Workspace::buffer` or `prewarm`).
    pub fn location(&self) -> SourceLocation {
        self.location
    }

    /// The buffer's usage.
    pub fn usage(&self) -> BufferUsage {
        self.pooled().usage
    }

    /// A unique id for this acquisition (not reused).
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The manager this buffer belongs to.
    pub fn manager(&self) -> &MemoryManager<B> {
        &self.manager
    }

    /// Writes bytes at `offset` through the backend. Until the raw buffer is lent out
    /// ([`Self::raw`]) no GPU work can use it, so the write is [`Backend::write_unused`]: on
    /// unified memory it maps the buffer even while other work is in flight (a tensor's or a
    /// batch's upload).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        let buffer = &self.pooled().buffer;
        if self.lent.load(Ordering::Relaxed) {
            self.manager.backend().write(buffer, offset, data)
        } else {
            self.manager.backend().write_unused(buffer, offset, data)
        }
    }

    /// Reads bytes at `offset` through the backend (a read leaves no work in flight, so it
    /// does not count as lending the buffer out).
    pub fn read(&self, offset: u64, out: &mut [u8]) -> Result<()> {
        self.manager
            .backend()
            .read(&self.pooled().buffer, offset, out)
    }
}

impl<B: Backend> std::fmt::Debug for ManagedBuffer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedBuffer")
            .field("id", &self.id)
            .field("tag", &self.tag)
            .field("requested", &self.requested)
            .field("size", &self.size())
            .field("location", &self.location)
            .finish()
    }
}

impl<B: Backend> Drop for ManagedBuffer<B> {
    fn drop(&mut self) {
        if let Some(pooled) = self.pooled.take() {
            self.manager
                .release(pooled, self.id, self.requested, self.tag, self.location);
        }
    }
}
