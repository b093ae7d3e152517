//! Where the memory budget comes from.
//!
//! A budget is the number of bytes the backend should hold for good performance. On Apple
//! platforms Metal answers directly (`recommendedMaxWorkingSetSize`, about 75% of RAM on
//! Apple Silicon). Elsewhere wgpu exposes no portable figure, so the budget is configured
//! in code, read from `WGMEM_MEMORY_BUDGET`, or [`DEFAULT_MEMORY_BUDGET`].

use crate::backend::{BudgetSource, DEFAULT_MEMORY_BUDGET, parse_bytes};
use crate::error::Result;

#[cfg(target_vendor = "apple")]
mod apple;

/// What the platform itself reports: `(budget, unified)`, when it reports anything.
pub(super) fn platform_budget(device: &wgpu::Device) -> Option<(u64, bool)> {
    #[cfg(target_vendor = "apple")]
    {
        apple::metal_working_set(device)
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        let _ = device;
        None
    }
}

/// What the driver reports as allocated for the device (Metal's `currentAllocatedSize`).
pub(super) fn device_allocated(device: &wgpu::Device) -> Option<u64> {
    #[cfg(target_vendor = "apple")]
    {
        apple::metal_allocated_size(device)
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        let _ = device;
        None
    }
}

/// Resolves the budget: configured, then environment, then platform, then the default.
pub(super) fn resolve(
    configured: Option<u64>,
    device: &wgpu::Device,
) -> Result<(u64, BudgetSource, Option<bool>)> {
    if let Some(bytes) = configured {
        return Ok((bytes, BudgetSource::Configured, None));
    }
    if let Ok(text) = std::env::var("WGMEM_MEMORY_BUDGET") {
        return Ok((parse_bytes(&text)?, BudgetSource::Environment, None));
    }
    if let Some((bytes, unified)) = platform_budget(device) {
        return Ok((
            bytes,
            BudgetSource::MetalRecommendedWorkingSet,
            Some(unified),
        ));
    }
    Ok((DEFAULT_MEMORY_BUDGET, BudgetSource::Default, None))
}
