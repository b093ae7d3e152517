//! From wgmem's [`BufferUsage`] to `wgpu::BufferUsages`, and the checks that turn a usage set
//! the device cannot give into a typed error before wgpu reports it on the uncaptured-error
//! path (which would leave an invalid buffer in the pool).

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

/// The wgpu usages of a buffer of `usage` on a device with `features`, or a typed error naming
/// what the device cannot give and what it could.
pub(super) fn wgpu_usages(
    usage: BufferUsage,
    features: wgpu::Features,
) -> Result<wgpu::BufferUsages> {
    use wgpu::BufferUsages as U;
    Ok(match usage {
        BufferUsage::Storage => U::STORAGE | U::COPY_SRC | U::COPY_DST,
        BufferUsage::Uniform => U::UNIFORM | U::COPY_DST,
        BufferUsage::Readback => U::MAP_READ | U::COPY_DST,
        BufferUsage::Upload => U::MAP_WRITE | U::COPY_SRC,
        BufferUsage::Custom(flags) => {
            check_named(flags)?;
            let usages = U::from_bits(flags.bits()).ok_or_else(|| {
                Error::invalid("buffer usage", format!("{flags:?} is not a wgpu usage set"))
            })?;
            if !features.contains(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS) {
                let read =
                    usages.contains(U::MAP_READ) && !(U::MAP_READ | U::COPY_DST).contains(usages);
                let write =
                    usages.contains(U::MAP_WRITE) && !(U::MAP_WRITE | U::COPY_SRC).contains(usages);
                if read || write {
                    return Err(Error::invalid(
                        "buffer usage",
                        format!(
                            "{flags:?}: this device maps only staging buffers (MAP_READ with at \
                             most COPY_DST, MAP_WRITE with at most COPY_SRC); other combinations \
                             need the MAPPABLE_PRIMARY_BUFFERS feature, which the device was not \
                             created with"
                        ),
                    ));
                }
            }
            usages
        }
    })
}
