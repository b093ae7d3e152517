//! Entry point of `shaders/softmax_f16.wgsl`: softmax cross-entropy on f16 logits, forward and
//! backward in one pass, f32 inside, with the gradient scaled before it is rounded to f16 (the
//! loss scale of mixed-precision training is applied here, where the gradient is made).

use super::softmax::CrossEntropyOutputs;
use super::validate::{distinct_written, elements, elements_of, product};
use super::{Binding, Gpu, Kernel, SCRATCH_PARTIALS, reduce};
use crate::DType;
use crate::error::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    classes: u32,
    groups: u32,
    inv_batch: f32,
    grad_scale: f32,
    _pad: [u32; 3],
}

/// As [`super::softmax_cross_entropy`], with `logits` and `out.grad_logits` f16 and
/// `grad_logits[r, c] = f16((softmax(logits[r])[c] - [c == labels[r]]) / batch * grad_scale)`.
/// The loss (f32) and the correct count (u32) are unscaled.
pub fn softmax_cross_entropy_f16(
    gpu: &Gpu,
    logits: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    batch: usize,
    classes: usize,
    grad_scale: f32,
    out: &CrossEntropyOutputs<'_>,
) -> Result<()> {
    gpu.require_f16()?;
    let CrossEntropyOutputs {
        grad_logits,
        loss,
        correct,
    } = *out;
    if batch == 0 || classes == 0 {
        return Err(Error::Shape {
            op: "softmax_cross_entropy_f16",
            left: vec![batch, classes],
            right: vec![batch],
            reason: "logits need at least one row and one class".into(),
        });
    }
    let n = product("softmax_cross_entropy_f16", batch, classes)?;
    elements_of(
        gpu,
        "softmax_cross_entropy_f16 logits",
        logits,
        n,
        DType::F16,
    )?;
    elements(gpu, "softmax_cross_entropy_f16 labels", labels, batch)?;
    elements_of(
        gpu,
        "softmax_cross_entropy_f16 grad_logits",
        grad_logits,
        n,
        DType::F16,
    )?;
    elements(gpu, "softmax_cross_entropy_f16 loss", loss, 1)?;
    elements(gpu, "softmax_cross_entropy_f16 correct", correct, 1)?;
    distinct_written(&[grad_logits, loss, correct, logits, labels])?;
    let groups = (batch as u32).min(SCRATCH_PARTIALS);
    let inv_batch = (1.0 / batch as f64) as f32;
    let (_guard, scratch) = gpu.scratch();
    gpu.dispatch(
        Kernel {
            shader: "softmax_f16",
            entry: "softmax_xent_h",
        },
        &Params {
            batch: batch as u32,
            classes: classes as u32,
            groups,
            inv_batch,
            grad_scale,
            _pad: [0; 3],
        },
        &[
            Binding::of(grad_logits, n, DType::F16),
            Binding::of(logits, n, DType::F16),
            Binding::f32s(labels, batch),
            Binding::f32s(scratch, SCRATCH_PARTIALS as usize * 2),
        ],
        [groups, 1, 1],
    )?;
    reduce::finish_loss_count(gpu, scratch, groups, inv_batch, loss, correct)
}
