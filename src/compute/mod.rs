//! GPU kernels: embedded WGSL, a pipeline cache, and dispatch into the backend's batch.
//!
//! [`Gpu`] wraps a [`WgpuBackend`]. Each dispatch records into the backend's pending command
//! encoder; nothing is submitted until something needs the results (a read) or the caller
//! flushes, so a training step is a handful of submits rather than one per kernel.
//!
//! Kernel parameters (sizes, scalars) go through one uniform ring buffer created with the
//! `Gpu`: each dispatch writes its parameters into the next 256-byte slot. When the ring is
//! full the batch is submitted and the ring starts over; queue order guarantees the earlier
//! batch has read its slots before they are overwritten. So dispatching creates no buffers.
//!
//! The kernels, one WGSL file and one module per family, each a function over `&Gpu`,
//! `&wgpu::Buffer`s and explicit dimensions (row-major f32) that checks every length against its
//! buffer and returns a typed error instead of dispatching out of bounds:
//! - [`matmul`]: `C = act(op(A)·op(B) + bias) (+ C)` for every transpose, tiled from the limits;
//! - elementwise: [`copy`], [`axpby`], [`accumulate`], [`add`], [`sub`], [`mul`], [`scale`] and
//!   in-place forms, activations forward and backward, [`bias_activation`];
//! - reductions: [`column_sums`] (bias gradients), [`sum`], [`mean`], [`max`];
//! - [`softmax_cross_entropy`]: forward and backward in one pass, loss and accuracy on the GPU;
//! - optimizers: [`sgd`], [`adam`] (AdamW with `decoupled`).
//!
//! naga adds runtime checks to every shader (index clamps, loop counters);
//! [`Gpu::new_unchecked`] compiles without them. BENCHMARKS.md has the measured effect.

mod compress;
mod elementwise;
mod matmul;
mod optim;
mod pipelines;
mod reduce;
mod shaders;
mod softmax;
mod timing;
mod validate;

pub use compress::{f16_words, pack_f16, unpack_f16};
pub use elementwise::{
    Activation, accumulate, activation_backward, activation_backward_in_place, activation_forward,
    activation_in_place, add, add_in_place, axpby, bias_activation, copy, fill, mul, mul_in_place,
    scale, scale_in_place, sub, sub_in_place,
};
pub use matmul::{MatmulOptions, MatmulTile, matmul};
pub use optim::{AdamParams, SgdParams, adam, sgd};
pub use pipelines::Kernel;
pub use reduce::{column_sums, max, mean, sum};
pub use shaders::{SHADERS, ShaderSource, shader, validate_wgsl};
pub use softmax::{CrossEntropyOutputs, softmax_cross_entropy};

use crate::backend::{Backend, BufferUsage, WgpuBackend};
use crate::error::{Error, Result};
use crate::profile::MemoryProfiler;
use crate::sync::lock;
use pipelines::PipelineCache;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use timing::KernelTimer;

/// Bytes in the parameter ring.
const PARAM_RING_BYTES: u64 = 256 << 10;

/// Partial results of two-pass reductions: one f32 per workgroup of the first pass, and as many
/// again for a second quantity (the softmax kernel's correct count).
pub(crate) const SCRATCH_PARTIALS: u32 = 1024;

/// A range of a buffer bound to a kernel.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The buffer.
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset (a multiple of the storage offset alignment).
    pub offset: u64,
    /// Byte length (a multiple of 4, at least 4).
    pub size: u64,
}

impl<'a> Binding<'a> {
    /// Binds the first `len` f32 values of `buffer`.
    pub fn f32s(buffer: &'a wgpu::Buffer, len: usize) -> Self {
        Self {
            buffer,
            offset: 0,
            size: (len.max(1) * 4) as u64,
        }
    }
}

struct ParamRing {
    buffer: wgpu::Buffer,
    slot: u64,
    next: u64,
}

/// Kernel dispatch on a [`WgpuBackend`].
pub struct Gpu {
    backend: Arc<WgpuBackend>,
    pipelines: PipelineCache,
    params: Mutex<ParamRing>,
    workgroup_size: u32,
    max_groups_per_dim: u32,
    limits: wgpu::Limits,
    scratch: wgpu::Buffer,
    scratch_user: Mutex<()>,
    vec4_per_thread: AtomicU32,
    timer: Mutex<Option<KernelTimer>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", self.backend.adapter())
            .field("workgroup_size", &self.workgroup_size)
            .finish_non_exhaustive()
    }
}

impl Gpu {
    /// Prepares kernel dispatch on `backend`: picks the workgroup size from the adapter's
    /// limits and creates the parameter ring.
    pub fn new(backend: Arc<WgpuBackend>) -> Result<Self> {
        let limits = backend.device().limits();
        let workgroup_size = 256u32
            .min(limits.max_compute_invocations_per_workgroup)
            .min(limits.max_compute_workgroup_size_x);
        let slot = u64::from(limits.min_uniform_buffer_offset_alignment).max(256);
        let buffer = backend.allocate(PARAM_RING_BYTES, BufferUsage::Uniform)?;
        let scratch = backend.allocate(u64::from(SCRATCH_PARTIALS) * 8, BufferUsage::Storage)?;
        Ok(Self {
            limits: limits.clone(),
            scratch,
            scratch_user: Mutex::new(()),
            vec4_per_thread: AtomicU32::new(4),
            params: Mutex::new(ParamRing {
                buffer,
                slot,
                next: 0,
            }),
            pipelines: PipelineCache::default(),
            workgroup_size,
            max_groups_per_dim: limits.max_compute_workgroups_per_dimension,
            timer: Mutex::new(None),
            backend,
        })
    }

    /// As [`Gpu::new`], but compiles the kernels without the runtime checks naga adds by
    /// default (clamping every array index, bounding every loop with an extra counter), which
    /// cost registers and instructions in the inner loops.
    ///
    /// # Safety
    ///
    /// The kernels' own bounds checks become the only ones: a kernel bug could then read or write
    /// outside a binding, which is undefined behaviour on the GPU. The kernels of this crate are
    /// written to need no runtime checks (they are tested with the checks on, against CPU
    /// references); call this only for kernels from this crate.
    pub unsafe fn new_unchecked(backend: Arc<WgpuBackend>) -> Result<Self> {
        let mut gpu = Self::new(backend)?;
        gpu.pipelines.unchecked = true;
        Ok(gpu)
    }

    /// The backend this dispatches on.
    pub fn backend(&self) -> &Arc<WgpuBackend> {
        &self.backend
    }

    /// The workgroup size chosen for 1-D kernels.
    pub fn workgroup_size(&self) -> u32 {
        self.workgroup_size
    }

    /// The device limits the kernels were sized for.
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// How many vec4s each thread of the bandwidth-bound elementwise kernels (copy, axpby,
    /// accumulate) moves per array: 4 (the default) or 8. A tuning knob for benchmarks; the
    /// results are the same either way.
    pub fn set_vec4_per_thread(&self, count: u32) -> Result<()> {
        if count != 4 && count != 8 {
            return Err(Error::invalid(
                "vec4s per thread",
                format!("{count}; the kernels exist for 4 and 8"),
            ));
        }
        self.vec4_per_thread.store(count, Ordering::Relaxed);
        Ok(())
    }

    /// See [`Gpu::set_vec4_per_thread`].
    pub fn vec4_per_thread(&self) -> u32 {
        self.vec4_per_thread.load(Ordering::Relaxed)
    }

    /// Whether the kernels were compiled without naga's runtime checks ([`Gpu::new_unchecked`]).
    pub(crate) fn unchecked(&self) -> bool {
        self.pipelines.unchecked
    }

    /// The largest byte range one storage binding may cover.
    pub(crate) fn max_binding_bytes(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size
    }

    /// The largest workgroup count per dispatch dimension.
    pub(crate) fn max_groups_per_dim(&self) -> u32 {
        self.max_groups_per_dim
    }

    /// The scratch buffer of two-pass reductions ([`SCRATCH_PARTIALS`] x 2 f32s), and a guard
    /// to hold while recording both passes. Dispatches run in the order they are recorded, so
    /// successive reductions may share the buffer; the guard keeps another thread's reduction
    /// from recording between one reduction's first and second pass.
    pub(crate) fn scratch(&self) -> (std::sync::MutexGuard<'_, ()>, &wgpu::Buffer) {
        (lock(&self.scratch_user), &self.scratch)
    }

    /// Workgroup counts `[x, y, 1]` covering `n` threads of the 1-D kernels, folding into the
    /// second dimension past the per-dimension limit.
    pub fn groups_for(&self, n: u64) -> Result<[u32; 3]> {
        let groups = n.div_ceil(u64::from(self.workgroup_size)).max(1);
        let x = groups.min(u64::from(self.max_groups_per_dim));
        let y = groups.div_ceil(x);
        if y > u64::from(self.max_groups_per_dim) {
            return Err(Error::invalid(
                "dispatch size",
                format!("{n} elements exceed what one dispatch can cover"),
            ));
        }
        Ok([x as u32, y as u32, 1])
    }

    /// Times every dispatch into `profiler`'s timeline while it is in full mode (or stops
    /// timing with `None`). Returns false when the device has no timestamp queries, in which
    /// case nothing is timed. Collects what the previous profiler had pending first.
    pub fn set_profiler(&self, profiler: Option<Arc<MemoryProfiler>>) -> Result<bool> {
        let mut timer = lock(&self.timer);
        if let Some(t) = timer.as_mut() {
            t.collect(&self.backend)?;
        }
        *timer = profiler.and_then(|p| KernelTimer::new(&self.backend, p));
        Ok(timer.is_some())
    }

    /// Reads back the timestamps of the dispatches timed so far and records them in the
    /// profiler (waits for the GPU). Call it once per step; it also runs by itself when 256
    /// dispatches are pending. Returns the number of kernels recorded.
    pub fn collect_kernel_times(&self) -> Result<usize> {
        match lock(&self.timer).as_mut() {
            Some(t) => t.collect(&self.backend),
            None => Ok(0),
        }
    }

    /// Records one dispatch of `kernel` with `params` at binding 0 and `bindings` at 1, 2, ...
    pub fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        params: &P,
        bindings: &[Binding<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        let pipeline = self
            .pipelines
            .get(self.backend.device(), kernel, self.workgroup_size)?;
        let bytes = bytemuck::bytes_of(params);
        let mut ring = lock(&self.params);
        if bytes.len() as u64 > ring.slot {
            return Err(Error::invalid(
                "kernel parameters",
                format!("{} bytes exceed the {}-byte slot", bytes.len(), ring.slot),
            ));
        }
        if ring.next + ring.slot > PARAM_RING_BYTES {
            self.backend.flush()?;
            ring.next = 0;
        }
        let offset = ring.next;
        ring.next += ring.slot;
        self.backend
            .queue()
            .write_buffer(&ring.buffer, offset, bytes);
        let mut entries = Vec::with_capacity(bindings.len() + 1);
        entries.push(wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &ring.buffer,
                offset,
                size: wgpu::BufferSize::new(bytes.len().next_multiple_of(16) as u64),
            }),
        });
        for (i, b) in bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: i as u32 + 1,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: b.offset,
                    size: wgpu::BufferSize::new(b.size.next_multiple_of(4).max(4)),
                }),
            });
        }
        let bind_group = self
            .backend
            .device()
            .create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.entry),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
        let mut timer = lock(&self.timer);
        if let Some(t) = timer.as_mut().filter(|t| t.full()) {
            t.collect(&self.backend)?;
        }
        let mut timed = timer.as_mut().filter(|t| t.active());
        // Record while still holding the ring: a thread that wraps the ring flushes first, and
        // that flush must carry this dispatch, or the slot could be rewritten before it runs.
        let recorded = self.backend.encode(|encoder| {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(kernel.entry),
                timestamp_writes: timed.as_mut().map(|t| t.claim(kernel.entry)),
            });
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        });
        drop(ring);
        recorded
    }

    /// Submits everything recorded so far.
    pub fn flush(&self) -> Result<()> {
        self.backend.flush().map(|_| ())
    }
}

// No `Drop` that destroys the ring or the scratch buffer: dispatches recorded into the
// backend's shared batch may still reference them; dropping the handles lets wgpu free them
// once that work has run.
