//! Kernels the application writes: WGSL registered in the pipeline cache and dispatched through
//! [`Gpu`] like wgmem's own, into the same batch, timed into the same profiler. The binding
//! convention is documented on [`UserKernel`].
//!
//! # Why this is safe
//! A safe function must not let safe code reach undefined behaviour, and a compute shader with
//! an out-of-range binding or index could. So every registration is validated by naga (a typed
//! [`Error::ShaderCompile`] naming line and column), user kernels are always compiled *with*
//! naga's runtime checks (index clamping, bounded loops), also on a [`Gpu::new_unchecked`], and
//! every dispatch is checked against the shader's reflection: binding count, usage, range,
//! alignment, the minimum size of each binding, the size of the parameters, and that no buffer
//! written by the kernel is bound twice.

use super::user_reflect::{Access, Slot, reflect, validate_for_device, workgroup_size};
use super::{Binding, Gpu};
use crate::backend::{UsageFlags, WgpuBackend};
use crate::error::{Error, Result};
use crate::memory::ManagedBuffer;
use crate::sync::lock;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A compiled user kernel, shared by every handle to it.
#[derive(Debug)]
struct Compiled {
    name: Arc<str>,
    entry: String,
    /// The [`UserKernelCache`] (one per [`Gpu`]) that compiled it.
    owner: u64,
    /// Threads per workgroup, when known from the source (`override WG` included).
    workgroup_size: Option<[u32; 3]>,
    pipeline: wgpu::ComputePipeline,
    /// Byte size of the params struct at binding 0, when the shader has one.
    params: Option<u64>,
    slots: Vec<Slot>,
}

/// A WGSL compute kernel registered with [`Gpu::register_kernel`]. Cheap to clone.
///
/// # The binding convention
/// A user kernel uses bind group 0 only, and buffers only. When `@binding(0)` is a
/// `var<uniform>`, it receives the `params` of [`Gpu::dispatch_kernel`] (written into wgmem's
/// parameter ring, so dispatching creates no buffer; the Rust type's size must equal the WGSL
/// struct's), and the buffers the caller binds are `@binding(1)`, `@binding(2)`, ... in order;
/// otherwise the caller's buffers are `@binding(0)`, `@binding(1)`, ... and `params` is `&()`.
/// Bindings the entry point does not use do not count. An `override WG: u32;` receives
/// [`Gpu::workgroup_size`], as wgmem's kernels do; [`Gpu::groups_for_kernel`] counts workgroups
/// for a 1-D dispatch.
///
/// ```
/// use wgmem::Context;
///
/// let ctx = Context::default_gpu()?;
/// let add_one = ctx.gpu().register_kernel(
///     "add_one",
///     "struct P { n: u32 }
///      @group(0) @binding(0) var<uniform> p: P;
///      @group(0) @binding(1) var<storage, read_write> d: array<f32>;
///      @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) {
///          if (id.x < p.n) { d[id.x] += 1.0; }
///      }",
///     "main",
/// )?;
/// let t = ctx.from_slice(&[1.0, 2.0, 3.0], &[3], "data")?;
/// let groups = ctx.gpu().groups_for_kernel(&add_one, 3)?;
/// ctx.gpu().dispatch_kernel(&add_one, &3u32, &[(&t).into()], groups)?;
/// assert_eq!(t.to_vec()?, [2.0, 3.0, 4.0]);
/// # Ok::<(), wgmem::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct UserKernel(Arc<Compiled>);

impl UserKernel {
    /// The name it was registered under (used in errors, labels and the profiler).
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The entry point.
    pub fn entry(&self) -> &str {
        &self.0.entry
    }

    /// How many buffers a dispatch binds (the params uniform not counted).
    pub fn binding_count(&self) -> usize {
        self.0.slots.len()
    }

    /// Byte size of the params struct at `@binding(0)`, or `None` when the shader has none.
    pub fn params_size(&self) -> Option<u64> {
        self.0.params
    }

    /// Threads per workgroup: the entry point's `@workgroup_size`, with `override WG` resolved
    /// to [`Gpu::workgroup_size`]; `None` when other overrides decide it.
    pub fn workgroup_size(&self) -> Option<[u32; 3]> {
        self.0.workgroup_size
    }
}

/// User kernels compiled for one [`Gpu`], by name, entry point and source.
#[derive(Debug)]
pub(crate) struct UserKernelCache {
    /// Unique per cache: wgpu's own `Device` equality compares per-instance ids, which two
    /// instances' devices can share.
    id: u64,
    /// By name, entry point and the full source.
    compiled: Mutex<HashMap<(String, String, String), UserKernel>>,
}

impl Default for UserKernelCache {
    fn default() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            compiled: Mutex::default(),
        }
    }
}

impl<'a> From<&'a ManagedBuffer<WgpuBackend>> for Binding<'a> {
    /// The bytes that were asked for (rounded up to 4), from offset 0.
    fn from(buffer: &'a ManagedBuffer<WgpuBackend>) -> Self {
        Binding {
            buffer: buffer.raw(),
            offset: 0,
            size: buffer.requested().next_multiple_of(4).min(buffer.size()),
        }
    }
}

impl Gpu {
    /// Registers the compute entry point `entry` of the WGSL `source` under `name`: validated
    /// by naga, compiled once (again with the same name, entry and source returns the cached
    /// kernel), always with naga's runtime checks. [`UserKernel`] has the binding convention and
    /// an example.
    ///
    /// Errors: [`Error::ShaderCompile`] with naga's diagnostic and its line and column for a
    /// source that does not parse or validate, or that the device refuses;
    /// [`Error::InvalidArgument`] for a missing entry point or bindings outside the
    /// convention.
    pub fn register_kernel(&self, name: &str, source: &str, entry: &str) -> Result<UserKernel> {
        let key = (name.to_owned(), entry.to_owned(), source.to_owned());
        if let Some(k) = lock(&self.pipelines.user.compiled).get(&key) {
            return Ok(k.clone());
        }
        let (module, info) = validate_for_device(name, source, self.backend().device().features())?;
        let (params, slots) = reflect(name, entry, &module, &info)?;
        let has_wg = module
            .overrides
            .iter()
            .any(|(_, o)| o.name.as_deref() == Some("WG"));
        let workgroup_size = workgroup_size(&module, entry, self.workgroup_size());
        let device = self.backend().device();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let shader = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let constants = [("WG", f64::from(self.workgroup_size()))];
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &shader,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: if has_wg { &constants } else { &[] },
                zero_initialize_workgroup_memory: true,
            },
            cache: None,
        });
        if let Some(error) = pollster::block_on(scope.pop()) {
            return Err(Error::ShaderCompile {
                name: name.to_owned(),
                message: format!("the device refused the kernel: {error}"),
                position: None,
            });
        }
        let kernel = UserKernel(Arc::new(Compiled {
            name: Arc::from(name),
            entry: entry.to_owned(),
            owner: self.pipelines.user.id,
            workgroup_size,
            pipeline,
            params,
            slots,
        }));
        lock(&self.pipelines.user.compiled).insert(key, kernel.clone());
        Ok(kernel)
    }

    /// Records one dispatch of a user kernel into wgmem's batch (timed when a profiler is
    /// attached, like wgmem's kernels). `params` goes to `@binding(0)` when the shader has a
    /// params uniform there (its size must match the WGSL struct's exactly), else it must be
    /// `&()`; `bindings` are the shader's buffer bindings in order. [`Tensor`](crate::Tensor)s
    /// and [`ManagedBuffer`]s convert into [`Binding`]s with `.into()`.
    ///
    /// Every binding is checked against the shader first; a mismatch is a typed error and
    /// nothing is recorded.
    pub fn dispatch_kernel<P: bytemuck::Pod>(
        &self,
        kernel: &UserKernel,
        params: &P,
        bindings: &[Binding<'_>],
        groups: [u32; 3],
    ) -> Result<()> {
        let k = &kernel.0;
        if k.owner != self.pipelines.user.id {
            return Err(Error::invalid(
                "kernel",
                format!(
                    "'{}' was registered on another Gpu; register it on this one",
                    k.name
                ),
            ));
        }
        let bytes = bytemuck::bytes_of(params);
        check_params(k, bytes.len() as u64)?;
        check_bindings(self, k, bindings)?;
        if let Some(&g) = groups.iter().find(|&&g| g > self.max_groups_per_dim()) {
            return Err(Error::invalid(
                "dispatch size",
                format!(
                    "'{}': {g} workgroups in one dimension; the device allows {}",
                    k.name,
                    self.max_groups_per_dim()
                ),
            ));
        }
        let first = u32::from(k.params.is_some());
        self.record(
            Cow::Owned(k.name.to_string()),
            &k.pipeline,
            k.params.map(|_| bytes),
            bindings,
            |i| i as u32 + first,
            groups,
        )
    }
}

impl Gpu {
    /// Workgroup counts `[x, 1, 1]` covering `n` invocations of `kernel` along x (from its
    /// [`UserKernel::workgroup_size`]); a typed error when that size is not known from the
    /// source or `n` needs more workgroups than one dispatch dimension allows.
    pub fn groups_for_kernel(&self, kernel: &UserKernel, n: u64) -> Result<[u32; 3]> {
        let k = &kernel.0;
        let [x, _, _] = k.workgroup_size.ok_or_else(|| {
            Error::invalid(
                "dispatch size",
                format!(
                    "'{}': its workgroup size depends on overrides other than WG; count the \
                     workgroups yourself",
                    k.name
                ),
            )
        })?;
        let groups = n.div_ceil(u64::from(x.max(1))).max(1);
        if groups > u64::from(self.max_groups_per_dim()) {
            return Err(Error::invalid(
                "dispatch size",
                format!(
                    "'{}': {n} invocations need {groups} workgroups of {x}; one dimension allows \
                     {}",
                    k.name,
                    self.max_groups_per_dim()
                ),
            ));
        }
        Ok([groups as u32, 1, 1])
    }
}

fn check_params(k: &Compiled, given: u64) -> Result<()> {
    match k.params {
        Some(expected) if given != expected => Err(Error::invalid(
            "kernel parameters",
            format!(
                "'{}': {given} bytes given, the params struct at @binding(0) is {expected} bytes",
                k.name
            ),
        )),
        None if given != 0 => Err(Error::invalid(
            "kernel parameters",
            format!(
                "'{}': {given} bytes given, but the shader has no var<uniform> params at \
                 @binding(0); pass &()",
                k.name
            ),
        )),
        _ => Ok(()),
    }
}

fn check_bindings(gpu: &Gpu, k: &Compiled, bindings: &[Binding<'_>]) -> Result<()> {
    let first = u32::from(k.params.is_some());
    if bindings.len() != k.slots.len() {
        let last = first + k.slots.len() as u32;
        return Err(Error::invalid(
            "kernel bindings",
            format!(
                "'{}' declares {} buffer bindings (@binding({first}) to @binding({})), {} given",
                k.name,
                k.slots.len(),
                last.saturating_sub(1),
                bindings.len()
            ),
        ));
    }
    let limits = gpu.limits();
    for (slot, b) in k.slots.iter().zip(bindings) {
        let what = |reason: String| {
            Error::invalid(
                "kernel bindings",
                format!(
                    "'{}' @binding({}) '{}': {reason}",
                    k.name, slot.binding, slot.name
                ),
            )
        };
        let (usage, alignment, max) = match slot.access {
            Access::Uniform => (
                wgpu::BufferUsages::UNIFORM,
                limits.min_uniform_buffer_offset_alignment,
                limits.max_uniform_buffer_binding_size,
            ),
            _ => (
                wgpu::BufferUsages::STORAGE,
                limits.min_storage_buffer_offset_alignment,
                limits.max_storage_buffer_binding_size,
            ),
        };
        if !b.buffer.usage().contains(usage) {
            return Err(what(format!(
                "the buffer's usages {:?} lack {:?}; acquire it with that usage",
                UsageFlags::from(b.buffer.usage()),
                UsageFlags::from(usage)
            )));
        }
        if b.offset % u64::from(alignment) != 0 {
            return Err(what(format!(
                "offset {} is not a multiple of {alignment}",
                b.offset
            )));
        }
        let size = b.size.next_multiple_of(4).max(4);
        if size < slot.min_size {
            return Err(what(format!(
                "{size} bytes bound; the shader's type needs at least {}",
                slot.min_size
            )));
        }
        if size > max {
            return Err(what(format!(
                "{size} bytes exceed the device's largest binding of {max}"
            )));
        }
        if b.offset
            .checked_add(size)
            .is_none_or(|end| end > b.buffer.size())
        {
            return Err(Error::OutOfBounds {
                op: "kernel binding",
                offset: b.offset,
                len: size,
                size: b.buffer.size(),
            });
        }
    }
    for (i, (slot, b)) in k.slots.iter().zip(bindings).enumerate() {
        let aliased = bindings
            .iter()
            .enumerate()
            .any(|(j, o)| j != i && o.buffer == b.buffer);
        if slot.access == Access::ReadWrite && aliased {
            return Err(Error::SameBuffer);
        }
    }
    Ok(())
}
