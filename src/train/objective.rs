//! What the [`Trainer`](super::Trainer) minimises: an [`Objective`] turns the model's output
//! and a micro-batch's [`Targets`] into the mean loss and its gradient.
//!
//! The default, [`SoftmaxCrossEntropy`], serves both classification (one label per row of an
//! `[n, classes]` output) and next-token prediction (one target per position of an
//! `[n, context, vocab]` or `[n · context, vocab]` output): the output is read as
//! `targets × classes` rows either way, and the mean is over targets.

use super::source::Targets;
use crate::error::{Error, Result};
use crate::nn::{LossOutput, softmax_cross_entropy_scaled};
use crate::tensor::Tensor;
use std::sync::Arc;

/// A loss over a micro-batch. The gradient it returns has the output's shape and is that of
/// the mean over the micro-batch's targets times `grad_scale` (the trainer passes the
/// micro-batch's share of the batch, so accumulated gradients are the batch's mean).
pub trait Objective: Send {
    /// A short name for logs (`"softmax cross-entropy"`).
    fn name(&self) -> String;

    /// Mean loss, its gradient with respect to `output` times `grad_scale`, and the number of
    /// targets predicted right. Targets the output cannot represent are an error, not a NaN.
    fn loss(&self, output: Arc<Tensor>, targets: &Targets, grad_scale: f32) -> Result<LossOutput>;
}

/// Softmax over the last dimension, then the negative log-likelihood of the target.
#[derive(Debug, Clone, Copy, Default)]
pub struct SoftmaxCrossEntropy;

impl Objective for SoftmaxCrossEntropy {
    fn name(&self) -> String {
        "softmax cross-entropy".into()
    }

    fn loss(&self, output: Arc<Tensor>, targets: &Targets, grad_scale: f32) -> Result<LossOutput> {
        let shape = output.shape().to_vec();
        let classes = *shape.last().unwrap_or(&0);
        let n = targets.host.len();
        if classes == 0 || output.len() != n * classes {
            return Err(Error::Shape {
                op: "softmax cross-entropy",
                left: shape,
                right: vec![n],
                reason: "the output needs one row of classes per target".into(),
            });
        }
        if let Some(i) = targets.host.iter().position(|&t| t as usize >= classes) {
            return Err(Error::invalid(
                "label",
                format!(
                    "label {} (row {i} of the batch) is out of range for a model with {classes} outputs",
                    targets.host[i]
                ),
            ));
        }
        // The loss scale of mixed precision is in `grad_scale`: the f16 kernel applies it before
        // the gradient is rounded to f16.
        let out = if shape.len() == 2 {
            softmax_cross_entropy_scaled(&output, &targets.buffer, n, grad_scale)?
        } else {
            // A view as [targets, classes]: the output itself when nothing else holds it.
            let rows = Arc::try_unwrap(output)
                .or_else(|shared| shared.duplicate(crate::tensor::tags::ACTIVATIONS))?
                .reshape(&[n, classes])?;
            let out = softmax_cross_entropy_scaled(&rows, &targets.buffer, n, grad_scale)?;
            LossOutput {
                grad: out.grad.reshape(&shape)?,
                ..out
            }
        };
        Ok(out)
    }
}
