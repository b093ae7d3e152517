//! From wgmem's [`BufferUsage`] to `wgpu::BufferUsages`, and the checks that turn a usage set
//! the device cannot give into a typed error before wgpu reports it on the uncaptured-error
//! path (which would leave an invalid buffer in the pool).

use super::WgpuBackend;
use crate::backend::usage::check_named;
use crate::backend::{BufferUsage, UsageFlags};
use crate::error::{Error, Result};

impl From<wgpu::BufferUsages> for UsageFlags {
    /// The same bits (wgpu's values are WebGPU's); ray-tracing inputs, which wgmem does not
    /// name, stay as unknown bits and are refused when a buffer is allocated.
    fn from(usages: wgpu::BufferUsages) -> Self {
        UsageFlags::from_bits_retain(usages.bits())
    }
}

impl From<wgpu::BufferUsages> for BufferUsage {
    /// [`BufferUsage::Custom`] with exactly `usages`.
    fn from(usages: wgpu::BufferUsages) -> Self {
        BufferUsage::Custom(usages.into())
    }
}

impl WgpuBackend {
    /// Allocates a buffer of `size` bytes (already checked and rounded) with exactly the usages
    /// `flags`, or a typed error naming what the device cannot give.
    pub(super) fn allocate_custom(&self, size: u64, flags: UsageFlags) -> Result<wgpu::Buffer> {
        let usages = wgpu_usages(flags, self.device.features())?;
        // What the checks cannot know without the adapter (downlevel limits on index and
        // indirect buffers) wgpu validates: caught here as a typed error, not left for the
        // uncaptured-error path with an invalid buffer in the pool.
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buffer = self.create_buffer(size, usages, "wgmem buffer");
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(Error::invalid(
                "buffer usage",
                format!("this device cannot create a buffer with {flags:?}: {error}"),
            ));
        }
        buffer
    }
}

/// The wgpu usages for `flags` on a device with `features`, or a typed error naming what the
/// device cannot give and what it could.
fn wgpu_usages(flags: UsageFlags, features: wgpu::Features) -> Result<wgpu::BufferUsages> {
    use wgpu::BufferUsages as U;
    check_named(flags)?;
    let usages = U::from_bits(flags.bits()).ok_or_else(|| {
        Error::invalid("buffer usage", format!("{flags:?} is not a wgpu usage set"))
    })?;
    if !features.contains(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS) {
        let read = usages.contains(U::MAP_READ) && !(U::MAP_READ | U::COPY_DST).contains(usages);
        let write = usages.contains(U::MAP_WRITE) && !(U::MAP_WRITE | U::COPY_SRC).contains(usages);
        if read || write {
            return Err(Error::invalid(
                "buffer usage",
                format!(
                    "{flags:?}: this device maps only staging buffers (MAP_READ with at most \
                     COPY_DST, MAP_WRITE with at most COPY_SRC); other combinations need the \
                     MAPPABLE_PRIMARY_BUFFERS feature, which the device was not created with"
                ),
            ));
        }
    }
    Ok(usages)
}
