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
//! - [`matmul_coop`]: the same on cooperative matrices (tensor cores, Metal simdgroup matrices),
//!   f16 inputs and f32 accumulation, chosen per device from what the adapter offers
//!   ([`Gpu::matmul_kernels`], [`choose_coop`]);
//! - elementwise: [`copy`], [`axpby`], [`accumulate`], [`add`], [`sub`], [`mul`], [`scale`] and
//!   in-place forms, activations forward and backward, [`bias_activation`];
//! - reductions: [`column_sums`] (bias gradients), [`sum`], [`mean`], [`max`];
//! - [`softmax_cross_entropy`]: forward and backward in one pass, loss and accuracy on the GPU;
//! - optimizers: [`sgd`], [`adam`] (AdamW with `decoupled`);
//! - transformer layers: [`embedding_forward`] and its deterministic backward,
//!   [`layer_norm_forward`] / [`layer_norm_backward`], [`dropout`] (a counter-based mask), and
//!   causal attention fused FlashAttention-2 style ([`attention_forward`],
//!   [`attention_backward`]) with the naive `seq x seq` reference beside it.
//!
//! The application's own WGSL: [`Gpu::register_kernel`] and [`Gpu::dispatch_kernel`] (in
//! `user_kernel.rs`), into the same batch and profiler, binding `Tensor`s and `ManagedBuffer`s.
//!
//! - f16 storage with f32 arithmetic (mixed precision): [`matmul_f16`], [`convert`], the
//!   `*_f16` elementwise kernels, [`column_sums_f16`], [`softmax_cross_entropy_f16`], and the
//!   fused unscale + update + f16-copy optimizer steps [`adam_mixed`], [`sgd_mixed`] with the
//!   overflow check [`check_finite`]; and the transformer kernels' f16 twins
//!   ([`embedding_forward_f16`], [`layer_norm_forward_f16`], [`dropout_f16`],
//!   [`attention_forward_f16`], their backwards), whose tables, norm parameters and softmax
//!   statistics stay f32. They need `SHADER_F16` ([`Gpu::supports_f16`]).
//!
//! naga adds runtime checks to every shader (index clamps, division guards, loop counters).
//! wgmem's own kernels are compiled without the loop counters by default
//! ([`KernelChecks::NoLoopBounding`]: every loop of theirs terminates by construction, and the
//! counters kept the drivers from unrolling, costing the attention kernels 3.5x and the GPT step
//! 1.56x on an H200); [`Gpu::with_checks`] with [`KernelChecks::Full`] keeps them, and
//! [`Gpu::new_unchecked`] drops every check. BENCHMARKS.md has the measured effect. Without the
//! index clamps it stays sound because the raw dispatch is crate-private (only entry points that
//! validate every length reach it); user kernels are always compiled with every check.

mod attention;
mod attention_kernels;
mod colsum;
mod compress;
mod coop_select;
mod elementwise;
mod elementwise_f16;
mod embedding;
mod layernorm;
mod matmul;
mod matmul_coop;
mod matmul_f16;
mod matmul_split;
mod optim;
mod optim_mixed;
mod pipelines;
mod reduce;
mod shaders;
mod softmax;
mod softmax_f16;
mod timing;
mod user_kernel;
mod user_reflect;
mod validate;

pub use attention::{
    AttentionDims, AttentionSaved, MAX_HEAD_DIM, attention_backward, attention_backward_f16,
    attention_backward_with, attention_forward, attention_forward_f16, attention_forward_with,
    attention_naive_backward, attention_naive_forward,
};
pub use attention_kernels::{FusedKernel, FusedKernels};
pub use colsum::{CHUNK_ROWS, column_sum_partials, column_sums, column_sums_f16, column_sums_of};
pub use compress::{f16_words, pack_f16, unpack_f16};
pub use coop_select::{CoopAdapter, CoopChoice, CoopKernel, MatmulKernels, choose as choose_coop};
pub use elementwise::{
    Activation, accumulate, activation_backward, activation_backward_in_place, activation_forward,
    activation_in_place, add, add_in_place, axpby, bias_activation, copy, fill, mul, mul_in_place,
    scale, scale_in_place, sub, sub_in_place,
};
pub use elementwise_f16::{
    accumulate_f16, activation_backward_f16, activation_backward_in_place_f16,
    activation_forward_f16, add_f16, bias_activation_f16, convert, scale_in_place_f16,
};
pub use embedding::{
    DropoutMask, EmbeddingDims, dropout, dropout_f16, embedding_backward_positions,
    embedding_backward_positions_f16, embedding_backward_table, embedding_backward_table_f16,
    embedding_forward, embedding_forward_f16,
};
pub use layernorm::{
    LayerNormBuffers, LayerNormGrads, layer_norm_backward, layer_norm_backward_f16,
    layer_norm_forward, layer_norm_forward_f16,
};
pub(crate) use matmul::product_dims;
pub use matmul::{MatmulOptions, MatmulTile, SplitK, matmul, split_k_slices};
pub use matmul_coop::matmul_coop;
pub use matmul_f16::matmul_f16;
pub use optim::{AdamParams, SgdParams, adam, sgd};
pub use optim_mixed::{adam_mixed, check_finite, sgd_mixed};
pub(crate) use pipelines::Kernel;
pub use pipelines::KernelChecks;
pub use reduce::{add_sum_of_squares, max, mean, sum};
pub use shaders::{SHADERS, ShaderSource, capabilities, shader, validate_wgsl};
pub use softmax::{CrossEntropyOutputs, softmax_cross_entropy};
pub use softmax_f16::softmax_cross_entropy_f16;
pub use user_kernel::UserKernel;

use crate::backend::{Backend, BufferUsage, WgpuBackend};
use crate::error::{Error, Result};
use crate::profile::MemoryProfiler;
use crate::sync::lock;
use pipelines::{PipelineCache, RuntimeChecks};
use std::borrow::Cow;
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

    /// Binds the first `len` values of `dtype` in `buffer`, rounded up to whole 4-byte words.
    pub fn of(buffer: &'a wgpu::Buffer, len: usize, dtype: crate::DType) -> Self {
        Self {
            buffer,
            offset: 0,
            size: (len.max(1) * dtype.size()).next_multiple_of(4) as u64,
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
    matmul_kernels: MatmulKernels,
    f16: bool,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu")
            .field("adapter", self.backend.adapter())
            .field("workgroup_size", &self.workgroup_size)
            .field("matmul_kernels", &self.matmul_kernels)
            .finish_non_exhaustive()
    }
}

impl Gpu {
    /// Prepares kernel dispatch on `backend`: picks the workgroup size from the adapter's
    /// limits and creates the parameter ring. The crate's kernels carry naga's index and
    /// division checks but not its loop counters ([`KernelChecks::NoLoopBounding`], the
    /// default; [`Gpu::with_checks`] chooses).
    pub fn new(backend: Arc<WgpuBackend>) -> Result<Self> {
        Self::with_checks(backend, KernelChecks::default())
    }

    fn new_inner(backend: Arc<WgpuBackend>) -> Result<Self> {
        let limits = backend.device().limits();
        let workgroup_size = 256u32
            .min(limits.max_compute_invocations_per_workgroup)
            .min(limits.max_compute_workgroup_size_x);
        let slot = u64::from(limits.min_uniform_buffer_offset_alignment).max(256);
        let buffer = backend.allocate(PARAM_RING_BYTES, BufferUsage::Uniform)?;
        let scratch = backend.allocate(u64::from(SCRATCH_PARTIALS) * 8, BufferUsage::Storage)?;
        let matmul_kernels = choose_matmul_kernels(&backend);
        log::info!("wgmem: {matmul_kernels}");
        Ok(Self {
            matmul_kernels,
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
            f16: backend
                .device()
                .features()
                .contains(wgpu::Features::SHADER_F16),
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
    /// references). Only this crate's kernels are affected: they are reached only through
    /// entry points that validate every length first, and kernels registered with
    /// [`Gpu::register_kernel`] are compiled with the checks regardless. The caller asserts
    /// that it trusts this crate's kernels to be free of out-of-bounds accesses.
    pub unsafe fn new_unchecked(backend: Arc<WgpuBackend>) -> Result<Self> {
        let mut gpu = Self::new_inner(backend)?;
        gpu.pipelines.checks = RuntimeChecks::Off;
        Ok(gpu)
    }

    /// As [`Gpu::new`], with the crate's kernels compiled with `checks` (see [`KernelChecks`]).
    pub fn with_checks(backend: Arc<WgpuBackend>, checks: KernelChecks) -> Result<Self> {
        let mut gpu = Self::new_inner(backend)?;
        gpu.pipelines.checks = checks.into();
        Ok(gpu)
    }

    /// Which runtime checks the crate's kernels carry: `"full"`, `"no-loop-bounding"` or
    /// `"none"` ([`Gpu::new_unchecked`]); for reports.
    pub fn checks_label(&self) -> &'static str {
        match self.pipelines.checks {
            RuntimeChecks::Full => "full",
            RuntimeChecks::NoLoopBounding => "no-loop-bounding",
            RuntimeChecks::Off => "none",
        }
    }

    /// The matmul kernels this device runs for f16 and f32 inputs, and why; `Display` prints
    /// them for reports and benchmarks.
    pub fn matmul_kernels(&self) -> MatmulKernels {
        self.matmul_kernels
    }

    /// The backend this dispatches on.
    pub fn backend(&self) -> &Arc<WgpuBackend> {
        &self.backend
    }

    /// Whether the device was created with `wgpu::Features::SHADER_F16`: f16 tensors and the f16
    /// kernels need it.
    pub fn supports_f16(&self) -> bool {
        self.f16
    }

    /// [`Error::UnsupportedDType`] unless the device can run f16 kernels.
    pub(crate) fn require_f16(&self) -> Result<()> {
        if self.f16 {
            return Ok(());
        }
        Err(Error::UnsupportedDType {
            dtype: crate::DType::F16,
            feature: "wgpu::Features::SHADER_F16",
            adapter: self.backend.adapter().to_string(),
        })
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
        self.pipelines.checks == RuntimeChecks::Off
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
    ///
    /// Crate-private on purpose: it checks nothing about the bindings, and with
    /// [`Gpu::new_unchecked`] the kernels have no runtime checks either, so only the crate's
    /// entry points, which validate every length first, may call it. Applications dispatch
    /// their own kernels through [`Gpu::dispatch_kernel`], which checks the bindings against the
    /// shader and always compiles with naga's runtime checks.
    pub(crate) fn dispatch<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        params: &P,
        bindings: &[Binding<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        let pipeline = self
            .pipelines
            .get(self.backend.device(), kernel, self.workgroup_size)?;
        self.record(
            Cow::Borrowed(kernel.label()),
            &pipeline,
            Some(bytemuck::bytes_of(params)),
            bindings,
            |i| i as u32 + 1,
            groups,
        )
    }

    /// As [`Gpu::dispatch`], with each binding at the slot given beside it: for shaders whose
    /// entry points share some bindings and not others (a slot holds one type, so a buffer that
    /// is f16 in one entry point and f32 in another needs two slots).
    pub(crate) fn dispatch_slots<P: bytemuck::Pod>(
        &self,
        kernel: Kernel,
        params: &P,
        bindings: &[(u32, Binding<'_>)],
        groups: [u32; 3],
    ) -> Result<()> {
        let pipeline = self
            .pipelines
            .get(self.backend.device(), kernel, self.workgroup_size)?;
        let buffers: Vec<Binding<'_>> = bindings.iter().map(|&(_, b)| b).collect();
        self.record(
            Cow::Borrowed(kernel.label()),
            &pipeline,
            Some(bytemuck::bytes_of(params)),
            &buffers,
            |i| bindings[i].0,
            groups,
        )
    }

    /// Records one dispatch of `pipeline`: `params` (when the shader has them) into the next
    /// ring slot bound at 0, `bindings[i]` at slot `slot(i)`; timed when a profiler is
    /// attached. Shared by the crate's kernels and the application's.
    fn record(
        &self,
        label: Cow<'static, str>,
        pipeline: &wgpu::ComputePipeline,
        params: Option<&[u8]>,
        bindings: &[Binding<'_>],
        slot: impl Fn(usize) -> u32,
        groups: [u32; 3],
    ) -> Result<()> {
        let mut ring = lock(&self.params);
        let mut entries = Vec::with_capacity(bindings.len() + 1);
        if let Some(bytes) = params {
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
            entries.push(wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &ring.buffer,
                    offset,
                    size: wgpu::BufferSize::new(bytes.len().max(1).next_multiple_of(16) as u64),
                }),
            });
        }
        for (i, b) in bindings.iter().enumerate() {
            entries.push(wgpu::BindGroupEntry {
                binding: slot(i),
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
                label: Some(&label),
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
                label: Some(&label),
                timestamp_writes: timed.as_mut().map(|t| t.claim(label.clone())),
            });
            pass.set_pipeline(pipeline);
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

/// The choice of [`coop_select::choose`] for what `backend`'s adapter and device report.
fn choose_matmul_kernels(backend: &WgpuBackend) -> MatmulKernels {
    let info = backend.adapter_info();
    let features = backend.device().features();
    // wgpu reports the configurations on the adapter only: on a device the application handed
    // over (no adapter) the plain kernels run.
    let properties = match backend.wgpu_adapter() {
        Some(adapter) if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) => {
            adapter.cooperative_matrix_properties()
        }
        _ => Vec::new(),
    };
    let coop = CoopAdapter {
        backend: info.backend,
        properties,
        subgroup_sizes: (info.subgroup_min_size, info.subgroup_max_size),
        features,
    };
    let mode = backend.coop_mode();
    MatmulKernels {
        f16: coop_select::choose(&coop, crate::DType::F16, mode),
        f32: coop_select::choose(&coop, crate::DType::F32, mode),
    }
}

// No `Drop` that destroys the ring or the scratch buffer: dispatches recorded into the
// backend's shared batch may still reference them; dropping the handles lets wgpu free them
// once that work has run.
