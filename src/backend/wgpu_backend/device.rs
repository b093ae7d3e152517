//! wgmem on the application's own device: [`WgpuBackend::from_device`], the signals an
//! application forwards ([`DeviceSignals`]), and submissions of work the application records
//! itself ([`WgpuBackend::submit`], [`WgpuBackend::track_submission`]).
//!
//! A renderer, a simulation or an inference server already owns its `wgpu::Device` and `Queue`,
//! and with them the device's two global callbacks (device lost, uncaptured error), which wgpu
//! lets only one owner set. So `from_device` installs nothing: it reads the limits, features and
//! adapter information from the device and leaves the callbacks to the application, which
//! forwards what wgmem needs through a [`DeviceSignals`] handle. `new` and `with_options`, where
//! wgmem created the device itself, install the forwarding callbacks on their own.
//!
//! # The submission contract
//! A pooled buffer goes back to the pool when its [`ManagedBuffer`](crate::ManagedBuffer) drops,
//! stamped with the index of the latest submission wgmem knows of, and is reused only once that
//! submission has completed. Work the application records on a pooled buffer must therefore be
//! known to wgmem before the handle drops, in one of three ways:
//! 1. recorded into wgmem's batch with [`WgpuBackend::encode`];
//! 2. submitted with [`WgpuBackend::submit`], which submits wgmem's pending batch first (so the
//!    application's commands see every earlier wgmem kernel) and gives the whole submission an
//!    index;
//! 3. submitted by the application on [`WgpuBackend::queue`] after a [`WgpuBackend::flush`], and
//!    reported right away with [`WgpuBackend::track_submission`].
//!
//! Work submitted on the queue and never reported is invisible to the pool: a buffer it uses may
//! be handed out again while that work still runs.

use super::{WgpuBackend, WgpuBackendOptions};
use crate::backend::SubmissionIndex;
use crate::error::Result;
use crate::sync::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Where an application forwards the device's global signals to a [`WgpuBackend`] made with
/// [`WgpuBackend::from_device`]. Cheap to clone, `Send + Sync + 'static`, so it can be moved into
/// the application's own callbacks:
///
/// ```no_run
/// # fn demo(device: wgpu::Device, queue: wgpu::Queue) -> wgmem::Result<()> {
/// use std::sync::Arc;
/// let backend = wgmem::WgpuBackend::from_device(device.clone(), queue, Default::default())?;
/// let signals = backend.signals();
/// device.set_device_lost_callback(move |reason, message| {
///     // ... the application's own handling ...
///     signals.device_lost(reason, &message);
/// });
/// let signals = backend.signals();
/// device.on_uncaptured_error(Arc::new(move |error| {
///     // ... the application's own handling ...
///     signals.uncaptured_error(&error);
/// }));
/// # Ok(())
/// # }
/// ```
///
/// What wgmem does with them: after `device_lost`, every backend call fails with
/// [`Error::DeviceLost`](crate::Error::DeviceLost) instead of working on a dead device;
/// `uncaptured_error` is counted in [`WgpuBackend::uncaptured_errors`] (and logged), which the
/// tests and the trainer's health checks read. Without forwarding, wgmem still works; a loss is
/// then seen only as failed maps and polls.
#[derive(Clone, Debug)]
pub struct DeviceSignals {
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<AtomicU64>,
}

impl DeviceSignals {
    /// The device was lost: wgmem refuses further work with `Error::DeviceLost`.
    pub fn device_lost(&self, reason: wgpu::DeviceLostReason, message: &str) {
        log::error!("wgpu device lost ({reason:?}): {message}");
        *lock(&self.lost) = Some(format!("{reason:?}: {message}"));
    }

    /// An error was raised outside any error scope: counted and logged.
    pub fn uncaptured_error(&self, error: &wgpu::Error) {
        self.uncaptured.fetch_add(1, Ordering::Relaxed);
        log::error!("uncaptured wgpu error: {error}");
    }
}

impl WgpuBackend {
    /// wgmem on a device the application created: limits, features and adapter information
    /// are read from `device`; the memory budget comes from `options.memory_budget`, then
    /// `WGMEM_MEMORY_BUDGET`, then the platform (Metal), then the default. The adapter-choice
    /// options (`backends`, `adapter_name`) do not apply and are ignored.
    ///
    /// Nothing global is installed on the device: its device-lost and uncaptured-error
    /// callbacks stay the application's, which forwards them through [`Self::signals`]. Work
    /// the application records on pooled buffers follows the submission contract of
    /// [`Self::submit`].
    ///
    /// wgmem's kernels size themselves from the device's limits and need no features; WebGPU's
    /// default limits suffice. Timestamp queries, where the device was created with them, let
    /// the profiler time kernels. Buffers larger than the device's `max_buffer_size` are a
    /// typed [`Error::TooLarge`](crate::Error::TooLarge), so ask for `adapter.limits()` when
    /// creating the device if large tensors are planned.
    pub fn from_device(
        device: wgpu::Device,
        queue: wgpu::Queue,
        options: WgpuBackendOptions,
    ) -> Result<Self> {
        Self::assemble(None, device, queue, &options)
    }

    /// Sets the device's lost and uncaptured-error callbacks to forward to this backend: for
    /// devices wgmem created itself, which no application owns.
    pub(super) fn install_callbacks(&self) {
        let signals = self.signals();
        self.device
            .set_device_lost_callback(move |reason, message| signals.device_lost(reason, &message));
        let signals = self.signals();
        self.device
            .on_uncaptured_error(Arc::new(move |error| signals.uncaptured_error(&error)));
    }

    /// The handle an application's own device callbacks forward to (see [`DeviceSignals`]).
    pub fn signals(&self) -> DeviceSignals {
        DeviceSignals {
            lost: Arc::clone(&self.lost),
            uncaptured: Arc::clone(&self.uncaptured),
        }
    }

    /// Information on the adapter behind the device (read from the device, so also known for
    /// [`Self::from_device`]).
    pub fn adapter_info(&self) -> wgpu::AdapterInfo {
        self.device.adapter_info()
    }

    /// Submits command buffers the application recorded itself, after wgmem's pending batch and
    /// in the same submission, so they see the results of every kernel recorded before and the
    /// pool sees them. Returns the submission's index; every buffer released after this call
    /// waits for it (and everything before it) to complete before it is reused.
    ///
    /// This is the submission contract (module docs of `device.rs`, and [`Self::queue`]): drop
    /// a [`ManagedBuffer`](crate::ManagedBuffer) only after the work that uses it was submitted
    /// here, recorded through [`Self::encode`], or reported with [`Self::track_submission`].
    pub fn submit(
        &self,
        commands: impl IntoIterator<Item = wgpu::CommandBuffer>,
    ) -> Result<SubmissionIndex> {
        self.check_lost()?;
        // Held until the submit is done, as in `flush`, so no other thread's batch lands between
        // wgmem's pending commands and the application's.
        let mut pending = lock(&self.pending);
        let batch = pending.take().map(wgpu::CommandEncoder::finish);
        let index = self.submit_batch(batch.into_iter().chain(commands));
        self.recorded.store(0, Ordering::Relaxed);
        self.has_pending.store(false, Ordering::SeqCst);
        drop(pending);
        Ok(index)
    }

    /// Reports a submission the application made on [`Self::queue`] itself (`theirs` is what
    /// `queue.submit` returned) and returns wgmem's index for it. Call it right after that
    /// submit, before dropping any pooled buffer the work uses, and call [`Self::flush`] before
    /// that submit when the work reads results of wgmem kernels.
    pub fn track_submission(&self, theirs: wgpu::SubmissionIndex) -> SubmissionIndex {
        self.record_submission(theirs)
    }
}
