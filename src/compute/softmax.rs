//! Entry point of `shaders/softmax.wgsl`: softmax cross-entropy forward and backward in one
//! pass over the logits, with the mean loss and the count of correct predictions reduced on the
//! GPU (so a training step reads back two numbers, or none).

use super::validate::{distinct_written, elements, product};
use super::{Binding, Gpu, Kernel, SCRATCH_PARTIALS, reduce};
use crate::error::{Error, Result};

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    batch: u32,
    classes: u32,
    groups: u32,
    inv_batch: f32,
}

/// Where [`softmax_cross_entropy`] writes its results.
#[derive(Debug, Clone, Copy)]
pub struct CrossEntropyOutputs<'a> {
    /// `[batch, classes]` f32: the gradient of the mean loss with respect to the logits.
    pub grad_logits: &'a wgpu::Buffer,
    /// One f32: the mean loss.
    pub loss: &'a wgpu::Buffer,
    /// One u32: the number of rows whose first maximum is at the label.
    pub correct: &'a wgpu::Buffer,
}

/// Softmax cross-entropy of `logits` (`[batch, classes]`, row-major) against `labels` (`batch`
/// u32 class indices), forward and backward:
///
/// - `out.grad_logits[r, c] = (softmax(logits[r])[c] - [c == labels[r]]) / batch`, the gradient of
///   the mean loss;
/// - `out.loss[0]` = the mean over rows of `logsumexp(logits[r]) - logits[r, labels[r]]`;
/// - `out.correct[0]` (u32) = how many rows have their first maximum at the label.
///
/// A label `>= classes` cannot be reported from the GPU: its row's loss is NaN, so the mean is
/// NaN. `batch` or `classes` of 0 is an error.
pub fn softmax_cross_entropy(
    gpu: &Gpu,
    logits: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    batch: usize,
    classes: usize,
    out: &CrossEntropyOutputs<'_>,
) -> Result<()> {
    let CrossEntropyOutputs {
        grad_logits,
        loss,
        correct,
    } = *out;
    if batch == 0 || classes == 0 {
        return Err(Error::Shape {
            op: "softmax_cross_entropy",
            left: vec![batch, classes],
            right: vec![batch],
            reason: "logits need at least one row and one class".into(),
        });
    }
    let n = product("softmax_cross_entropy", batch, classes)?;
    elements(gpu, "softmax_cross_entropy logits", logits, n)?;
    elements(gpu, "softmax_cross_entropy labels", labels, batch)?;
    elements(gpu, "softmax_cross_entropy grad_logits", grad_logits, n)?;
    elements(gpu, "softmax_cross_entropy loss", loss, 1)?;
    elements(gpu, "softmax_cross_entropy correct", correct, 1)?;
    distinct_written(&[grad_logits, loss, correct, logits, labels])?;
    let groups = (batch as u32).min(SCRATCH_PARTIALS);
    let inv_batch = (1.0 / batch as f64) as f32;
    let (_guard, scratch) = gpu.scratch();
    gpu.dispatch(
        Kernel {
            shader: "softmax",
            entry: "softmax_xent",
        },
        &Params {
            batch: batch as u32,
            classes: classes as u32,
            groups,
            inv_batch,
        },
        &[
            Binding::f32s(grad_logits, n),
            Binding::f32s(logits, n),
            Binding::f32s(labels, batch),
            Binding::f32s(scratch, SCRATCH_PARTIALS as usize * 2),
        ],
        [groups, 1, 1],
    )?;
    reduce::finish_loss_count(gpu, scratch, groups, inv_batch, loss, correct)
}
