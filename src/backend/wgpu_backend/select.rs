//! Headless adapter selection.
//!
//! Order of precedence: the backend set from `WGMEM_BACKEND` (or wgpu's own `WGPU_BACKEND`),
//! e.g. `vulkan`, `metal`, `gl`; then an adapter-name filter from `WGMEM_ADAPTER` (or
//! `WGPU_ADAPTER_NAME`), a case-insensitive substring; then the best adapter that can run
//! compute shaders: discrete GPU, integrated, virtual, other, and software (CPU) last.
//! The primary APIs (Metal, Vulkan, DX12) are searched first; GL only when they offer nothing,
//! which also spares machines without a display the EGL probe.
//! When several adapters tie for best (two identical GPUs), `WGMEM_ADAPTER_INDEX` picks one
//! of them (modulo their number); without it, a process started by Open MPI's `mpirun` takes
//! its node-local rank (`OMPI_COMM_WORLD_LOCAL_RANK`), so data-parallel ranks on one host
//! get a GPU each.

use crate::error::{Error, Result};

/// Reads the backend set from the environment, falling back to `default`.
pub(super) fn backends_from_env(default: wgpu::Backends) -> wgpu::Backends {
    std::env::var("WGMEM_BACKEND")
        .ok()
        .map(|s| wgpu::Backends::from_comma_list(&s))
        .or_else(wgpu::Backends::from_env)
        .unwrap_or(default)
}

/// Reads the adapter-name filter from the environment.
pub(super) fn adapter_name_from_env() -> Option<String> {
    std::env::var("WGMEM_ADAPTER")
        .ok()
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
}

fn type_rank(device_type: wgpu::DeviceType) -> u8 {
    match device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn api_rank(backend: wgpu::Backend) -> u8 {
    match backend {
        wgpu::Backend::Metal | wgpu::Backend::Vulkan | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// Describes an adapter for error messages: `name (Vulkan, Cpu)`.
pub(super) fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// Picks the adapter as the module docs describe.
pub(super) fn select_adapter(
    backends: wgpu::Backends,
    name_filter: Option<&str>,
) -> Result<wgpu::Adapter> {
    let primary = backends & wgpu::Backends::PRIMARY;
    let secondary = backends - wgpu::Backends::PRIMARY;
    let mut seen = Vec::new();
    for set in [primary, secondary] {
        if set.is_empty() {
            continue;
        }
        // One instance per set: creating a GL instance probes EGL, which is slow and noisy on
        // machines without a display, so it happens only when the primary APIs found nothing.
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
        desc.backends = set;
        let instance = wgpu::Instance::new(desc);
        let adapters = pollster::block_on(instance.enumerate_adapters(set));
        seen.extend(adapters.iter().map(|a| describe(&a.get_info())));
        if let Some(adapter) = best(adapters, name_filter) {
            return Ok(adapter);
        }
    }
    let reason = match name_filter {
        Some(f) => {
            format!("no compute-capable adapter's name contains '{f}' (backends {backends:?})")
        }
        None => format!(
            "no compute-capable adapter for backends {backends:?}; on Linux without a GPU install mesa-vulkan-drivers (lavapipe)"
        ),
    };
    Err(Error::NoAdapter { reason, seen })
}

/// Which of several equally good adapters to take (see the module docs).
fn adapter_index_from_env() -> usize {
    ["WGMEM_ADAPTER_INDEX", "OMPI_COMM_WORLD_LOCAL_RANK"]
        .iter()
        .find_map(|v| std::env::var(v).ok()?.trim().parse().ok())
        .unwrap_or(0)
}

fn best(adapters: Vec<wgpu::Adapter>, name_filter: Option<&str>) -> Option<wgpu::Adapter> {
    let filter = name_filter.map(str::to_lowercase);
    let key = |a: &wgpu::Adapter| {
        let info = a.get_info();
        (type_rank(info.device_type), api_rank(info.backend))
    };
    let candidates: Vec<wgpu::Adapter> = adapters
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .filter(|a| match &filter {
            Some(f) => a.get_info().name.to_lowercase().contains(f),
            None => true,
        })
        .collect();
    let top = candidates.iter().map(key).min()?;
    let mut tied: Vec<wgpu::Adapter> = candidates.into_iter().filter(|a| key(a) == top).collect();
    let index = adapter_index_from_env() % tied.len();
    Some(tied.swap_remove(index))
}
