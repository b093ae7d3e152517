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

type PipelineKey = (Kernel, u32);

/// Compiled shader modules and pipelines for one device.
#[derive(Default)]
pub(crate) struct PipelineCache {
    /// Compile without naga's runtime checks (index clamping, loop bounding); see
    /// [`super::Gpu::new_unchecked`].
    pub(crate) unchecked: bool,
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
        let module = Arc::new(if self.unchecked {
            // SAFETY: `Gpu::new_unchecked`'s caller accepted that the kernels' own checks are the
            // only ones: every kernel compares each storage index against the length the host
            // validated, indexes workgroup arrays by construction within their size, and runs
            // loops with bounds from uniform parameters.
            unsafe {
                device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        } else {
            device.create_shader_module(desc)
        });
        lock(&self.modules).insert(name, Arc::clone(&module));
        Ok(module)
    }
}
