//! Metal's working-set size, read through wgpu's hal access.

use objc2_metal::MTLDevice;

/// `(recommendedMaxWorkingSetSize, hasUnifiedMemory)` when the device is a Metal device.
pub(crate) fn metal_working_set(device: &wgpu::Device) -> Option<(u64, bool)> {
    // SAFETY: the hal device is only borrowed for two read-only property queries; it is not
    // destroyed or used after the guard is dropped, as `Device::as_hal` requires.
    let hal = unsafe { device.as_hal::<wgpu::hal::api::Metal>() }?;
    let raw = hal.raw_device();
    Some((raw.recommendedMaxWorkingSetSize(), raw.hasUnifiedMemory()))
}

/// Metal's `currentAllocatedSize`: the bytes the driver has allocated for the device (buffers,
/// textures, heaps, its own), when the device is a Metal device.
pub(crate) fn metal_allocated_size(device: &wgpu::Device) -> Option<u64> {
    // SAFETY: as in `metal_working_set`: one read-only property query on a borrowed hal
    // device, not used after the guard is dropped.
    let hal = unsafe { device.as_hal::<wgpu::hal::api::Metal>() }?;
    Some(hal.raw_device().currentAllocatedSize() as u64)
}
