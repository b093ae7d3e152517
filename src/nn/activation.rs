//! Standalone activation layers (a ReLU can also be fused into [`super::Linear`]). They run in
//! their input's type (f32, or f16 in mixed precision).

use super::{Module, Recompute, missing_saved};
use crate::compute::Activation;
use crate::error::Result;
use crate::tensor::{Tensor, tags};
use std::sync::Arc;

/// The shared body of the elementwise activation layers.
struct Elementwise {
    activation: Activation,
    input: Option<Arc<Tensor>>,
}

impl Elementwise {
    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        let ctx = Arc::clone(input.context());
        let out = ctx.uninit_of(input.shape(), input.dtype(), tags::ACTIVATIONS)?;
        crate::ops::activation_forward(self.activation, &input, &out)?;
        if save {
            self.input = Some(input);
        }
        Ok(Arc::new(out))
    }

    fn backward(&mut self, grad: Tensor, name: &str) -> Result<Option<Tensor>> {
        let input = self.input.take().ok_or_else(|| missing_saved(name))?;
        crate::ops::activation_backward_in_place(self.activation, &grad, &input)?;
        Ok(Some(grad))
    }
}

macro_rules! activation_layer {
    ($name:ident, $act:expr, $doc:literal, $flops:literal) => {
        #[doc = $doc]
        pub struct $name(Elementwise);

        impl $name {
            /// A new layer.
            pub fn new() -> Self {
                Self(Elementwise {
                    activation: $act,
                    input: None,
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl Module for $name {
            fn name(&self) -> String {
                stringify!($name).to_string()
            }

            fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
                self.0.forward(input, save)
            }

            fn backward(&mut self, grad: Tensor, _input_grad: bool) -> Result<Option<Tensor>> {
                self.0.backward(grad, stringify!($name))
            }

            fn clear_saved(&mut self) {
                self.0.input = None;
            }

            fn recompute(&self) -> Recompute {
                Recompute::Cheap
            }

            fn forward_flops(&self, _batch: usize) -> u64 {
                // Elementwise: cost per element, not per row; planners weigh it as cheap.
                $flops
            }
        }
    };
}

activation_layer!(Relu, Activation::Relu, "`max(x, 0)` elementwise.", 0);
activation_layer!(
    Gelu,
    Activation::Gelu,
    "GELU (tanh approximation) elementwise.",
    0
);
