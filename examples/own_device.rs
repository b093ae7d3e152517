//! wgmem inside an application that already has its own wgpu device.
//!
//! The application creates its instance, adapter and device itself (as a renderer or an
//! inference server would), keeps its own device callbacks and forwards them to wgmem, and hands
//! device and queue over with `WgpuBackend::from_device`. Then, on buffers from wgmem's pool:
//! 1. its own compute pipeline (made with its own `device.create_compute_pipeline`) runs from its
//!    own encoder, dispatched indirectly from a pooled `INDIRECT` buffer, and is submitted through
//!    `WgpuBackend::submit`, so the pool knows the buffers are in use;
//! 2. the same WGSL, registered with `Gpu::register_kernel`, runs in wgmem's batch next to a
//!    wgmem kernel (`compute::sum`), bound to `Tensor`s;
//! 3. a simulated memory-pressure change reaches the memory manager, which gives back its cache;
//! 4. the memory report and the profiler's view by tag are printed.
//!
//! ```text
//! cargo run --example own_device
//! ```

use std::sync::Arc;
use wgmem::memory::human_bytes;
use wgmem::pressure::{PressureLevel, SimulatedSource};
use wgmem::{
    Backend, BufferUsage, Context, MemoryConfig, MemoryProfiler, PressureMonitor, WgpuBackend,
    WgpuBackendOptions, compute,
};

/// The application's shader: `out[i] = a * x[i] + y[i]`.
const SAXPY: &str = "struct Params { n: u32, a: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn saxpy(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < p.n) {
        out[id.x] = p.a * x[id.x] + y[id.x];
    }
}
";

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    a: f32,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();

    // 1. The application's own device.
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
    let instance = wgpu::Instance::new(desc);
    let adapter = pollster::block_on(instance.request_adapter(&Default::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("my app"),
        required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;
    println!("device: {}", adapter.get_info().name);

    // 2. Hand it to wgmem; the callbacks stay the application's and forward to wgmem.
    let backend = WgpuBackend::from_device(
        device.clone(),
        queue.clone(),
        WgpuBackendOptions {
            memory_budget: Some(256 << 20),
            ..Default::default()
        },
    )?;
    let signals = backend.signals();
    device.on_uncaptured_error(Arc::new(move |error| {
        eprintln!("my app saw a wgpu error: {error}");
        signals.uncaptured_error(&error);
    }));
    let signals = backend.signals();
    device.set_device_lost_callback(move |reason, message| {
        eprintln!("my app lost its device: {message}");
        signals.device_lost(reason, &message);
    });
    let backend = Arc::new(backend);
    let ctx = Context::new(Arc::clone(&backend), MemoryConfig::default())?;
    let profiler = Arc::new(MemoryProfiler::full());
    ctx.memory().set_profiler(Some(Arc::clone(&profiler)));

    // Inputs on pooled buffers.
    let n = 10_000usize;
    let xs: Vec<f32> = (0..n).map(|i| (i % 100) as f32 / 100.0).collect();
    let ys: Vec<f32> = (0..n).map(|i| 1.0 - (i % 7) as f32).collect();
    let a = 3.0f32;
    let x = ctx.from_slice(&xs, &[n], "inputs")?;
    let y = ctx.from_slice(&ys, &[n], "inputs")?;
    let want: Vec<f64> = (0..n)
        .map(|i| f64::from(a) * f64::from(xs[i]) + f64::from(ys[i]))
        .collect();

    // 3. The application's own pipeline, on pooled buffers, dispatched indirectly.
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
        label: Some("saxpy"),
        source: wgpu::ShaderSource::Wgsl(SAXPY.into()),
    });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some("my saxpy"),
        layout: None,
        module: &module,
        entry_point: Some("saxpy"),
        compilation_options: Default::default(),
        cache: None,
    });
    let kernel = ctx.gpu().register_kernel("saxpy", SAXPY, "saxpy")?;
    let max_error = |got: &[f32]| {
        got.iter()
            .zip(&want)
            .map(|(g, w)| (f64::from(*g) - w).abs())
            .fold(0.0, f64::max)
    };

    // Three frames: from the second on, every buffer comes from the pool.
    for frame in 0..3 {
        let params = ctx.memory().acquire(
            8,
            BufferUsage::from(wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST),
            "my uniforms",
        )?;
        params.write(0, bytemuck::bytes_of(&Params { n: n as u32, a }))?;
        let indirect = ctx.memory().acquire(
            12,
            BufferUsage::from(wgpu::BufferUsages::INDIRECT | wgpu::BufferUsages::COPY_DST),
            "my indirect args",
        )?;
        indirect.write(0, bytemuck::cast_slice(&[n.div_ceil(64) as u32, 1, 1]))?;
        let mine = ctx.uninit(&[n], "my output")?;
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("my saxpy"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[params.raw(), x.raw(), y.raw(), mine.raw()]
                .iter()
                .enumerate()
                .map(|(i, buffer)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: buffer.as_entire_binding(),
                })
                .collect::<Vec<_>>(),
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups_indirect(indirect.raw(), 0);
        }
        // Through wgmem, not `queue.submit`: wgmem's pending batch goes first, and the pooled
        // buffers above are not reused before this submission completes.
        let index = backend.submit([encoder.finish()])?;
        drop((params, indirect));

        // 4. The same shader as a registered user kernel, next to a wgmem kernel.
        let theirs = ctx.uninit(&[n], "activations")?;
        let groups = ctx.gpu().groups_for_kernel(&kernel, n as u64)?;
        ctx.gpu().dispatch_kernel(
            &kernel,
            &Params { n: n as u32, a },
            &[(&x).into(), (&y).into(), (&theirs).into()],
            groups,
        )?;
        let total = ctx.uninit(&[1], "activations")?;
        compute::sum(ctx.gpu(), theirs.raw(), n, total.raw())?;
        println!(
            "frame {frame}: own pipeline (submission {index}) max error {:.2e}; registered \
             kernel max error {:.2e}; wgmem sum {} (f64 {:.1}); pool hits so far {}",
            max_error(&mine.to_vec()?),
            max_error(&theirs.to_vec()?),
            total.to_vec()?[0],
            want.iter().sum::<f64>(),
            ctx.memory().stats().pool_hits,
        );
    }

    // 5. Memory pressure: a simulated OS source goes to Warning, the manager gives back half
    //    its cache, least recently used first.
    backend.wait_idle()?;
    let mut monitor = PressureMonitor::new();
    let os = SimulatedSource::new("simulated-os");
    let os_level = os.handle();
    monitor.add_source(os);
    monitor.add_responder(Arc::new(ctx.memory().clone()));
    let cached_before = ctx.memory().stats().cached_bytes;
    os_level.set(PressureLevel::Warning);
    if let Some(change) = monitor.poll() {
        println!(
            "pressure {} -> {}: cache {} -> {}",
            change.from,
            change.to,
            human_bytes(cached_before),
            human_bytes(ctx.memory().stats().cached_bytes)
        );
    }

    // 6. The memory report.
    println!("\n{}", ctx.memory().stats());
    println!("\n{}", profiler.by_tag());
    println!("uncaptured wgpu errors: {}", backend.uncaptured_errors());
    Ok(())
}
