//! The pipeline cache: each (shader, entry point, workgroup size) compiles once per device.

use super::shaders::{shader, validate_wgsl};
use crate::error::{Error, Result};
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A compute entry point in one of the embedded shaders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Kernel {
    /// Shader file stem.
    pub(crate) shader: &'static str,
    /// Entry point name.
    pub(crate) entry: &'static str,
}

impl Kernel {
    /// The name in labels and the profiler's kernel times: the entry point, or the shader where
    /// the entry point is `main` (the cooperative-matrix modules, one per fragment and type).
    pub(crate) fn label(&self) -> &'static str {
        if self.entry == "main" {
            self.shader
        } else {
            self.entry
        }
    }
}

type PipelineKey = (Kernel, u32);

/// naga's runtime checks on the crate's kernels: [`KernelChecks`] plus the unsafe
/// [`super::Gpu::new_unchecked`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum RuntimeChecks {
    /// Every check naga adds.
    #[default]
    Full,
    /// All but the loop counters.
    NoLoopBounding,
    /// None.
    Off,
}

/// Which of naga's runtime checks wgmem's own kernels are compiled with ([`super::Gpu::with_checks`]).
///
/// naga makes every shader safe on its own: it clamps every array index, guards every
/// integer division, and adds a counter to every loop so that none can run forever (a loop a
/// driver may assume finite could otherwise be compiled into anything). The counters cost the
/// most where it matters: a loop with a hidden exit is not unrolled, so a per-thread array it
/// indexes cannot live in registers. wgmem's loops all terminate by construction, so
/// [`KernelChecks::NoLoopBounding`] drops only the counters and keeps memory safety with naga.
/// Kernels registered by the application ([`super::Gpu::register_kernel`]) are always fully
/// checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KernelChecks {
    /// Every check naga adds: index clamps, division guards, loop counters.
    Full,
    /// Index clamps and division guards, without the loop counters: the default of
    /// [`super::Gpu::new`].
    #[default]
    NoLoopBounding,
}

impl From<KernelChecks> for RuntimeChecks {
    fn from(c: KernelChecks) -> Self {
        match c {
            KernelChecks::Full => RuntimeChecks::Full,
            KernelChecks::NoLoopBounding => RuntimeChecks::NoLoopBounding,
        }
    }
}

impl std::str::FromStr for KernelChecks {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "full" => Ok(KernelChecks::Full),
            "no-loop-bounding" => Ok(KernelChecks::NoLoopBounding),
            other => Err(Error::invalid(
                "kernel checks",
                format!("'{other}' is not one of: full, no-loop-bounding"),
            )),
        }
    }
}

/// Compiled shader modules and pipelines for one device.
#[derive(Default)]
pub(crate) struct PipelineCache {
    /// Which of naga's runtime checks the crate's kernels are compiled with.
    pub(crate) checks: RuntimeChecks,
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    /// The application's kernels ([`super::Gpu::register_kernel`]), always compiled checked.
    pub(crate) user: super::user_kernel::UserKernelCache,
}

impl PipelineCache {
    /// The pipeline for `kernel` with override constant `WG = workgroup_size`, compiled on
    /// first use.
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        kernel: Kernel,
        workgroup_size: u32,
    ) -> Result<Arc<wgpu::ComputePipeline>> {
        if let Some(p) = lock(&self.pipelines).get(&(kernel, workgroup_size)) {
            return Ok(Arc::clone(p));
        }
        let module = self.module(device, kernel.shader)?;
        let constants = [("WG", f64::from(workgroup_size))];
        let pipeline = Arc::new(
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(kernel.entry),
                layout: None,
                module: &module,
                entry_point: Some(kernel.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            }),
        );
        lock(&self.pipelines).insert((kernel, workgroup_size), Arc::clone(&pipeline));
        Ok(pipeline)
    }

    fn module(&self, device: &wgpu::Device, name: &'static str) -> Result<Arc<wgpu::ShaderModule>> {
        if let Some(m) = lock(&self.modules).get(name) {
            return Ok(Arc::clone(m));
        }
        let src = shader(name).ok_or_else(|| Error::ShaderCompile {
            name: name.to_string(),
            message: "no such shader is embedded; add it to compute::shaders".into(),
            position: None,
        })?;
        validate_wgsl(src.name, src.source)?;
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(src.source.into()),
        };
        let module = Arc::new(match self.checks {
            RuntimeChecks::Full => device.create_shader_module(desc),
            RuntimeChecks::NoLoopBounding => {
                let checks = wgpu::ShaderRuntimeChecks {
                    force_loop_bounding: false,
                    ..wgpu::ShaderRuntimeChecks::checked()
                };
                // SAFETY: only this crate's shaders reach here (user kernels have their own cache,
                // always fully checked), and every loop in them terminates: each is a `for` whose
                // counter rises by a positive constant (or by the grid size or a host-set group
                // count, both at least 1) towards a bound below 2^31 (an element count of a
                // binding, a uniform dimension the host validated, or a constant), or halves a
                // non-zero constant. Index clamps and division guards stay on.
                unsafe { device.create_shader_module_trusted(desc, checks) }
            }
            // SAFETY: `Gpu::new_unchecked`'s caller accepted that the kernels' own checks are the
            // only ones: every kernel compares each storage index against the length the host
            // validated, indexes workgroup arrays by construction within their size, and runs
            // loops as argued above.
            RuntimeChecks::Off => unsafe {
                device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            },
        });
        lock(&self.modules).insert(name, Arc::clone(&module));
        Ok(module)
    }
}
