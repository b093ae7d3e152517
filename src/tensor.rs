//! [`Tensor`]: a shape and a [`ManagedBuffer`] on the GPU, and the [`Context`] that makes them.
//!
//! Every tensor's bytes come from the [`MemoryManager`] under a tag ("activations",
//! "params", "gradients", "optimizer", "scratch"), so the account sees every byte a model
//! uses. Pool buffers are reused dirty, so constructors that promise contents (`zeros`,
//! `from_slice`) write them; `uninit` is for outputs a kernel overwrites entirely.

use crate::backend::{Backend, BufferUsage, WgpuBackend};
use crate::compute::{self, Binding, Gpu};
use crate::error::{Error, Result};
use crate::memory::{ManagedBuffer, MemoryConfig, MemoryManager};
use std::sync::Arc;

/// Memory tags used by the layers, optimizers and trainer.
pub mod tags {
    /// Saved forward outputs and in-flight intermediate values.
    pub const ACTIVATIONS: &str = "activations";
    /// Model weights.
    pub const PARAMS: &str = "params";
    /// Parameter gradients.
    pub const GRADIENTS: &str = "gradients";
    /// Optimizer state (momentum, Adam moments).
    pub const OPTIMIZER: &str = "optimizer";
    /// Inputs, labels and per-step scalars.
    pub const DATA: &str = "data";
    /// Temporaries that die within one operation.
    pub const SCRATCH: &str = "scratch";
}

/// The GPU, its kernels and its memory account: what every tensor operation needs.
pub struct Context {
    gpu: Gpu,
    memory: MemoryManager<WgpuBackend>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("gpu", &self.gpu)
            .field("memory", &self.memory)
            .finish()
    }
}

impl Context {
    /// A context over `backend` with a memory manager configured by `config`.
    pub fn new(backend: Arc<WgpuBackend>, config: MemoryConfig) -> Result<Arc<Self>> {
        let memory = MemoryManager::with_config(Arc::clone(&backend), config)?;
        let gpu = Gpu::new(backend)?;
        Ok(Arc::new(Self { gpu, memory }))
    }

    /// A context on the best adapter with default memory settings.
    pub fn default_gpu() -> Result<Arc<Self>> {
        Self::new(Arc::new(WgpuBackend::new()?), MemoryConfig::default())
    }

    /// Kernel dispatch.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The memory account.
    pub fn memory(&self) -> &MemoryManager<WgpuBackend> {
        &self.memory
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<WgpuBackend> {
        self.gpu.backend()
    }

    /// A tensor whose contents are unspecified (a reused buffer): for kernel outputs.
    #[track_caller]
    pub fn uninit(self: &Arc<Self>, shape: &[usize], tag: &'static str) -> Result<Tensor> {
        let len = element_count(shape)?;
        let bytes = (len.max(1) as u64).checked_mul(4).ok_or_else(|| {
            Error::invalid(
                "tensor shape",
                format!("{shape:?} has more bytes than fit in 64 bits"),
            )
        })?;
        let buffer = self.memory.acquire(bytes, BufferUsage::Storage, tag)?;
        Ok(Tensor {
            shape: shape.to_vec(),
            buffer,
            ctx: Arc::clone(self),
        })
    }

    /// A tensor of zeros.
    #[track_caller]
    pub fn zeros(self: &Arc<Self>, shape: &[usize], tag: &'static str) -> Result<Tensor> {
        let t = self.uninit(shape, tag)?;
        compute::fill(&self.gpu, t.raw(), t.len(), 0.0)?;
        Ok(t)
    }

    /// A tensor holding `data` (row-major) with `shape`.
    #[track_caller]
    pub fn from_slice(
        self: &Arc<Self>,
        data: &[f32],
        shape: &[usize],
        tag: &'static str,
    ) -> Result<Tensor> {
        let t = self.uninit(shape, tag)?;
        t.write(data)?;
        Ok(t)
    }

    /// A buffer of `u32` values (class labels), accounted under `tag`.
    #[track_caller]
    pub fn upload_u32(
        &self,
        data: &[u32],
        tag: &'static str,
    ) -> Result<ManagedBuffer<WgpuBackend>> {
        let buffer =
            self.memory
                .acquire((data.len().max(1) * 4) as u64, BufferUsage::Storage, tag)?;
        buffer.write(0, bytemuck::cast_slice(data))?;
        Ok(buffer)
    }

    /// Reads `n` `u32` values from `buffer`.
    pub fn read_u32(&self, buffer: &ManagedBuffer<WgpuBackend>, n: usize) -> Result<Vec<u32>> {
        let mut out = vec![0u32; n];
        buffer.read(0, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// Submits all recorded GPU work.
    pub fn flush(&self) -> Result<()> {
        self.gpu.flush()
    }
}

fn element_count(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            Error::invalid(
                "tensor shape",
                format!("{shape:?} has more elements than fit in memory"),
            )
        })
}

/// A row-major f32 tensor on the GPU. Dropping it returns its buffer to the pool.
pub struct Tensor {
    shape: Vec<usize>,
    buffer: ManagedBuffer<WgpuBackend>,
    ctx: Arc<Context>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &self.shape)
            .field("tag", &self.buffer.tag())
            .finish()
    }
}

impl Tensor {
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows and columns of a 2-D tensor.
    pub fn dims2(&self, op: &'static str) -> Result<[usize; 2]> {
        match self.shape[..] {
            [r, c] => Ok([r, c]),
            _ => Err(Error::Shape {
                op,
                left: self.shape.clone(),
                right: vec![],
                reason: "expected a 2-D tensor [rows, cols]".into(),
            }),
        }
    }

    /// The GPU buffer (may be larger than the tensor: it comes from a size class).
    pub fn raw(&self) -> &wgpu::Buffer {
        self.buffer.raw()
    }

    /// The managed buffer (tag, size).
    pub fn buffer(&self) -> &ManagedBuffer<WgpuBackend> {
        &self.buffer
    }

    /// The context that made it.
    pub fn context(&self) -> &Arc<Context> {
        &self.ctx
    }

    /// Overwrites the contents with `data` (exactly `len()` values).
    pub fn write(&self, data: &[f32]) -> Result<()> {
        if data.len() != self.len() {
            return Err(Error::Shape {
                op: "Tensor::write",
                left: self.shape.clone(),
                right: vec![data.len()],
                reason: "the data must have exactly as many values as the tensor".into(),
            });
        }
        if data.is_empty() {
            return Ok(());
        }
        self.buffer.write(0, bytemuck::cast_slice(data))
    }

    /// Copies the contents to the host (waits for the GPU).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        let mut out = vec![0f32; self.len()];
        self.ctx
            .backend()
            .read(self.raw(), 0, bytemuck::cast_slice_mut(&mut out))?;
        Ok(out)
    }

    /// The same data viewed with another shape of the same element count.
    pub fn reshape(self, shape: &[usize]) -> Result<Tensor> {
        if element_count(shape)? != self.len() {
            return Err(Error::Shape {
                op: "reshape",
                left: self.shape.clone(),
                right: shape.to_vec(),
                reason: "a reshape keeps the element count".into(),
            });
        }
        Ok(Tensor {
            shape: shape.to_vec(),
            ..self
        })
    }

    /// A new tensor (tag `tag`) with a copy of this one's contents.
    #[track_caller]
    pub fn duplicate(&self, tag: &'static str) -> Result<Tensor> {
        let t = self.ctx.uninit(&self.shape, tag)?;
        compute::copy(self.ctx.gpu(), self.raw(), t.raw(), self.len())?;
        Ok(t)
    }
}

impl<'a> From<&'a Tensor> for Binding<'a> {
    /// The tensor's elements (not the rest of its size class), for
    /// [`Gpu::dispatch_kernel`](crate::Gpu::dispatch_kernel).
    fn from(t: &'a Tensor) -> Self {
        Binding::f32s(t.raw(), t.len())
    }
}
