//! [`WgpuBackend`]: the [`Backend`] trait over a wgpu device (Metal, Vulkan, DX12, GL).
//!
//! Besides buffers, it owns the one command encoder that kernels record into
//! ([`WgpuBackend::encode`]) and submits it as one batch ([`WgpuBackend::flush`]), so a training
//! step costs few submits. Every submit gets a [`SubmissionIndex`]; a callback from
//! `on_submitted_work_done` advances the completed index, which is what lets the pool reuse a
//! buffer only once the GPU is done with it.
//!
//! The device is wgmem's own ([`WgpuBackend::new`], [`WgpuBackend::with_options`]) or the
//! application's ([`WgpuBackend::from_device`], in `device.rs` with the submission contract for
//! work the application records itself).

mod budget;
mod coop;
mod device;
mod faults;
mod mapping;
mod select;
mod usage_map;
mod zero_copy;

pub use coop::CoopMode;
pub use device::DeviceSignals;
pub(crate) use mapping::MapRequest;

use super::{
    AdapterDescription, Backend, BufferUsage, Capabilities, SubmissionIndex, check_aligned,
    check_range, checked_allocation_size,
};
use crate::error::{Error, Result};
use crate::sync::lock;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Largest readback staging buffer; larger reads go through it in chunks.
const STAGING_CHUNK: u64 = 16 << 20;

/// Options for creating a [`WgpuBackend`]. Environment variables fill what is left `None`.
#[derive(Debug, Clone, Default)]
pub struct WgpuBackendOptions {
    /// Backends to consider; `None` reads `WGMEM_BACKEND` / `WGPU_BACKEND`, else all.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name; `None` reads `WGMEM_ADAPTER` /
    /// `WGPU_ADAPTER_NAME`, else the best adapter is taken.
    pub adapter_name: Option<String>,
    /// Memory budget in bytes; `None` reads `WGMEM_MEMORY_BUDGET`, then the platform
    /// (Metal), then [`super::DEFAULT_MEMORY_BUDGET`].
    pub memory_budget: Option<u64>,
    /// Commands recorded before the batch is submitted on its own (default
    /// [`DEFAULT_FLUSH_EVERY`]); reads, writes and [`WgpuBackend::flush`] submit earlier.
    pub flush_every: Option<u64>,
    /// Map storage buffers directly for writes and reads on unified memory (see
    /// [`WgpuBackend::zero_copy`]); `None` reads `WGMEM_ZERO_COPY` (`0` turns it off), else on
    /// where the adapter allows it.
    pub zero_copy: Option<bool>,
    /// Cooperative-matrix matmul kernels; `None` reads `WGMEM_COOP` (`auto`, `on`, `off`),
    /// else [`CoopMode::Auto`].
    pub cooperative_matrix: Option<CoopMode>,
}

/// Default number of recorded commands per automatic submit.
pub const DEFAULT_FLUSH_EVERY: u64 = 24;

/// The wgpu implementation of [`Backend`].
pub struct WgpuBackend {
    /// The adapter wgmem chose; `None` on a device the application handed over.
    adapter: Option<wgpu::Adapter>,
    coop_mode: CoopMode,
    device: wgpu::Device,
    queue: wgpu::Queue,
    description: AdapterDescription,
    caps: Capabilities,
    pending: Mutex<Option<wgpu::CommandEncoder>>,
    has_pending: AtomicBool,
    submitted: AtomicU64,
    /// wgpu's index of each recent submission, by ours (see [`Self::wait_for`]).
    recent: Mutex<VecDeque<(SubmissionIndex, wgpu::SubmissionIndex)>>,
    completed: Arc<AtomicU64>,
    lost: Arc<Mutex<Option<String>>>,
    staging: Mutex<Option<wgpu::Buffer>>,
    buffers_created: AtomicU64,
    uncaptured: Arc<AtomicU64>,
    recorded: AtomicU64,
    flush_every: u64,
    zero_copy: zero_copy::ZeroCopy,
    /// Injected faults (tests only; a no-op without the `testing` feature).
    faults: faults::FaultHook,
}

impl std::fmt::Debug for WgpuBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgpuBackend")
            .field("adapter", &self.description)
            .field("capabilities", &self.caps)
            .finish_non_exhaustive()
    }
}

impl WgpuBackend {
    /// Creates a backend on the best adapter, honouring the environment overrides.
    pub fn new() -> Result<Self> {
        Self::with_options(WgpuBackendOptions::default())
    }

    /// Creates a backend with explicit options, on a device of its own (see
    /// [`Self::from_device`] for running on the application's device). Installs the device's
    /// lost and uncaptured-error callbacks, which no one else owns here.
    pub fn with_options(options: WgpuBackendOptions) -> Result<Self> {
        let backends = options.backends.unwrap_or_else(|| {
            select::backends_from_env(wgpu::Backends::all() - wgpu::Backends::BROWSER_WEBGPU)
        });
        let name = options
            .adapter_name
            .clone()
            .or_else(select::adapter_name_from_env);
        let adapter = select::select_adapter(backends, name.as_deref())?;
        let info = adapter.get_info();
        let coop_mode = options
            .cooperative_matrix
            .unwrap_or_else(CoopMode::from_env);
        let (required_features, coop) = coop::features(adapter.features(), coop_mode);
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgmem"),
            // Timestamp queries let the profiler time kernels; SHADER_F16 lets tensors be f16
            // (DType::F16); subgroups and cooperative matrices serve the cooperative-matrix
            // matmul. All only where the adapter offers them. Zero-copy on unified memory adds
            // what it needs (`zero_copy.rs`).
            required_features: required_features | zero_copy::wanted_features(&adapter),
            required_limits: adapter.limits(),
            experimental_features: coop::experimental(coop),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| Error::DeviceRequest {
            adapter: select::describe(&info),
            reason: e.to_string(),
        })?;

        let backend = Self::assemble(Some(adapter), device, queue, &options)?;
        backend.install_callbacks();
        Ok(backend)
    }

    /// The backend over `device`, with `adapter` when wgmem chose it. Reads limits, features
    /// and adapter information from the device and installs nothing on it (`device.rs`).
    fn assemble(
        adapter: Option<wgpu::Adapter>,
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: &WgpuBackendOptions,
    ) -> Result<Self> {
        let info = device.adapter_info();
        let lost = Arc::new(Mutex::new(None));
        let uncaptured = Arc::new(AtomicU64::new(0));

        let limits = device.limits();
        let (memory_budget, budget_source, unified) =
            budget::resolve(options.memory_budget, &device)?;
        let unified_memory = unified.unwrap_or(matches!(
            info.device_type,
            wgpu::DeviceType::IntegratedGpu | wgpu::DeviceType::Cpu
        ));
        let caps = Capabilities {
            max_buffer_size: limits.max_buffer_size,
            max_storage_binding_size: limits.max_storage_buffer_binding_size,
            copy_alignment: wgpu::COPY_BUFFER_ALIGNMENT,
            storage_offset_alignment: u64::from(limits.min_storage_buffer_offset_alignment),
            memory_budget,
            budget_source,
            unified_memory,
        };
        let description = AdapterDescription {
            name: info.name.clone(),
            api: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info)
                .trim()
                .to_string(),
        };
        let zero_copy =
            zero_copy::ZeroCopy::new(zero_copy::enabled(options.zero_copy, &caps, &device)?);
        log::info!(
            "wgmem: using {description}, budget {memory_budget} bytes ({budget_source:?}), \
             zero-copy {}",
            zero_copy.on
        );
        // On the application's device the mode still applies, but the kernels run only where
        // that device was created with cooperative matrices (and wgmem knows the adapter).
        let coop_mode = options
            .cooperative_matrix
            .unwrap_or_else(CoopMode::from_env);
        Ok(Self {
            adapter,
            device,
            queue,
            description,
            coop_mode,
            caps,
            pending: Mutex::new(None),
            has_pending: AtomicBool::new(false),
            submitted: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            completed: Arc::new(AtomicU64::new(0)),
            lost,
            staging: Mutex::new(None),
            buffers_created: AtomicU64::new(0),
            uncaptured,
            recorded: AtomicU64::new(0),
            flush_every: options.flush_every.unwrap_or(DEFAULT_FLUSH_EVERY).max(1),
            zero_copy,
            faults: faults::FaultHook::new(),
        })
    }

    /// The wgpu device, for kernels and pipelines.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The wgpu queue.
    ///
    /// # The submission contract
    /// wgmem does not see what is submitted here directly. Work that uses pooled buffers must
    /// reach wgmem before their [`ManagedBuffer`](crate::ManagedBuffer)s drop, or a buffer may be
    /// handed out again while that work still runs: record it with [`Self::encode`], submit it
    /// with [`Self::submit`] (which submits wgmem's pending batch first), or, after
    /// [`Self::flush`] and your own `queue.submit`, report it with [`Self::track_submission`].
    /// Writes with `queue.write_buffer` are ordered before the *next* submission, so call
    /// [`Self::flush`] first when wgmem work recorded earlier must see the old contents.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// The wgpu adapter, when wgmem chose it; `None` for [`Self::from_device`] (the device's
    /// [`Self::adapter_info`] is known either way).
    pub fn wgpu_adapter(&self) -> Option<&wgpu::Adapter> {
        self.adapter.as_ref()
    }

    /// Whether cooperative-matrix kernels may be used ([`WgpuBackendOptions::cooperative_matrix`]).
    pub fn coop_mode(&self) -> CoopMode {
        self.coop_mode
    }

    /// How many `create_buffer` calls this backend has made (allocations plus staging).
    /// A training step in the steady state should leave this unchanged.
    pub fn buffers_created(&self) -> u64 {
        self.buffers_created.load(Ordering::Relaxed)
    }

    /// How many wgpu errors were raised outside any error scope (validation errors of
    /// submitted work). Each is logged; a correct program leaves this at 0.
    pub fn uncaptured_errors(&self) -> u64 {
        self.uncaptured.load(Ordering::Relaxed)
    }

    /// Records GPU commands into the pending batch. They run at the next [`Self::flush`]
    /// (or before the next read or write, which flush first).
    pub fn encode<R>(&self, record: impl FnOnce(&mut wgpu::CommandEncoder) -> R) -> Result<R> {
        self.check_lost()?;
        let mut pending = lock(&self.pending);
        self.has_pending.store(true, Ordering::SeqCst);
        let encoder = pending.get_or_insert_with(|| {
            self.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("wgmem batch"),
                })
        });
        let result = record(encoder);
        drop(pending);
        // Submit long batches in pieces so the GPU starts while the host is still recording
        // (recording a dispatch costs microseconds; a submit tens of microseconds).
        let recorded = self.recorded.fetch_add(1, Ordering::Relaxed) + 1;
        if recorded >= self.flush_every {
            self.flush()?;
        }
        Ok(result)
    }

    /// Submits the pending batch, if any, and returns the index of the latest submission.
    pub fn flush(&self) -> Result<SubmissionIndex> {
        self.check_lost()?;
        // Hold the lock until the batch is submitted: otherwise another thread's flush (or a
        // read's staging copy, which follows a flush) could reach the queue first and run
        // before commands recorded earlier.
        let mut pending = lock(&self.pending);
        if let Some(encoder) = pending.take() {
            // An injected loss drops the batch, as a real one would.
            self.faults.submit()?;
            self.submit_batch([encoder.finish()]);
        }
        self.recorded.store(0, Ordering::Relaxed);
        self.has_pending.store(false, Ordering::SeqCst);
        drop(pending);
        Ok(self.submitted.load(Ordering::SeqCst))
    }

    fn submit_batch(
        &self,
        commands: impl IntoIterator<Item = wgpu::CommandBuffer>,
    ) -> SubmissionIndex {
        // This submit carries every queue write made before it.
        self.zero_copy.queued_writes.store(false, Ordering::SeqCst);
        let theirs = self.queue.submit(commands);
        self.record_submission(theirs)
    }

    /// Gives wgpu's submission `theirs` the next index of ours, and advances the completed
    /// index once the GPU has finished it (and everything submitted before it).
    fn record_submission(&self, theirs: wgpu::SubmissionIndex) -> SubmissionIndex {
        let index = self.submitted.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut recent = lock(&self.recent);
            if recent.len() == mapping::RECENT_SUBMISSIONS {
                recent.pop_front();
            }
            recent.push_back((index, theirs));
        }
        let completed = Arc::clone(&self.completed);
        self.queue.on_submitted_work_done(move || {
            completed.fetch_max(index, Ordering::SeqCst);
        });
        index
    }

    fn check_lost(&self) -> Result<()> {
        self.faults.check_lost()?;
        match &*lock(&self.lost) {
            Some(reason) => Err(Error::DeviceLost {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// A failed map is [`Error::DeviceLost`] when the device was lost meanwhile (wgpu reports
    /// the loss through its callback, which runs during the wait that precedes the map), so
    /// the caller sees the cause it must act on rather than its symptom.
    fn map_error(&self, e: impl std::fmt::Display) -> Error {
        match self.check_lost() {
            Err(lost) => lost,
            Ok(()) => Error::Map(e.to_string()),
        }
    }

    fn wait(&self) -> Result<()> {
        self.poll_wait(wgpu::PollType::wait_indefinitely())
    }

    /// Polls the device with `poll`; a failed wait means the device is gone.
    fn poll_wait(&self, poll: wgpu::PollType) -> Result<()> {
        self.device
            .poll(poll)
            .map(|_| ())
            .map_err(|e| Error::DeviceLost {
                reason: e.to_string(),
            })
    }

    fn create_buffer(
        &self,
        size: u64,
        usage: wgpu::BufferUsages,
        label: &str,
    ) -> Result<wgpu::Buffer> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: false,
        });
        if let Some(error) = pollster::block_on(scope.pop()) {
            buffer.destroy();
            return Err(super::device_out_of_memory(size, error.to_string()));
        }
        self.buffers_created.fetch_add(1, Ordering::Relaxed);
        Ok(buffer)
    }

    /// `write` and `write_unused`: mapped where `zero_copy.rs` allows, else through the queue.
    fn write_checked(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        data: &[u8],
        unused: bool,
    ) -> Result<()> {
        let len = data.len() as u64;
        check_usage("write", buffer, wgpu::BufferUsages::COPY_DST)?;
        check_aligned("write", offset, len, self.caps.copy_alignment)?;
        check_range("write", offset, len, buffer.size())?;
        self.faults.transfer("write")?;
        // Queue writes run before the next submit's commands, so earlier recorded commands
        // must be submitted first to keep program order. An unused buffer is in no recorded
        // command, so its mapped write needs no flush.
        if unused {
            if self.write_direct(buffer, offset, data, true)? {
                return Ok(());
            }
            self.flush()?;
        } else {
            self.flush()?;
            if self.write_direct(buffer, offset, data, false)? {
                return Ok(());
            }
        }
        self.queue_write(buffer, offset, data);
        Ok(())
    }

    /// Reads one chunk (`len <= STAGING_CHUNK`, offset and len aligned to 4) through the
    /// reusable staging buffer.
    fn read_chunk(
        &self,
        buffer: &wgpu::Buffer,
        offset: u64,
        aligned_len: u64,
        take: impl FnOnce(&[u8]),
    ) -> Result<()> {
        let mut staging_slot = lock(&self.staging);
        if staging_slot.as_ref().is_none_or(|s| s.size() < aligned_len) {
            let size = aligned_len.next_power_of_two().clamp(4096, STAGING_CHUNK);
            *staging_slot = Some(self.create_buffer(
                size,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                "wgmem readback",
            )?);
        }
        let staging = staging_slot
            .as_ref()
            .expect("staging buffer was just created");
        // Through the pending batch, never a submit of its own: every submission index must
        // cover all work recorded before it, or a buffer released while its work is still
        // recorded could be judged complete (and reused) by an unrelated submission.
        self.encode(|encoder| {
            encoder.copy_buffer_to_buffer(buffer, offset, staging, 0, aligned_len)
        })?;
        self.flush()?;
        let request = self.request_map(staging, aligned_len, wgpu::MapMode::Read);
        self.wait_map(request)?;
        {
            let view = staging
                .slice(..aligned_len)
                .get_mapped_range()
                .map_err(|e| self.map_error(e))?;
            take(&view);
        }
        staging.unmap();
        Ok(())
    }
}

impl Backend for WgpuBackend {
    type Buffer = wgpu::Buffer;

    fn name(&self) -> &'static str {
        "wgpu"
    }

    fn adapter(&self) -> &AdapterDescription {
        &self.description
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn allocate(&self, size: u64, usage: BufferUsage) -> Result<wgpu::Buffer> {
        self.check_lost()?;
        let size = checked_allocation_size(size, &self.caps)?;
        self.faults.allocate(size)?;
        let usages = match usage {
            BufferUsage::Storage => {
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST
                    | self.zero_copy.storage_usages()
            }
            BufferUsage::Uniform => wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            BufferUsage::Readback => wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            BufferUsage::Upload => wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
            BufferUsage::Custom(flags) => return self.allocate_custom(size, flags),
        };
        self.create_buffer(size, usages, "wgmem buffer")
    }

    fn free(&self, buffer: wgpu::Buffer) {
        // Dropping (not destroying) lets wgpu keep the memory alive until recorded and
        // in-flight work that uses it has completed; `destroy` would invalidate a batch that
        // is recorded but not yet submitted.
        drop(buffer);
    }

    fn size(&self, buffer: &wgpu::Buffer) -> u64 {
        buffer.size()
    }

    fn write(&self, buffer: &wgpu::Buffer, offset: u64, data: &[u8]) -> Result<()> {
        self.write_checked(buffer, offset, data, false)
    }

    fn write_unused(&self, buffer: &wgpu::Buffer, offset: u64, data: &[u8]) -> Result<()> {
        self.write_checked(buffer, offset, data, true)
    }

    fn read(&self, buffer: &wgpu::Buffer, offset: u64, out: &mut [u8]) -> Result<()> {
        let len = out.len() as u64;
        check_usage("read", buffer, wgpu::BufferUsages::COPY_SRC)?;
        check_range("read", offset, len, buffer.size())?;
        self.flush()?;
        self.faults.transfer("read")?;
        if self.read_direct(buffer, offset, out)? {
            return Ok(());
        }
        let mut done = 0u64;
        while done < len {
            let start = offset + done;
            let aligned_start = start - start % self.caps.copy_alignment;
            let lead = start - aligned_start;
            let chunk = (len - done).min(STAGING_CHUNK - lead);
            let aligned_len = (lead + chunk)
                .next_multiple_of(self.caps.copy_alignment)
                .min(buffer.size() - aligned_start);
            let dst = &mut out[done as usize..(done + chunk) as usize];
            self.read_chunk(buffer, aligned_start, aligned_len, |view| {
                dst.copy_from_slice(&view[lead as usize..(lead + chunk) as usize]);
            })?;
            done += chunk;
        }
        Ok(())
    }

    fn copy(
        &self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        len: u64,
    ) -> Result<()> {
        if src == dst {
            return Err(Error::SameBuffer);
        }
        check_usage("copy source", src, wgpu::BufferUsages::COPY_SRC)?;
        check_usage("copy destination", dst, wgpu::BufferUsages::COPY_DST)?;
        check_aligned("copy source", src_offset, len, self.caps.copy_alignment)?;
        check_aligned(
            "copy destination",
            dst_offset,
            len,
            self.caps.copy_alignment,
        )?;
        check_range("copy source", src_offset, len, src.size())?;
        check_range("copy destination", dst_offset, len, dst.size())?;
        self.encode(|encoder| encoder.copy_buffer_to_buffer(src, src_offset, dst, dst_offset, len))
    }

    /// Covers work recorded into the pending batch too: that batch will be submitted under
    /// the next index.
    fn last_submission(&self) -> SubmissionIndex {
        let recorded = u64::from(self.has_pending.load(Ordering::SeqCst));
        self.submitted.load(Ordering::SeqCst) + recorded
    }

    /// Polls the device only when some submitted work is not yet known to be complete, so
    /// the common idle case is two atomic loads.
    fn completed_submission(&self) -> SubmissionIndex {
        let completed = self.completed.load(Ordering::SeqCst);
        if completed >= self.submitted.load(Ordering::SeqCst) {
            return completed;
        }
        let _ = self.device.poll(wgpu::PollType::Poll);
        self.completed.load(Ordering::SeqCst)
    }

    fn wait_idle(&self) -> Result<()> {
        self.flush()?;
        self.wait()
    }

    fn device_allocated_bytes(&self) -> Option<u64> {
        budget::device_allocated(&self.device)
    }
}

/// A typed error when `buffer` lacks the usage `what` needs: staging buffers
/// ([`BufferUsage::Readback`], [`BufferUsage::Upload`]) are mapped, not read or written.
fn check_usage(
    what: &'static str,
    buffer: &wgpu::Buffer,
    needed: wgpu::BufferUsages,
) -> Result<()> {
    if buffer.usage().contains(needed) {
        return Ok(());
    }
    Err(Error::invalid(
        what,
        format!(
            "the buffer's usage {:?} lacks {needed:?}; staging buffers (Readback, Upload) \
             are mapped by the exchange, not read, written or copied through the Backend",
            buffer.usage()
        ),
    ))
}
