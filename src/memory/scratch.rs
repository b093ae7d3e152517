//! Scratch memory: buffers for the length of a closure, and a [`Workspace`] of named buffers
//! that lives across steps.
//!
//! Both go through the pool, so after the first step they cost a pool hit (or nothing, for a
//! workspace slot that is already big enough) and never a backend allocation.

use super::managed::ManagedBuffer;
use super::manager::MemoryManager;
use crate::backend::{Backend, BufferUsage};
use crate::error::Result;
use std::panic::Location;

impl<B: Backend> MemoryManager<B> {
    /// Acquires `count` storage buffers of `size` bytes (tag `"scratch"`), runs `f` with
    /// them, and returns them to the pool afterwards, whatever `f` returns.
    #[track_caller]
    pub fn with_temporary_buffers<R>(
        &self,
        count: usize,
        size: u64,
        f: impl FnOnce(&[ManagedBuffer<B>]) -> R,
    ) -> Result<R> {
        let location = Location::caller();
        let buffers = (0..count)
            .map(|_| self.acquire_at(size, BufferUsage::Storage, "scratch", location))
            .collect::<Result<Vec<_>>>()?;
        Ok(f(&buffers))
    }
}

/// Named buffers reused across steps (matmul scratch, gradient accumulators). A slot keeps
/// its buffer while requests fit in it and is re-acquired only when a request outgrows it.
pub struct Workspace<B: Backend> {
    manager: MemoryManager<B>,
    tag: &'static str,
    slots: Vec<(&'static str, ManagedBuffer<B>)>,
}

impl<B: Backend> Workspace<B> {
    /// An empty workspace whose buffers are accounted under `tag`.
    pub fn new(manager: &MemoryManager<B>, tag: &'static str) -> Self {
        Self {
            manager: manager.clone(),
            tag,
            slots: Vec::new(),
        }
    }

    /// The buffer of slot `name`, at least `size` bytes.
    #[track_caller]
    pub fn buffer(&mut self, name: &'static str, size: u64) -> Result<&ManagedBuffer<B>> {
        let index = match self.slots.iter().position(|(n, _)| *n == name) {
            Some(i) if self.slots[i].1.size() >= size => i,
            found => {
                if let Some(i) = found {
                    // Give the small buffer back before taking the larger one.
                    self.slots.swap_remove(i);
                }
                let buffer = self.manager.acquire_at(
                    size,
                    BufferUsage::Storage,
                    self.tag,
                    Location::caller(),
                )?;
                self.slots.push((name, buffer));
                self.slots.len() - 1
            }
        };
        Ok(&self.slots[index].1)
    }

    /// Bytes held by the workspace.
    pub fn bytes(&self) -> u64 {
        self.slots.iter().map(|(_, b)| b.size()).sum()
    }

    /// Returns every buffer to the pool.
    pub fn clear(&mut self) {
        self.slots.clear();
    }
}
