//! wgmem on a device the application created (`WgpuBackend::from_device`): the account, the
//! pool and the kernels work as with `WgpuBackend::new`; the application's own device callbacks
//! stay its own and forward to wgmem; pooled buffers of custom usages are kept apart; and a
//! released buffer is not reused before the application's submission that used it completed.
//! Runs on lavapipe in CI.

#[path = "common/own_device.rs"]
mod own;

use own::own_device;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wgmem::backend::{AdapterDescription, BudgetSource, SubmissionIndex};
use wgmem::{
    Backend, BufferUsage, Capabilities, Context, Error, HostBackend, MemoryConfig, MemoryManager,
    UsageFlags, WgpuBackend, WgpuBackendOptions, compute,
};

fn backend_on_own_device() -> (Arc<WgpuBackend>, wgpu::Device) {
    let (device, queue) = own_device();
    let backend = WgpuBackend::from_device(device.clone(), queue, WgpuBackendOptions::default())
        .expect("from_device");
    eprintln!("runs on: {}", backend.adapter());
    (Arc::new(backend), device)
}

#[test]
fn from_device_reads_the_device_and_honours_the_configured_budget() {
    let (device, queue) = own_device();
    let options = WgpuBackendOptions {
        memory_budget: Some(96 << 20),
        ..Default::default()
    };
    let backend = WgpuBackend::from_device(device.clone(), queue, options).unwrap();
    let info = device.adapter_info();
    assert_eq!(backend.adapter().name, info.name);
    assert_eq!(backend.adapter().api, format!("{:?}", info.backend));
    let caps = backend.capabilities();
    assert_eq!(caps.max_buffer_size, device.limits().max_buffer_size);
    assert_eq!(
        caps.max_storage_binding_size,
        device.limits().max_storage_buffer_binding_size
    );
    assert_eq!(caps.memory_budget, 96 << 20);
    assert_eq!(caps.budget_source, BudgetSource::Configured);
    assert!(
        backend.wgpu_adapter().is_none(),
        "no adapter was handed over"
    );
    assert!(
        backend.device() == &device,
        "the very device, not a new one"
    );
}

/// One small workload: three tensors, a kernel, a release and a reuse. Returns the result and
/// the account after each phase, for comparing two backends.
fn workload(backend: &Arc<WgpuBackend>) -> (Vec<f32>, [wgmem::MemoryStats; 2]) {
    let ctx = Context::new(Arc::clone(backend), MemoryConfig::default()).unwrap();
    let n = 777;
    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.25 - 50.0).collect();
    let y: Vec<f32> = (0..n).map(|i| (i % 13) as f32).collect();
    let a = ctx.from_slice(&x, &[n], "data").unwrap();
    let b = ctx.from_slice(&y, &[n], "data").unwrap();
    let out = ctx.uninit(&[n], "activations").unwrap();
    compute::add(ctx.gpu(), a.raw(), b.raw(), out.raw(), n).unwrap();
    let got = out.to_vec().unwrap();
    for i in 0..n {
        let want = f64::from(x[i]) + f64::from(y[i]);
        assert!(
            (f64::from(got[i]) - want).abs() < 1e-5,
            "{i}: {} vs {want}",
            got[i]
        );
    }
    let first = ctx.memory().stats();
    let class = out.buffer().size();
    assert_eq!(first.live_bytes, 3 * class, "three tensors live");
    assert_eq!(first.pool_misses, 3);
    drop(out);
    backend.wait_idle().unwrap();
    let again = ctx.uninit(&[n], "activations").unwrap();
    let second = ctx.memory().stats();
    assert_eq!(second.pool_hits, 1, "the released buffer is reused");
    assert_eq!(second.live_bytes, 3 * again.buffer().size());
    assert_eq!(backend.uncaptured_errors(), 0);
    (got, [first, second])
}

#[test]
fn from_device_accounts_pools_and_runs_kernels_as_new_does() {
    let (mine, _device) = backend_on_own_device();
    let own = Arc::new(WgpuBackend::new().unwrap());
    let (got_mine, stats_mine) = workload(&mine);
    let (got_own, stats_own) = workload(&own);
    assert_eq!(got_mine, got_own, "the same kernels, bit for bit");
    for (m, o) in stats_mine.iter().zip(&stats_own) {
        assert_eq!(
            (
                m.live_bytes,
                m.cached_bytes,
                m.pool_hits,
                m.pool_misses,
                m.allocations
            ),
            (
                o.live_bytes,
                o.cached_bytes,
                o.pool_hits,
                o.pool_misses,
                o.allocations
            ),
            "the same account"
        );
    }
}

#[test]
fn the_applications_callbacks_stay_its_own_and_forward_to_wgmem() {
    let (device, queue) = own_device();
    let seen_by_app = Arc::new(AtomicU64::new(0));
    let backend =
        Arc::new(WgpuBackend::from_device(device.clone(), queue, Default::default()).unwrap());
    let (count, signals) = (Arc::clone(&seen_by_app), backend.signals());
    device.on_uncaptured_error(Arc::new(move |error| {
        count.fetch_add(1, Ordering::SeqCst);
        signals.uncaptured_error(&error);
    }));
    let signals = backend.signals();
    device.set_device_lost_callback(move |reason, message| signals.device_lost(reason, &message));

    // An invalid buffer created by the application outside any error scope: the application's
    // handler sees it (from_device replaced nothing) and wgmem counts what was forwarded.
    let _bad = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("invalid on purpose"),
        size: 64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::MAP_WRITE,
        mapped_at_creation: false,
    });
    assert_eq!(seen_by_app.load(Ordering::SeqCst), 1);
    assert_eq!(backend.uncaptured_errors(), 1);

    let buffer = backend.allocate(256, BufferUsage::Storage).unwrap();
    device.destroy();
    let _ = device.poll(wgpu::PollType::wait_indefinitely());
    let err = backend.write(&buffer, 0, &[0; 16]).unwrap_err();
    assert!(matches!(err, Error::DeviceLost { .. }), "{err}");
}

#[test]
fn custom_usages_are_pooled_apart_on_the_gpu() {
    let (backend, _device) = backend_on_own_device();
    let memory = MemoryManager::new(Arc::clone(&backend));
    let vertex = BufferUsage::from(wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST);
    let index = BufferUsage::from(wgpu::BufferUsages::INDEX | wgpu::BufferUsages::COPY_DST);
    let indirect = BufferUsage::from(
        wgpu::BufferUsages::INDIRECT | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    );
    let v = memory.acquire(1000, vertex, "mesh").unwrap();
    assert_eq!(
        v.raw().usage(),
        wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::COPY_DST,
        "exactly the usages asked for"
    );
    let v_raw = v.raw().clone();
    drop(v);
    backend.wait_idle().unwrap();
    for other in [index, indirect, BufferUsage::Storage, BufferUsage::Uniform] {
        let b = memory.acquire(1000, other, "other").unwrap();
        assert!(
            b.raw() != &v_raw,
            "{other:?} must not get the vertex buffer"
        );
    }
    let again = memory.acquire(1000, vertex, "mesh").unwrap();
    assert!(again.raw() == &v_raw, "the same usage reuses it");
    let stats = memory.stats();
    assert_eq!((stats.pool_hits, stats.pool_misses), (1, 5));
    // A uniform buffer of the application's is written and read like any other pooled buffer.
    let u = memory
        .acquire(
            48,
            BufferUsage::Custom(UsageFlags::UNIFORM | UsageFlags::COPY_DST | UsageFlags::COPY_SRC),
            "uniforms",
        )
        .unwrap();
    u.write(0, bytemuck::cast_slice(&[1.5f32, -2.0, 3.25, 8.0]))
        .unwrap();
    let mut back = [0f32; 4];
    u.read(0, bytemuck::cast_slice_mut(&mut back)).unwrap();
    assert_eq!(back, [1.5, -2.0, 3.25, 8.0]);
}

#[test]
fn custom_usages_are_pooled_apart_by_the_manager_on_the_host() {
    let memory = MemoryManager::new(Arc::new(HostBackend::new()));
    let a = BufferUsage::Custom(UsageFlags::VERTEX | UsageFlags::COPY_DST);
    let b = BufferUsage::Custom(UsageFlags::VERTEX | UsageFlags::INDEX | UsageFlags::COPY_DST);
    let first = memory.acquire(4096, a, "a").unwrap();
    let id = first.raw().id();
    drop(first);
    let other = memory.acquire(4096, b, "b").unwrap();
    assert_ne!(
        other.raw().id(),
        id,
        "a superset of usages is another pool key"
    );
    assert_eq!(memory.acquire(4096, a, "a").unwrap().raw().id(), id);
    assert!(matches!(
        memory.acquire(64, BufferUsage::Custom(UsageFlags::empty()), "none"),
        Err(Error::InvalidArgument { .. })
    ));
    assert_eq!(
        memory.stats().live_bytes,
        4096,
        "a refused request leaves no bytes reserved"
    );
}

/// The GPU backend with its completion held back on request: `completed_submission` stops at
/// what had completed when the hold began, as `HostBackend::hold_completion` does for the host.
/// The GPU may well have finished; the pool must not be able to tell.
struct HeldCompletion {
    inner: Arc<WgpuBackend>,
    held_at: AtomicU64,
}

impl HeldCompletion {
    fn hold(&self) {
        self.inner.wait_idle().unwrap();
        let done = self.inner.completed_submission();
        self.held_at.store(done, Ordering::SeqCst);
    }

    fn release(&self) {
        self.held_at.store(u64::MAX, Ordering::SeqCst);
    }
}

impl Backend for HeldCompletion {
    type Buffer = wgpu::Buffer;
    fn name(&self) -> &'static str {
        "held-wgpu"
    }
    fn adapter(&self) -> &AdapterDescription {
        self.inner.adapter()
    }
    fn capabilities(&self) -> &Capabilities {
        self.inner.capabilities()
    }
    fn allocate(&self, size: u64, usage: BufferUsage) -> wgmem::Result<wgpu::Buffer> {
        self.inner.allocate(size, usage)
    }
    fn free(&self, buffer: wgpu::Buffer) {
        self.inner.free(buffer)
    }
    fn size(&self, buffer: &wgpu::Buffer) -> u64 {
        self.inner.size(buffer)
    }
    fn write(&self, buffer: &wgpu::Buffer, offset: u64, data: &[u8]) -> wgmem::Result<()> {
        self.inner.write(buffer, offset, data)
    }
    fn read(&self, buffer: &wgpu::Buffer, offset: u64, out: &mut [u8]) -> wgmem::Result<()> {
        self.inner.read(buffer, offset, out)
    }
    fn copy(
        &self,
        src: &wgpu::Buffer,
        src_offset: u64,
        dst: &wgpu::Buffer,
        dst_offset: u64,
        len: u64,
    ) -> wgmem::Result<()> {
        self.inner.copy(src, src_offset, dst, dst_offset, len)
    }
    fn last_submission(&self) -> SubmissionIndex {
        self.inner.last_submission()
    }
    fn completed_submission(&self) -> SubmissionIndex {
        self.inner
            .completed_submission()
            .min(self.held_at.load(Ordering::SeqCst))
    }
    fn wait_idle(&self) -> wgmem::Result<()> {
        self.inner.wait_idle()
    }
}

/// The application's own commands on a pooled buffer: a copy into it from a buffer of its own.
fn record_copy_into(device: &wgpu::Device, dst: &wgpu::Buffer) -> wgpu::CommandBuffer {
    let src = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app source"),
        size: 1024,
        usage: wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(&src, 0, dst, 0, 1024);
    encoder.finish()
}

#[test]
fn reuse_after_a_user_submission_waits_for_its_completion() {
    let (inner, device) = backend_on_own_device();
    let held = Arc::new(HeldCompletion {
        inner: Arc::clone(&inner),
        held_at: AtomicU64::new(u64::MAX),
    });
    let memory = MemoryManager::new(Arc::clone(&held));
    let usage = BufferUsage::from(wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST);

    // Submitted through wgmem: the buffer released afterwards waits for that submission.
    for submit_through_wgmem in [true, false] {
        let buffer = memory.acquire(1024, usage, "app").unwrap();
        let raw = buffer.raw().clone();
        held.hold();
        let commands = record_copy_into(&device, buffer.raw());
        let index = if submit_through_wgmem {
            inner.submit([commands]).unwrap()
        } else {
            inner.flush().unwrap();
            let theirs = inner.queue().submit([commands]);
            inner.track_submission(theirs)
        };
        assert!(
            index > held.completed_submission(),
            "the submission is in flight"
        );
        drop(buffer);
        let next = memory.acquire(1024, usage, "app").unwrap();
        assert!(
            next.raw() != &raw,
            "reused before the application's submission completed (via submit: {submit_through_wgmem})"
        );
        held.release();
        inner.wait_idle().unwrap();
        // `next` is still held, so the pool's only candidate is the first buffer.
        let after = memory.acquire(1024, usage, "app").unwrap();
        assert!(
            after.raw() == &raw,
            "reusable once the submission completed"
        );
        drop((next, after));
        memory.clear_cache();
    }

    // The control: a submission wgmem was not told of is not waited for. This is what the
    // contract at `WgpuBackend::queue` forbids, and what makes the checks above able to fail.
    let buffer = memory.acquire(1024, usage, "app").unwrap();
    let raw = buffer.raw().clone();
    held.hold();
    inner
        .queue()
        .submit([record_copy_into(&device, buffer.raw())]);
    drop(buffer);
    let next = memory.acquire(1024, usage, "app").unwrap();
    assert!(
        next.raw() == &raw,
        "an untold submission cannot hold the buffer back"
    );
    held.release();
    inner.wait_idle().unwrap();
}

#[test]
fn a_user_submission_runs_after_wgmems_pending_batch() {
    let (backend, device) = backend_on_own_device();
    let ctx = Context::new(Arc::clone(&backend), MemoryConfig::default()).unwrap();
    let n = 300;
    let src = ctx.from_slice(&vec![2.5f32; n], &[n], "data").unwrap();
    let dst = ctx.zeros(&[n], "data").unwrap();
    // wgmem's kernel is only recorded here; the application's copy reads its output.
    compute::scale(ctx.gpu(), 3.0, src.raw(), dst.raw(), n).unwrap();
    let out = ctx.zeros(&[n], "data").unwrap();
    let mut encoder = device.create_command_encoder(&Default::default());
    encoder.copy_buffer_to_buffer(dst.raw(), 0, out.raw(), 0, (n * 4) as u64);
    let before = backend.last_submission();
    let index = backend.submit([encoder.finish()]).unwrap();
    assert_eq!(
        index, before,
        "one submission carries wgmem's pending batch and the application's commands"
    );
    assert_eq!(backend.last_submission(), index);
    assert_eq!(out.to_vec().unwrap(), vec![7.5f32; n]);
}
