//! Entry points of `shaders/optim_mixed.wgsl`: the optimizer steps of mixed-precision training
//! and the overflow check before them.
//!
//! A mixed step reads the f32 gradient (which carries the loss scale), divides the scale out,
//! updates the f32 master weight and state as [`super::adam`] / [`super::sgd`] do, zeroes the
//! gradient, and writes the f16 working copy of the weight, all in one pass: no separate
//! unscale, zeroing or conversion kernel.

use super::optim::{AdamParams, SgdParams};
use super::validate::{distinct_written, elements, elements_of};
use super::{Binding, Gpu, Kernel};
use crate::DType;
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
    inv_scale: f32,
    _pad: [u32; 2],
}

const fn kernel(entry: &'static str) -> Kernel {
    Kernel {
        shader: "optim_mixed",
        entry,
    }
}

/// Sets `flag[0]` (a u32 the caller zeroed) to 1 when any of the first `n` f32 values of `grad`
/// is infinite or NaN; leaves it alone otherwise. Run it over every gradient of a step, then
/// read the one flag.
pub fn check_finite(gpu: &Gpu, grad: &wgpu::Buffer, n: usize, flag: &wgpu::Buffer) -> Result<()> {
    gpu.require_f16()?;
    let n32 = elements(gpu, "check_finite grad", grad, n)?;
    elements(gpu, "check_finite flag", flag, 1)?;
    distinct_written(&[flag, grad])?;
    if n == 0 {
        return Ok(());
    }
    let params = Params {
        n: n32,
        ..bytemuck::Zeroable::zeroed()
    };
    gpu.dispatch(
        kernel("check_finite"),
        &params,
        &[Binding::f32s(flag, 1), Binding::f32s(grad, n)],
        gpu.groups_for(n as u64)?,
    )
}

fn check_half(gpu: &Gpu, half: Option<&wgpu::Buffer>, n: usize) -> Result<()> {
    if let Some(h) = half {
        elements_of(gpu, "mixed step f16 weights", h, n, DType::F16)?;
    }
    Ok(())
}

/// One Adam (AdamW) step over `n` parameters from a gradient scaled by `1 / inv_scale`:
/// `grad * inv_scale` is the gradient [`super::adam`] would see. Zeroes `grad`; writes the
/// updated weight rounded to f16 into `half` when given.
#[allow(clippy::too_many_arguments)]
pub fn adam_mixed(
    gpu: &Gpu,
    param: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    m: &wgpu::Buffer,
    v: &wgpu::Buffer,
    half: Option<&wgpu::Buffer>,
    n: usize,
    step: u32,
    hp: &AdamParams,
    inv_scale: f32,
) -> Result<()> {
    gpu.require_f16()?;
    if step == 0 {
        return Err(Error::invalid("adam step", "steps count from 1"));
    }
    let mut n32 = 0;
    for b in [param, grad, m, v] {
        n32 = elements(gpu, "adam_mixed", b, n)?;
    }
    check_half(gpu, half, n)?;
    let mut written = vec![param, grad, m, v];
    written.extend(half);
    distinct_written(&written)?;
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
        inv_scale,
        _pad: [0; 2],
    };
    let mut bindings = vec![
        Binding::f32s(param, n),
        Binding::f32s(grad, n),
        Binding::f32s(m, n),
        Binding::f32s(v, n),
    ];
    bindings.extend(half.map(|h| Binding::of(h, n, DType::F16)));
    let entry = if half.is_some() {
        "adam_mixed_h"
    } else {
        "adam_mixed"
    };
    gpu.dispatch(kernel(entry), &params, &bindings, gpu.groups_for(n as u64)?)
}

/// One SGD step over `n` parameters from a gradient scaled by `1 / inv_scale` (see
/// [`adam_mixed`]); `velocity` is needed when `momentum != 0`.
#[allow(clippy::too_many_arguments)]
pub fn sgd_mixed(
    gpu: &Gpu,
    param: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    velocity: Option<&wgpu::Buffer>,
    half: Option<&wgpu::Buffer>,
    n: usize,
    hp: &SgdParams,
    inv_scale: f32,
) -> Result<()> {
    gpu.require_f16()?;
    let n32 = elements(gpu, "sgd_mixed param", param, n)?;
    elements(gpu, "sgd_mixed grad", grad, n)?;
    check_half(gpu, half, n)?;
    let velocity = match (hp.momentum != 0.0, velocity) {
        (false, _) => None,
        (true, Some(v)) => Some(v),
        (true, None) => {
            return Err(Error::invalid(
                "sgd velocity",
                "momentum != 0 needs a velocity buffer of n values",
            ));
        }
    };
    if let Some(v) = velocity {
        elements(gpu, "sgd_mixed velocity", v, n)?;
    }
    let mut written = vec![param, grad];
    written.extend(velocity);
    written.extend(half);
    distinct_written(&written)?;
    if n == 0 {
        return Ok(());
    }
    let params = Params {
        n: n32,
        lr: hp.lr,
        beta1: hp.momentum,
        weight_decay: hp.weight_decay,
        flag: u32::from(hp.nesterov),
        inv_scale,
        ..bytemuck::Zeroable::zeroed()
    };
    let mut bindings = vec![Binding::f32s(param, n), Binding::f32s(grad, n)];
    bindings.extend(velocity.map(|v| Binding::f32s(v, n)));
    bindings.extend(half.map(|h| Binding::of(h, n, DType::F16)));
    let entry = match (velocity.is_some(), half.is_some()) {
        (false, false) => "sgd_plain_mixed",
        (false, true) => "sgd_plain_mixed_h",
        (true, false) => "sgd_momentum_mixed",
        (true, true) => "sgd_momentum_mixed_h",
    };
    gpu.dispatch(kernel(entry), &params, &bindings, gpu.groups_for(n as u64)?)
}
