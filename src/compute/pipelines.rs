//! The pipeline cache: each (shader, entry point, workgroup size) compiles once per device.

use super::shaders::{shader, validate_wgsl};
use crate::error::{Error, Result};
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A compute entry point in one of the embedded shaders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// Shader file stem.
    pub shader: &'static str,
    /// Entry point name.
    pub entry: &'static str,
}

type PipelineKey = (Kernel, u32);

/// Compiled shader modules and pipelines for one device.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<&'static str, Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
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
        })?;
        validate_wgsl(src.name, src.source)?;
        let module = Arc::new(device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(src.source.into()),
        }));
        lock(&self.modules).insert(name, Arc::clone(&module));
        Ok(module)
    }
}
