//! Zero-copy writes and reads on unified memory: storage buffers the host maps directly.
//!
//! On a discrete GPU a write goes through the queue's staging memory and a GPU copy, and a read
//! through a readback buffer and a GPU copy. On unified memory (Apple Silicon, integrated GPUs,
//! lavapipe) the GPU's memory is the host's, and with `MAPPABLE_PRIMARY_BUFFERS` a storage
//! buffer can also be `MAP_READ | MAP_WRITE`: the host maps it and copies the bytes itself,
//! with no staging buffer and no GPU copy. Every write and read of the [`crate::Backend`]
//! trait (and so tensor uploads, dataset uploads and the trainer's batch copies) takes this
//! path when it is allowed:
//! - zero-copy is on: unified memory, the feature granted, and not turned off
//!   ([`super::WgpuBackendOptions::zero_copy`], `WGMEM_ZERO_COPY=0`);
//! - no submission is in flight ([`crate::backend::TransferPath`]: the backend does not see
//!   which buffers a kernel binds, so it waits for none of them). A write made while work is in
//!   flight goes through the queue as before, unless it is a `write_unused` (a pooled buffer not
//!   yet lent to a kernel: every upload of a tensor or a batch), which maps at once; a read
//!   waits for the work first (reads wait anyway), then maps;
//! - no queued write is waiting for a submit (it would land after the mapped write);
//! - a write's offset is a multiple of `MAP_ALIGNMENT` (8).
//!
//! Direct maps are made one at a time. Two threads reading or writing the *same* buffer at
//! once could still meet a mapped buffer in the staged path (a wgpu validation error); wgmem
//! itself never does that, and for the caller it is a data race either way.
//!
//! The feature is asked for only on adapters that report an integrated GPU or a CPU: on a
//! discrete GPU mappable storage buffers would live in host memory and slow every kernel.
//! On Metal a buffer with `MAP_WRITE` is created write-combined, which makes the host's reads of
//! it slow; whether direct reads still beat staging there is what `benches/apple.sh` measures.

use super::WgpuBackend;
use crate::backend::transfer::{TransferCounters, choose_path};
use crate::backend::{Backend, Capabilities, TransferCounts, TransferPath};
use crate::error::{Error, Result};
use crate::sync::lock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

/// The feature zero-copy needs, when the adapter offers it and is unified (integrated or CPU).
pub(super) fn wanted_features(adapter: &wgpu::Adapter) -> wgpu::Features {
    let unified = matches!(
        adapter.get_info().device_type,
        wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::Cpu
    );
    if unified {
        adapter.features() & wgpu::Features::MAPPABLE_PRIMARY_BUFFERS
    } else {
        wgpu::Features::empty()
    }
}

/// Whether zero-copy is on: asked for (`requested`, else `WGMEM_ZERO_COPY`, else yes), unified
/// memory, and the device has the feature.
pub(super) fn enabled(
    requested: Option<bool>,
    caps: &Capabilities,
    device: &wgpu::Device,
) -> Result<bool> {
    let wanted = match requested {
        Some(on) => on,
        None => match std::env::var("WGMEM_ZERO_COPY") {
            Ok(text) => parse_switch(&text)?,
            Err(_) => true,
        },
    };
    let offered = device
        .features()
        .contains(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS);
    Ok(wanted && caps.unified_memory && offered)
}

/// `1`/`on`/`true`/`yes` or `0`/`off`/`false`/`no`.
fn parse_switch(text: &str) -> Result<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" => Ok(true),
        "0" | "off" | "false" | "no" => Ok(false),
        other => Err(Error::invalid(
            "WGMEM_ZERO_COPY",
            format!("'{other}' is not a switch; use 1 or 0 (on, off)"),
        )),
    }
}

/// The zero-copy state of one backend.
#[derive(Debug, Default)]
pub(super) struct ZeroCopy {
    pub(super) on: bool,
    /// A queue write (`write_buffer`) is waiting for the next submit.
    pub(super) queued_writes: AtomicBool,
    /// One direct map at a time: two maps of one buffer would conflict.
    maps: Mutex<()>,
    pub(super) counts: TransferCounters,
}

impl ZeroCopy {
    pub(super) fn new(on: bool) -> Self {
        ZeroCopy {
            on,
            ..Self::default()
        }
    }

    /// The usages storage buffers get besides their own.
    pub(super) fn storage_usages(&self) -> wgpu::BufferUsages {
        if self.on {
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::MAP_WRITE
        } else {
            wgpu::BufferUsages::empty()
        }
    }
}

impl WgpuBackend {
    /// Whether writes and reads map storage buffers directly when nothing is in flight (see
    /// the module docs of `zero_copy`: unified memory with `MAPPABLE_PRIMARY_BUFFERS`).
    pub fn zero_copy(&self) -> bool {
        self.zero_copy.on
    }

    /// How many writes and reads took each path.
    pub fn transfer_counts(&self) -> TransferCounts {
        self.zero_copy.counts.snapshot()
    }

    /// Whether `buffer` may be mapped for `needed` at all: zero-copy on, the usage present,
    /// and no queue write waiting for a submit (it would land after the mapped bytes).
    fn mappable(&self, buffer: &wgpu::Buffer, needed: wgpu::BufferUsages) -> bool {
        self.zero_copy.on
            && buffer.usage().contains(needed)
            && !self.zero_copy.queued_writes.load(Ordering::SeqCst)
    }

    /// The path a transfer on `buffer` may take now (after the caller's flush).
    fn transfer_path(&self, buffer: &wgpu::Buffer, needed: wgpu::BufferUsages) -> TransferPath {
        choose_path(
            self.mappable(buffer, needed),
            self.last_submission(),
            self.completed_submission(),
        )
    }

    /// The path for a buffer no submission uses: work in flight does not matter.
    fn transfer_path_unused(
        &self,
        buffer: &wgpu::Buffer,
        needed: wgpu::BufferUsages,
    ) -> TransferPath {
        choose_path(self.mappable(buffer, needed), 0, 0)
    }

    /// The staged write: through the queue, which copies it before the next submission's
    /// commands. Marks the queue write pending, so no mapped write overtakes it.
    pub(super) fn queue_write(&self, buffer: &wgpu::Buffer, offset: u64, data: &[u8]) {
        self.zero_copy.queued_writes.store(true, Ordering::SeqCst);
        self.queue.write_buffer(buffer, offset, data);
    }

    /// Writes `data` at `offset` by mapping `buffer`, when allowed; `Ok(false)` when the
    /// caller must take the staged path ([`Self::queue_write`]). Call after the checks of
    /// `write`, and after its flush unless `unused` (no submission uses the buffer: then work
    /// in flight does not keep it from being mapped).
    pub(super) fn write_direct(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        data: &[u8],
        unused: bool,
    ) -> Result<bool> {
        let _one_map = lock(&self.zero_copy.maps);
        let path = if data.is_empty() || offset % wgpu::MAP_ALIGNMENT != 0 {
            TransferPath::Staged
        } else if unused {
            self.transfer_path_unused(buffer, wgpu::BufferUsages::MAP_WRITE)
        } else {
            self.transfer_path(buffer, wgpu::BufferUsages::MAP_WRITE)
        };
        self.zero_copy.counts.write(path);
        if path == TransferPath::Staged {
            return Ok(false);
        }
        let range = offset..offset + data.len() as u64;
        self.map_now(buffer, range.clone(), wgpu::MapMode::Write)?;
        {
            let mut view = buffer
                .slice(range)
                .get_mapped_range_mut()
                .map_err(|e| self.map_error(e))?;
            view.copy_from_slice(data);
        }
        buffer.unmap();
        Ok(true)
    }

    /// Reads `out.len()` bytes at `offset` by mapping `buffer`, when allowed; `Ok(false)` when
    /// the caller must take the staged path. Call after the flush and the checks of `read`.
    pub(super) fn read_direct(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        out: &mut [u8],
    ) -> Result<bool> {
        let mappable = self.zero_copy.on
            && !out.is_empty()
            && buffer.usage().contains(wgpu::BufferUsages::MAP_READ);
        if mappable {
            // A read waits for the work before it anyway; waiting here lets it map afterwards.
            self.wait_for(self.submitted.load(Ordering::SeqCst))?;
        }
        let _one_map = lock(&self.zero_copy.maps);
        let path = if mappable {
            self.transfer_path(buffer, wgpu::BufferUsages::MAP_READ)
        } else {
            TransferPath::Staged
        };
        self.zero_copy.counts.read(path);
        if path == TransferPath::Staged {
            return Ok(false);
        }
        let len = out.len() as u64;
        let start = offset - offset % wgpu::MAP_ALIGNMENT;
        let end = (offset + len)
            .next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
            .min(buffer.size());
        self.map_now(buffer, start..end, wgpu::MapMode::Read)?;
        {
            let view = buffer
                .slice(start..end)
                .get_mapped_range()
                .map_err(|e| self.map_error(e))?;
            let lead = (offset - start) as usize;
            out.copy_from_slice(&view[lead..lead + out.len()]);
        }
        buffer.unmap();
        Ok(true)
    }

    /// Maps `range` of `buffer`, which no submission in flight uses, and waits for the grant.
    /// wgpu grants such a map at the next poll of the device, which need not wait for the
    /// work in flight; only if it has not (the buffer was in use after all) does this wait.
    fn map_now(
        &self,
        buffer: &wgpu::Buffer,
        range: std::ops::Range<u64>,
        mode: wgpu::MapMode,
    ) -> Result<()> {
        let (tx, granted) = mpsc::channel();
        buffer.slice(range).map_async(mode, move |r| {
            let _ = tx.send(r);
        });
        self.poll_wait(wgpu::PollType::Poll)?;
        let result = match granted.try_recv() {
            Ok(result) => result,
            Err(_) => {
                self.wait()?;
                granted
                    .recv()
                    .map_err(|_| self.map_error("the map callback never ran"))?
            }
        };
        result.map_err(|e| self.map_error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_switch;

    #[test]
    fn the_switch_reads_on_and_off_and_rejects_the_rest() {
        assert!(parse_switch(" ON ").unwrap());
        assert!(!parse_switch("0").unwrap());
        assert!(parse_switch("maybe").is_err());
    }
}
