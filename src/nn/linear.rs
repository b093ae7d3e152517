//! `Linear`: `y = act(x · W + b)` with the bias and a ReLU fused into the matmul epilogue.
//!
//! In mixed precision ([`Module::set_precision`] with f16) the layer keeps an f16 working copy
//! of its weight beside the f32 master: forward reads f16 inputs and the f16 weight and writes
//! f16 outputs; backward writes the f16 input gradient, and accumulates the weight and bias
//! gradients in f32 straight from the f16 operands. The bias is read in f32 in both passes.

use super::{Module, Parameter, missing_saved};
use crate::DType;
use crate::compute::{Activation, MatmulOptions};
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::{Context, Tensor, tags};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// A fully connected layer, weight `[in, out]`, bias `[out]`, optionally followed by a fused
/// ReLU. Initialised like PyTorch's `nn.Linear`: uniform in `±1/sqrt(in)`, from a seed.
pub struct Linear {
    ctx: Arc<Context>,
    weight: Parameter,
    bias: Parameter,
    activation: Activation,
    input: Option<Arc<Tensor>>,
    output: Option<Arc<Tensor>>,
}

impl Linear {
    /// A layer of `inputs → outputs` with weights drawn from `seed`.
    pub fn new(ctx: &Arc<Context>, inputs: usize, outputs: usize, seed: u64) -> Result<Self> {
        if inputs == 0 || outputs == 0 {
            return Err(Error::invalid(
                "Linear size",
                format!("{inputs} → {outputs}: both must be at least 1"),
            ));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let bound = 1.0 / (inputs as f32).sqrt();
        let w: Vec<f32> = (0..inputs * outputs)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let b: Vec<f32> = (0..outputs)
            .map(|_| rng.random_range(-bound..bound))
            .collect();
        let param = |name: &str, data: &[f32], shape: &[usize]| -> Result<Parameter> {
            Ok(Parameter {
                name: name.to_string(),
                value: ctx.from_slice(data, shape, tags::PARAMS)?,
                grad: ctx.zeros(shape, tags::GRADIENTS)?,
                working: None,
            })
        };
        Ok(Self {
            ctx: Arc::clone(ctx),
            weight: param("weight", &w, &[inputs, outputs])?,
            bias: param("bias", &b, &[outputs])?,
            activation: Activation::None,
            input: None,
            output: None,
        })
    }

    /// Fuses a ReLU after the layer. (GELU needs its input in backward: use [`super::Gelu`].)
    pub fn with_relu(mut self) -> Self {
        self.activation = Activation::Relu;
        self
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.weight.value.shape()[0]
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.weight.value.shape()[1]
    }

    /// The weight parameter.
    pub fn weight(&self) -> &Parameter {
        &self.weight
    }

    /// The bias parameter.
    pub fn bias(&self) -> &Parameter {
        &self.bias
    }

    /// The compute type: f16 when the layer has an f16 working weight.
    pub fn dtype(&self) -> DType {
        if self.weight.working.is_some() {
            DType::F16
        } else {
            DType::F32
        }
    }

    /// The weight the kernels read: the f16 working copy in mixed precision, else the master.
    fn compute_weight(&self) -> &Tensor {
        self.weight.working.as_ref().unwrap_or(&self.weight.value)
    }
}

impl Module for Linear {
    fn name(&self) -> String {
        match self.activation {
            Activation::Relu => format!("Linear({}→{}, relu)", self.inputs(), self.outputs()),
            _ => format!("Linear({}→{})", self.inputs(), self.outputs()),
        }
    }

    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        let [batch, features] = input.dims2("Linear::forward")?;
        if features != self.inputs() {
            return Err(Error::Shape {
                op: "Linear::forward",
                left: input.shape().to_vec(),
                right: self.weight.value.shape().to_vec(),
                reason: format!("the input needs {} columns", self.inputs()),
            });
        }
        input.expect_dtype("Linear::forward", "the input", self.dtype())?;
        let out = self
            .ctx
            .uninit_of(&[batch, self.outputs()], self.dtype(), tags::ACTIVATIONS)?;
        let opts = MatmulOptions {
            bias: Some(self.bias.value.raw()),
            activation: self.activation,
            ..Default::default()
        };
        ops::matmul(&input, self.compute_weight(), &out, &opts)?;
        let out = Arc::new(out);
        if save {
            self.input = Some(input);
            if self.activation != Activation::None {
                self.output = Some(Arc::clone(&out));
            }
        }
        Ok(out)
    }

    fn backward(&mut self, grad: Tensor, input_grad: bool) -> Result<Option<Tensor>> {
        let input = self.input.take().ok_or_else(|| missing_saved("Linear"))?;
        let output = self.output.take();
        let [batch, outputs] = grad.dims2("Linear::backward")?;
        if outputs != self.outputs() || batch != input.shape()[0] {
            return Err(Error::Shape {
                op: "Linear::backward",
                left: grad.shape().to_vec(),
                right: vec![input.shape()[0], self.outputs()],
                reason: "the output gradient must match the forward output".into(),
            });
        }
        grad.expect_dtype("Linear::backward", "the output gradient", self.dtype())?;
        if let Some(output) = &output {
            // ReLU: the output is positive exactly where the pre-activation was.
            ops::activation_backward_in_place(self.activation, &grad, output)?;
        }
        drop(output);
        let inputs = self.inputs();
        // dW += xᵀ · dy (f32, also from f16 operands)
        let accumulate = MatmulOptions {
            trans_a: true,
            accumulate: true,
            ..Default::default()
        };
        ops::matmul(&input, &grad, &self.weight.grad, &accumulate)?;
        drop(input);
        // db += column sums of dy
        ops::column_sums(&grad, &self.bias.grad, true)?;
        if !input_grad {
            return Ok(None);
        }
        // dx = dy · Wᵀ
        let dx = self
            .ctx
            .uninit_of(&[batch, inputs], self.dtype(), tags::ACTIVATIONS)?;
        let trans_b = MatmulOptions {
            trans_b: true,
            ..Default::default()
        };
        ops::matmul(&grad, self.compute_weight(), &dx, &trans_b)?;
        Ok(Some(dx))
    }

    fn set_precision(&mut self, dtype: DType) -> Result<()> {
        self.weight.working = match dtype {
            DType::F32 => None,
            DType::F16 => {
                let w = self
                    .ctx
                    .uninit_of(self.weight.value.shape(), DType::F16, tags::PARAMS)?;
                ops::convert(&self.weight.value, &w)?;
                Some(w)
            }
        };
        Ok(())
    }

    fn parameters(&mut self) -> Vec<&mut Parameter> {
        vec![&mut self.weight, &mut self.bias]
    }

    fn clear_saved(&mut self) {
        self.input = None;
        self.output = None;
    }

    fn forward_flops(&self, batch: usize) -> u64 {
        2 * (batch * self.inputs() * self.outputs()) as u64
    }
}
