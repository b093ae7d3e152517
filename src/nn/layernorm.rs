//! `LayerNorm` over the last dimension, with learned scale and shift.
//!
//! In mixed precision ([`Module::set_precision`] with f16) the input, output and their
//! gradients are f16 while gamma, beta, their gradients and the row statistics stay f32: the
//! kernels normalise in f32 and round once.

use super::{Module, Parameter, missing_saved};
use crate::DType;
use crate::compute::{LayerNormBuffers, LayerNormGrads, column_sum_partials};
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::{Context, Tensor, tags};
use std::sync::Arc;

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta` over the last dimension (`width`); any
/// leading shape. `gamma` starts at 1, `beta` at 0, `eps` at 1e-5 (PyTorch's defaults).
pub struct LayerNorm {
    ctx: Arc<Context>,
    gamma: Parameter,
    beta: Parameter,
    eps: f32,
    dtype: DType,
    saved: Option<(Arc<Tensor>, Tensor)>,
}

impl LayerNorm {
    /// A layer norm over `width` features.
    pub fn new(ctx: &Arc<Context>, width: usize) -> Result<Self> {
        if width == 0 {
            return Err(Error::invalid("LayerNorm width", "at least 1 feature"));
        }
        let param = |name: &str, value: f32| -> Result<Parameter> {
            Ok(Parameter {
                name: name.to_string(),
                value: ctx.from_slice(&vec![value; width], &[width], tags::PARAMS)?,
                grad: ctx.zeros(&[width], tags::GRADIENTS)?,
                working: None,
            })
        };
        Ok(Self {
            ctx: Arc::clone(ctx),
            gamma: param("gamma", 1.0)?,
            beta: param("beta", 0.0)?,
            eps: 1e-5,
            dtype: DType::F32,
            saved: None,
        })
    }

    /// Sets the variance epsilon (must be positive and finite).
    pub fn with_eps(mut self, eps: f32) -> Result<Self> {
        if !(eps > 0.0 && eps.is_finite()) {
            return Err(Error::invalid(
                "LayerNorm eps",
                format!("{eps}; use a small positive number such as 1e-5"),
            ));
        }
        self.eps = eps;
        Ok(self)
    }

    /// Features normalised.
    pub fn width(&self) -> usize {
        self.gamma.value.len()
    }

    /// The scale.
    pub fn gamma(&self) -> &Parameter {
        &self.gamma
    }

    /// The shift.
    pub fn beta(&self) -> &Parameter {
        &self.beta
    }

    /// The type of the activations: f16 in mixed precision.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    fn rows(&self, t: &Tensor, op: &'static str) -> Result<usize> {
        t.expect_dtype(op, "the activations", self.dtype)?;
        match t.shape().last() {
            Some(&w) if w == self.width() => Ok(t.len() / w),
            _ => Err(Error::Shape {
                op,
                left: t.shape().to_vec(),
                right: vec![self.width()],
                reason: format!("the last dimension must be {}", self.width()),
            }),
        }
    }
}

impl Module for LayerNorm {
    fn name(&self) -> String {
        format!("LayerNorm({})", self.width())
    }

    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        let rows = self.rows(&input, "LayerNorm::forward")?;
        let width = self.width();
        let out = self
            .ctx
            .uninit_of(input.shape(), self.dtype, tags::ACTIVATIONS)?;
        let tag = if save {
            tags::ACTIVATIONS
        } else {
            tags::SCRATCH
        };
        let stats = self.ctx.uninit(&[2 * rows], tag)?;
        ops::layer_norm_forward(
            &input,
            &out,
            [rows, width],
            self.eps,
            &LayerNormBuffers {
                gamma: self.gamma.value.raw(),
                beta: self.beta.value.raw(),
                stats: stats.raw(),
            },
        )?;
        if save {
            self.saved = Some((input, stats));
        }
        Ok(Arc::new(out))
    }

    fn backward(&mut self, grad: Tensor, input_grad: bool) -> Result<Option<Tensor>> {
        let (input, stats) = self
            .saved
            .take()
            .ok_or_else(|| missing_saved("LayerNorm"))?;
        if grad.shape() != input.shape() {
            return Err(Error::Shape {
                op: "LayerNorm::backward",
                left: grad.shape().to_vec(),
                right: input.shape().to_vec(),
                reason: "the output gradient must match the forward output".into(),
            });
        }
        let rows = self.rows(&input, "LayerNorm::backward")?;
        grad.expect_dtype("LayerNorm::backward", "the output gradient", self.dtype)?;
        let width = self.width();
        let dx = self
            .ctx
            .uninit_of(input.shape(), self.dtype, tags::ACTIVATIONS)?;
        let product = self.ctx.uninit(input.shape(), tags::SCRATCH)?;
        let partials = column_sum_partials(rows, width).unwrap_or(0);
        let column = self.ctx.uninit(&[partials.max(width)], tags::SCRATCH)?;
        // The scratch (`dy * xhat` and a column sum) is f32 in both precisions.
        ops::layer_norm_backward(
            &input,
            &grad,
            [rows, width],
            &LayerNormBuffers {
                gamma: self.gamma.value.raw(),
                beta: self.beta.value.raw(),
                stats: stats.raw(),
            },
            &LayerNormGrads {
                dx: dx.raw(),
                gamma: self.gamma.grad.raw(),
                beta: self.beta.grad.raw(),
                scratch: [product.raw(), column.raw()],
            },
        )?;
        Ok(input_grad.then_some(dx))
    }

    /// Gamma and beta stay f32 (no working copy): only the activations change type.
    fn set_precision(&mut self, dtype: DType) -> Result<()> {
        self.dtype = dtype;
        Ok(())
    }

    fn parameters(&mut self) -> Vec<&mut Parameter> {
        vec![&mut self.gamma, &mut self.beta]
    }

    fn clear_saved(&mut self) {
        self.saved = None;
    }

    fn forward_flops(&self, batch: usize) -> u64 {
        8 * (batch * self.width()) as u64
    }
}
