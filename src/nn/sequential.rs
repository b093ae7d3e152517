//! `Sequential`: a chain of modules, itself a module.

use super::{Module, Parameter};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::sync::Arc;

/// Modules applied in order.
#[derive(Default)]
pub struct Sequential {
    layers: Vec<Box<dyn Module>>,
}

impl Sequential {
    /// An empty chain.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a module.
    pub fn push(&mut self, module: impl Module + 'static) {
        self.layers.push(Box::new(module));
    }

    /// Appends a module (builder form).
    pub fn with(mut self, module: impl Module + 'static) -> Self {
        self.push(module);
        self
    }

    /// The modules.
    pub fn layers(&self) -> &[Box<dyn Module>] {
        &self.layers
    }

    /// The modules, mutably (for checkpointing, which drives them one by one).
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Module>] {
        &mut self.layers
    }

    /// Number of modules.
    pub fn len(&self) -> usize {
        self.layers.len()
    }

    /// True when the chain is empty.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Runs `layers[range]` forward.
    pub fn forward_range(
        &mut self,
        range: std::ops::Range<usize>,
        mut x: Arc<Tensor>,
        save: bool,
    ) -> Result<Arc<Tensor>> {
        self.check_range("Sequential::forward_range", &range)?;
        let profiler = x.context().memory().profiler();
        for i in range {
            let _scope = profiler
                .as_ref()
                .map(|p| p.scope(&format!("layer{i}.forward")));
            x = self.layers[i].forward(x, save)?;
        }
        Ok(x)
    }

    /// Runs `layers[range]` backward (in reverse); the first layer of the range returns an
    /// input gradient only if `input_grad`.
    pub fn backward_range(
        &mut self,
        range: std::ops::Range<usize>,
        grad: Tensor,
        input_grad: bool,
    ) -> Result<Option<Tensor>> {
        self.backward_range_observed(range, grad, input_grad, &mut |_| Ok(()))
    }

    /// [`Self::backward_range`], calling `done(i)` as soon as layer `i`'s backward is recorded:
    /// from then on this pass adds nothing more to layer `i`'s parameter gradients (what a
    /// data-parallel exchange waits for before it sends them). An error from `done` ends the
    /// pass with that error.
    pub fn backward_range_observed(
        &mut self,
        range: std::ops::Range<usize>,
        mut grad: Tensor,
        input_grad: bool,
        done: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<Option<Tensor>> {
        self.check_range("Sequential::backward_range", &range)?;
        let start = range.start;
        let profiler = grad.context().memory().profiler();
        for i in range.rev() {
            let _scope = profiler
                .as_ref()
                .map(|p| p.scope(&format!("layer{i}.backward")));
            let need = i > start || input_grad;
            let output = self.layers[i].backward(grad, need)?;
            done(i)?;
            match output {
                Some(g) => grad = g,
                None if !need => return Ok(None),
                None => {
                    return Err(Error::invalid(
                        "backward",
                        format!("{} returned no input gradient", self.layers[i].name()),
                    ));
                }
            }
        }
        Ok(Some(grad))
    }

    /// [`Error::InvalidArgument`] unless `range` lies within the chain, start before end.
    fn check_range(&self, what: &'static str, range: &std::ops::Range<usize>) -> Result<()> {
        if range.start > range.end || range.end > self.layers.len() {
            return Err(Error::invalid(
                what,
                format!(
                    "layers {}..{} of a chain of {}; a range needs start <= end <= {}",
                    range.start,
                    range.end,
                    self.layers.len(),
                    self.layers.len()
                ),
            ));
        }
        Ok(())
    }
}

impl Module for Sequential {
    fn name(&self) -> String {
        let names: Vec<String> = self.layers.iter().map(|l| l.name()).collect();
        format!("Sequential[{}]", names.join(", "))
    }

    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        let n = self.layers.len();
        self.forward_range(0..n, input, save)
    }

    fn backward(&mut self, grad: Tensor, input_grad: bool) -> Result<Option<Tensor>> {
        let n = self.layers.len();
        self.backward_range(0..n, grad, input_grad)
    }

    fn parameters(&mut self) -> Vec<&mut Parameter> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.parameters())
            .collect()
    }

    fn clear_saved(&mut self) {
        self.layers.iter_mut().for_each(|l| l.clear_saved());
    }

    fn set_precision(&mut self, dtype: crate::DType) -> Result<()> {
        self.layers
            .iter_mut()
            .try_for_each(|l| l.set_precision(dtype))
    }

    fn forward_flops(&self, batch: usize) -> u64 {
        self.layers.iter().map(|l| l.forward_flops(batch)).sum()
    }
}
