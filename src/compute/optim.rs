//! Entry points of `shaders/optim.wgsl`: SGD (momentum, Nesterov, weight decay) and
//! Adam/AdamW updates in one pass over a parameter buffer and its optimizer state.

use super::validate::{distinct, distinct_written, elements};
use super::{Binding, Gpu, Kernel};
use crate::error::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
    step_size: f32,
    inv_sqrt_bc2: f32,
    flag: u32,
    _pad: [u32; 3],
}

/// Hyperparameters of [`sgd`], as in PyTorch's `SGD` (dampening 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SgdParams {
    /// Learning rate.
    pub lr: f32,
    /// Momentum factor; 0 for plain SGD (no velocity buffer needed).
    pub momentum: f32,
    /// L2 penalty added to the gradient: `g + weight_decay * p`.
    pub weight_decay: f32,
    /// Nesterov momentum.
    pub nesterov: bool,
}

/// Hyperparameters of [`adam`], as in PyTorch's `Adam` and `AdamW`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    /// Learning rate.
    pub lr: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the denominator.
    pub eps: f32,
    /// Weight decay: added to the gradient (Adam) or applied to the weights (AdamW).
    pub weight_decay: f32,
    /// AdamW's decoupled weight decay: `p *= 1 - lr * weight_decay` before the update.
    pub decoupled: bool,
}

impl Default for AdamParams {
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

fn params_n(gpu: &Gpu, op: &'static str, bufs: &[&wgpu::Buffer], n: usize) -> Result<u32> {
    let mut n32 = 0;
    for b in bufs {
        n32 = elements(gpu, op, b, n)?;
    }
    Ok(n32)
}

const fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        shader: "optim",
        entry,
    }
}

/// One SGD step over `n` parameters: `g = grad + wd p; v = momentum v + g;
/// p -= lr (nesterov ? g + momentum v : v)`. `velocity` (zeroed before the first step) is
/// required when `momentum != 0`, and ignored otherwise.
pub fn sgd(
    gpu: &Gpu,
    param: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    velocity: Option<&wgpu::Buffer>,
    n: usize,
    hp: &SgdParams,
) -> Result<()> {
    let n32 = params_n(gpu, "sgd", &[param, grad], n)?;
    distinct(param, &[grad])?;
    let mut params = Params {
        n: n32,
        lr: hp.lr,
        beta1: hp.momentum,
        beta2: 0.0,
        eps: 0.0,
        weight_decay: hp.weight_decay,
        step_size: 0.0,
        inv_sqrt_bc2: 0.0,
        flag: u32::from(hp.nesterov),
        _pad: [0; 3],
    };
    if hp.momentum == 0.0 {
        if n == 0 {
            return Ok(());
        }
        params.flag = 0;
        return gpu.dispatch(
            kernel("sgd_plain"),
            &params,
            &[Binding::f32s(param, n), Binding::f32s(grad, n)],
            gpu.groups_for(n as u64)?,
        );
    }
    let velocity = velocity.ok_or_else(|| {
        Error::invalid(
            "sgd velocity",
            "momentum != 0 needs a velocity buffer of n values",
        )
    })?;
    elements(gpu, "sgd velocity", velocity, n)?;
    distinct_written(&[param, velocity, grad])?;
    if n == 0 {
        return Ok(());
    }
    gpu.dispatch(
        kernel("sgd_momentum"),
        &params,
        &[
            Binding::f32s(param, n),
            Binding::f32s(grad, n),
            Binding::f32s(velocity, n),
        ],
        gpu.groups_for(n as u64)?,
    )
}

/// One Adam (or AdamW) step over `n` parameters with moments `m` and `v` (zeroed before the
/// first step). `step` counts from 1 and sets the bias corrections `1 - beta^step`.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    gpu: &Gpu,
    param: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    m: &wgpu::Buffer,
    v: &wgpu::Buffer,
    n: usize,
    step: u32,
    hp: &AdamParams,
) -> Result<()> {
    if step == 0 {
        return Err(Error::invalid("adam step", "steps count from 1"));
    }
    let n32 = params_n(gpu, "adam", &[param, grad, m, v], n)?;
    distinct_written(&[param, m, v, grad])?;
    if n == 0 {
        return Ok(());
    }
    let bc1 = 1.0 - f64::from(hp.beta1).powi(step.min(i32::MAX as u32) as i32);
    let bc2 = 1.0 - f64::from(hp.beta2).powi(step.min(i32::MAX as u32) as i32);
    let params = Params {
        n: n32,
        lr: hp.lr,
        beta1: hp.beta1,
        beta2: hp.beta2,
        eps: hp.eps,
        weight_decay: hp.weight_decay,
        step_size: (f64::from(hp.lr) / bc1) as f32,
        inv_sqrt_bc2: (1.0 / bc2.sqrt()) as f32,
        flag: u32::from(hp.decoupled),
        _pad: [0; 3],
    };
    gpu.dispatch(
        kernel("adam"),
        &params,
        &[
            Binding::f32s(param, n),
            Binding::f32s(grad, n),
            Binding::f32s(m, n),
            Binding::f32s(v, n),
        ],
        gpu.groups_for(n as u64)?,
    )
}
