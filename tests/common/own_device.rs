//! A device the test creates itself, as an application would, to hand to
//! `WgpuBackend::from_device`. Picks the adapter the same way wgmem does (`WGMEM_BACKEND`,
//! `WGPU_BACKEND`, `WGPU_ADAPTER_NAME` are honoured through wgpu's own environment reading).
#![allow(dead_code)]

/// A fresh instance, adapter, device and queue, with no features beyond timestamp queries and
/// the adapter's limits: what a typical compute application asks for.
pub fn own_device() -> (wgpu::Device, wgpu::Queue) {
    own_device_with(wgpu::Features::empty())
        .expect("timestamp queries are asked for only where the adapter has them")
}

/// As [`own_device`], with `extra` features too; `None` when the adapter lacks one of them.
pub fn own_device_with(extra: wgpu::Features) -> Option<(wgpu::Device, wgpu::Queue)> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let instance = wgpu::Instance::new(desc);
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        ..Default::default()
    }))
    .unwrap_or_else(|e| panic!("the GPU tests need an adapter: {e}"));
    if !adapter.features().contains(extra) {
        return None;
    }
    let device = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("application device"),
        required_features: (adapter.features() & wgpu::Features::TIMESTAMP_QUERY) | extra,
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .expect("the adapter gives a device");
    Some(device)
}
