//! [`Tensor`]: a shape and a [`ManagedBuffer`] on the GPU, and the [`Context`] that makes them.
//!
//! Every tensor's bytes come from the [`MemoryManager`] under a tag ("activations",
//! "params", "gradients", "optimizer", "scratch"), so the account sees every byte a model
//! uses. Pool buffers are reused dirty, so constructors that promise contents (`zeros`,
//! `from_slice`) write them; `uninit` is for outputs a kernel overwrites entirely.
//!
//! A tensor has a [`DType`]: its buffer, its pool size class and its share of the account are
//! in bytes of that type. The host side always speaks f32: uploads convert to the tensor's
//! type on the host and [`Tensor::to_vec`] converts back, so an f16 tensor costs half the
//! device memory and bandwidth but no change to the code that fills or reads it.

use crate::DType;
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

    /// A context over `gpu` (e.g. one from [`Gpu::with_checks`]) and its backend, with a
    /// memory manager configured by `config`.
    pub fn with_gpu(gpu: Gpu, config: MemoryConfig) -> Result<Arc<Self>> {
        let memory = MemoryManager::with_config(Arc::clone(gpu.backend()), config)?;
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
        self.uninit_of(shape, DType::F32, tag)
    }

    /// As [`Context::uninit`], with elements of `dtype`. An f16 tensor on a device without
    /// `SHADER_F16` is [`Error::UnsupportedDType`].
    #[track_caller]
    pub fn uninit_of(
        self: &Arc<Self>,
        shape: &[usize],
        dtype: DType,
        tag: &'static str,
    ) -> Result<Tensor> {
        if dtype == DType::F16 {
            self.gpu.require_f16()?;
        }
        let len = element_count(shape)?;
        let bytes = dtype.buffer_bytes(len).ok_or_else(|| {
            Error::invalid(
                "tensor shape",
                format!("{shape:?} has more bytes than fit in 64 bits"),
            )
        })?;
        let buffer = self.memory.acquire(bytes, BufferUsage::Storage, tag)?;
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype,
            buffer,
            ctx: Arc::clone(self),
        })
    }

    /// A tensor of zeros.
    #[track_caller]
    pub fn zeros(self: &Arc<Self>, shape: &[usize], tag: &'static str) -> Result<Tensor> {
        self.zeros_of(shape, DType::F32, tag)
    }

    /// A tensor of zeros of `dtype` (all-zero bits are 0.0 in both types).
    #[track_caller]
    pub fn zeros_of(
        self: &Arc<Self>,
        shape: &[usize],
        dtype: DType,
        tag: &'static str,
    ) -> Result<Tensor> {
        let t = self.uninit_of(shape, dtype, tag)?;
        compute::fill(&self.gpu, t.raw(), t.words(), 0.0)?;
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
        self.from_slice_of(data, shape, DType::F32, tag)
    }

    /// A tensor of `dtype` holding `data` (row-major) with `shape`, converted on the host
    /// (to the nearest f16, ties to even; beyond 65504 to infinity).
    #[track_caller]
    pub fn from_slice_of(
        self: &Arc<Self>,
        data: &[f32],
        shape: &[usize],
        dtype: DType,
        tag: &'static str,
    ) -> Result<Tensor> {
        let t = self.uninit_of(shape, dtype, tag)?;
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

/// A row-major tensor on the GPU (f32 or f16, see [`DType`]). Dropping it returns its buffer
/// to the pool.
pub struct Tensor {
    shape: Vec<usize>,
    dtype: DType,
    buffer: ManagedBuffer<WgpuBackend>,
    ctx: Arc<Context>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("shape", &self.shape)
            .field("dtype", &self.dtype)
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

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Bytes of the elements (`len * dtype.size()`, before rounding to words or size classes).
    pub fn bytes(&self) -> u64 {
        (self.len() * self.dtype.size()) as u64
    }

    /// [`Error::DType`] unless the tensor is of `dtype`.
    pub fn expect_dtype(&self, op: &'static str, what: &'static str, dtype: DType) -> Result<()> {
        if self.dtype == dtype {
            return Ok(());
        }
        Err(Error::DType {
            op,
            what,
            expected: dtype,
            found: self.dtype,
        })
    }

    /// 4-byte words the elements occupy (what word-wise kernels such as `fill` cover).
    fn words(&self) -> usize {
        (self.len() * self.dtype.size()).div_ceil(4)
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

    /// `[rows, cols]` of the tensor read as a matrix: its last dimension is the columns and all
    /// the leading ones together the rows (`[batch, seq, width]` is `[batch · seq, width]`).
    pub fn matrix_dims(&self, op: &'static str) -> Result<[usize; 2]> {
        match self.shape[..] {
            [.., c] if self.shape.len() >= 2 => Ok([self.len() / c.max(1), c]),
            _ => Err(Error::Shape {
                op,
                left: self.shape.clone(),
                right: vec![],
                reason: "expected a tensor of at least 2 dimensions [.., cols]".into(),
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

    /// Overwrites the contents with `data` (exactly `len()` values), converted to the tensor's
    /// type on the host.
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
        match self.dtype {
            DType::F32 => self.buffer.write(0, bytemuck::cast_slice(data)),
            DType::F16 => {
                // Whole words: an odd count gets one f16 zero of padding.
                let mut bits: Vec<u16> = data
                    .iter()
                    .map(|&v| half::f16::from_f32(v).to_bits())
                    .collect();
                if bits.len() % 2 == 1 {
                    bits.push(0);
                }
                self.buffer.write(0, bytemuck::cast_slice(&bits))
            }
        }
    }

    /// Copies the contents to the host as f32 (waits for the GPU; f16 converts exactly).
    pub fn to_vec(&self) -> Result<Vec<f32>> {
        match self.dtype {
            DType::F32 => {
                let mut out = vec![0f32; self.len()];
                self.ctx
                    .backend()
                    .read(self.raw(), 0, bytemuck::cast_slice_mut(&mut out))?;
                Ok(out)
            }
            DType::F16 => {
                let mut bits = vec![0u16; self.len()];
                self.ctx
                    .backend()
                    .read(self.raw(), 0, bytemuck::cast_slice_mut(&mut bits))?;
                Ok(bits
                    .into_iter()
                    .map(|b| half::f16::from_bits(b).to_f32())
                    .collect())
            }
        }
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

    /// A new tensor (tag `tag`, same type) with a copy of this one's contents.
    #[track_caller]
    pub fn duplicate(&self, tag: &'static str) -> Result<Tensor> {
        let t = self.ctx.uninit_of(&self.shape, self.dtype, tag)?;
        match self.dtype {
            DType::F32 => compute::copy(self.ctx.gpu(), self.raw(), t.raw(), self.len())?,
            // A buffer copy, not an f32 kernel: two f16s in a word can look like an f32 NaN,
            // whose bits a shader need not preserve.
            DType::F16 => {
                self.ctx
                    .backend()
                    .copy(self.raw(), 0, t.raw(), 0, (self.words() * 4) as u64)?
            }
        }
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
