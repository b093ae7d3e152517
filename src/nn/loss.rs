//! Softmax cross-entropy, forward and backward in one kernel.

use crate::DType;
use crate::backend::WgpuBackend;
use crate::compute;
use crate::error::{Error, Result};
use crate::memory::ManagedBuffer;
use crate::tensor::{Tensor, tags};

/// What [`softmax_cross_entropy`] produces; the scalars stay on the GPU until read.
pub struct LossOutput {
    /// Gradient of the mean loss with respect to the logits.
    pub grad: Tensor,
    /// The mean loss, one value.
    pub loss: Tensor,
    /// The number of rows whose argmax is the label, one `u32`.
    pub correct: ManagedBuffer<WgpuBackend>,
}

impl LossOutput {
    /// Reads the mean loss and the number of correct rows (waits for the GPU).
    pub fn read(&self) -> Result<(f32, u32)> {
        let loss = self.loss.to_vec()?[0];
        let correct = self.loss.context().read_u32(&self.correct, 1)?[0];
        Ok((loss, correct))
    }
}

/// Mean softmax cross-entropy of `logits` `[batch, classes]` against `labels` (`batch` u32).
pub fn softmax_cross_entropy(
    logits: &Tensor,
    labels: &ManagedBuffer<WgpuBackend>,
    batch_labels: usize,
) -> Result<LossOutput> {
    softmax_cross_entropy_scaled(logits, labels, batch_labels, 1.0)
}

/// As [`softmax_cross_entropy`], with the gradient multiplied by `grad_scale` (a micro-batch's
/// share of the batch, times the loss scale in mixed precision). The gradient has the logits'
/// type; for f16 logits the scale is applied before the gradient is rounded to f16, which is
/// what keeps small gradients from flushing to zero.
pub fn softmax_cross_entropy_scaled(
    logits: &Tensor,
    labels: &ManagedBuffer<WgpuBackend>,
    batch_labels: usize,
    grad_scale: f32,
) -> Result<LossOutput> {
    let ctx = logits.context();
    let [batch, classes] = logits.dims2("softmax_cross_entropy")?;
    if batch_labels != batch {
        return Err(Error::Shape {
            op: "softmax_cross_entropy",
            left: logits.shape().to_vec(),
            right: vec![batch_labels],
            reason: "one label per row of logits".into(),
        });
    }
    let grad = ctx.uninit_of(&[batch, classes], logits.dtype(), tags::ACTIVATIONS)?;
    let loss = ctx.uninit(&[1], tags::SCRATCH)?;
    let correct = ctx
        .memory()
        .acquire(4, crate::backend::BufferUsage::Storage, tags::SCRATCH)?;
    let out = compute::CrossEntropyOutputs {
        grad_logits: grad.raw(),
        loss: loss.raw(),
        correct: correct.raw(),
    };
    let gpu = ctx.gpu();
    match logits.dtype() {
        DType::F32 => {
            compute::softmax_cross_entropy(gpu, logits.raw(), labels.raw(), batch, classes, &out)?;
            if grad_scale != 1.0 {
                compute::scale_in_place(gpu, grad_scale, grad.raw(), grad.len())?;
            }
        }
        DType::F16 => compute::softmax_cross_entropy_f16(
            gpu,
            logits.raw(),
            labels.raw(),
            batch,
            classes,
            grad_scale,
            &out,
        )?,
    }
    Ok(LossOutput {
        grad,
        loss,
        correct,
    })
}
