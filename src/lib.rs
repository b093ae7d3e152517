//! # wgmem: memory-managed GPU compute and training on wgpu
//!
//! Memory is the limit when training on one GPU, most of all on a laptop whose GPU shares the
//! machine's memory. wgmem makes it a measured, first-class thing: every buffer is obtained
//! through one seam ([`backend::Backend`]), accounted, pooled and released on time.
//!
//! Layers, from the bottom (nothing below knows what is above):
//! - [`backend`]: the allocation seam; [`WgpuBackend`] for Metal, Vulkan, DX12 and GL,
//!   [`HostBackend`] for exact tests;
//! - [`profile`]: where memory went (events by source location, reports, traces, plots);
//! - [`pressure`]: levels and sources (OS, device budget, simulated) and a monitor;
//! - [`memory`]: the [`MemoryManager`] account, pools with bounded-waste size classes,
//!   [`ManagedBuffer`] handles, out-of-memory recovery and the graded pressure response;
//! - [`compute`]: WGSL kernels, pipeline cache, batched dispatch;
//! - [`tensor`], [`nn`], [`optim`]: tensors on pooled buffers, layers with explicit backward
//!   passes, SGD and Adam;
//! - [`checkpoint`]: recompute instead of store, with a planner that meets a byte budget;
//! - [`train`]: a [`Trainer`] that adapts its micro-batch to memory and loses no sample;
//! - [`distributed`]: data-parallel training over MPI (feature `mpi`), with ZeRO-1.
//!
//! [`best_practices`] is the guide (`docs/MEMORY_BEST_PRACTICES.md`).
//!
//! ```
//! use wgmem::{Backend, BufferUsage, HostBackend};
//!
//! let backend = HostBackend::new();
//! let buffer = backend.allocate(1024, BufferUsage::Storage)?;
//! backend.write(&buffer, 0, bytemuck::cast_slice(&[1.0f32, 2.0, 3.0, 4.0]))?;
//! let mut out = [0.0f32; 4];
//! backend.read(&buffer, 0, bytemuck::cast_slice_mut(&mut out))?;
//! assert_eq!(out, [1.0, 2.0, 3.0, 4.0]);
//! backend.free(buffer);
//! # Ok::<(), wgmem::Error>(())
//! ```
#![deny(missing_docs)]

#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod backend;
#[doc = include_str!("../docs/MEMORY_BEST_PRACTICES.md")]
pub mod best_practices {}
pub mod checkpoint;
pub mod compute;
pub mod data;
pub mod distributed;
mod dtype;
mod error;
pub mod footprint;
pub mod memory;
pub mod nn;
pub mod ops;
pub mod optim;
pub mod pressure;
pub mod profile;
mod sync;
pub mod tensor;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;
pub mod train;
mod units;

pub use backend::{
    Backend, BufferUsage, Capabilities, CoopMode, DeviceSignals, HostBackend, UsageFlags,
    WgpuBackend, WgpuBackendOptions,
};
pub use compute::{Gpu, KernelChecks};
pub use dtype::DType;
pub use error::{Error, OutOfMemoryReport, Result, ShaderPosition};
pub use memory::{ManagedBuffer, MemoryConfig, MemoryManager, MemoryStats};
pub use pressure::{PressureLevel, PressureMonitor, PressureSource};
pub use profile::MemoryProfiler;
pub use tensor::{Context, Tensor};
pub use train::{Trainer, TrainerConfig};
