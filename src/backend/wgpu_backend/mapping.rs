//! Mapping staging buffers for the host, and waiting for one submission rather than all.
//!
//! wgpu maps a buffer once the GPU work that uses it is done, and reports it through a
//! callback that runs while the device is polled. A map request here is made right after the
//! submit that fills (or last reads) the buffer, and the wait polls only until *that*
//! submission has completed, not everything queued after it: this is what lets the gradient
//! exchange keep the next transfers running on the GPU while the host works on one bucket
//! (see `distributed::pipeline`).

use super::WgpuBackend;
use crate::backend::SubmissionIndex;
use crate::error::Result;
use crate::sync::lock;
use std::sync::atomic::Ordering;
use std::sync::mpsc;

/// How many recent submissions keep their wgpu index for [`WgpuBackend::wait_for`]; older
/// ones are waited for as "everything submitted".
pub(super) const RECENT_SUBMISSIONS: usize = 64;

/// A map requested with [`WgpuBackend::request_map`], granted by [`WgpuBackend::wait_map`].
#[derive(Debug)]
pub(crate) struct MapRequest {
    granted: mpsc::Receiver<std::result::Result<(), wgpu::BufferAsyncError>>,
    /// The submission after which the buffer is free of GPU work.
    after: SubmissionIndex,
}

impl WgpuBackend {
    /// Asks for the first `len` bytes of `buffer` to be mapped in `mode` once the work
    /// submitted so far is done. Call it after the submit that uses the buffer (a map
    /// requested while its commands are still recorded would make that submit fail).
    pub(crate) fn request_map(
        &self,
        buffer: &wgpu::Buffer,
        len: u64,
        mode: wgpu::MapMode,
    ) -> MapRequest {
        let (tx, granted) = mpsc::channel();
        buffer.slice(..len).map_async(mode, move |r| {
            let _ = tx.send(r);
        });
        MapRequest {
            granted,
            after: self.submitted.load(Ordering::SeqCst),
        }
    }

    /// Waits until `request` is granted: the buffer's range can then be viewed.
    pub(crate) fn wait_map(&self, request: MapRequest) -> Result<()> {
        self.wait_for(request.after)?;
        let granted = match request.granted.try_recv() {
            Ok(r) => r,
            // Done but not yet reported: the callback runs on a later poll.
            Err(mpsc::TryRecvError::Empty) => {
                self.wait()?;
                request
                    .granted
                    .recv()
                    .map_err(|_| self.map_error("the map callback never ran"))?
            }
            Err(mpsc::TryRecvError::Disconnected) => {
                return Err(self.map_error("the map callback never ran"));
            }
        };
        granted.map_err(|e| self.map_error(e))
    }

    /// Waits until our submission `index` has completed (and its callbacks have run).
    pub(crate) fn wait_for(&self, index: SubmissionIndex) -> Result<()> {
        self.check_lost()?;
        if self.completed.load(Ordering::SeqCst) >= index {
            return Ok(());
        }
        let target = lock(&self.recent)
            .iter()
            .find(|(ours, _)| *ours >= index)
            .map(|(_, theirs)| theirs.clone());
        match target {
            Some(submission_index) => self.poll_wait(wgpu::PollType::Wait {
                submission_index: Some(submission_index),
                timeout: None,
            }),
            None => self.wait(),
        }
    }
}
