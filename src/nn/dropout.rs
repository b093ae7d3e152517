//! `Dropout`, seeded and deterministic: the mask of element `i` is a hash of
//! `(seed, step, i)` (`shaders/dropout.wgsl`), recomputed in backward rather than stored.
//!
//! The step counter advances when a backward pass completes, not in forward: a checkpointed
//! segment runs forward twice (once without saving, once while recomputing) and both must
//! draw the same mask as the plain pass does, so checkpointed gradients stay bit-identical.
//!
//! The layer has no weights, so it runs in its input's type: f16 activations (mixed
//! precision) take the f16 kernel, with the same mask as f32.

use super::{Module, missing_saved};
use crate::compute::DropoutMask;
use crate::error::{Error, Result};
use crate::tensor::{Tensor, tags};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Turns a set of [`Dropout`] layers on (training) or off (evaluation) from outside the model.
#[derive(Debug, Clone)]
pub struct DropoutSwitch(Arc<AtomicBool>);

impl DropoutSwitch {
    /// A switch, on.
    pub fn new() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    /// Enables (`true`) or disables dropout in every layer holding this switch.
    pub fn set(&self, on: bool) {
        self.0.store(on, Ordering::Relaxed);
    }

    /// Whether dropout is on.
    pub fn is_on(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for DropoutSwitch {
    fn default() -> Self {
        Self::new()
    }
}

/// Zeroes each element with probability `p` and scales the rest by `1 / (1 - p)`; the
/// identity while its [`DropoutSwitch`] is off or `p` is 0.
pub struct Dropout {
    p: f32,
    seed: u64,
    step: u32,
    switch: DropoutSwitch,
    /// Set by a saving forward: whether it applied a mask.
    saved: Option<bool>,
}

impl Dropout {
    /// Dropout with probability `p` in `[0, 1)` and masks drawn from `seed`.
    pub fn new(p: f32, seed: u64) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::invalid(
                "dropout probability",
                format!("{p}; it must lie in [0, 1)"),
            ));
        }
        Ok(Self {
            p,
            seed,
            step: 0,
            switch: DropoutSwitch::new(),
            saved: None,
        })
    }

    /// Shares `switch` (one switch for all the model's dropout layers).
    pub fn with_switch(mut self, switch: DropoutSwitch) -> Self {
        self.switch = switch;
        self
    }

    /// This layer's switch.
    pub fn switch(&self) -> &DropoutSwitch {
        &self.switch
    }

    /// The mask the next pass uses.
    pub fn mask(&self) -> DropoutMask {
        DropoutMask {
            seed: self.seed,
            step: self.step,
            p: self.p,
        }
    }

    fn active(&self) -> bool {
        self.p > 0.0 && self.switch.is_on()
    }
}

impl Module for Dropout {
    fn name(&self) -> String {
        format!("Dropout({})", self.p)
    }

    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        let active = self.active();
        if save {
            self.saved = Some(active);
        }
        if !active {
            return Ok(input);
        }
        let ctx = input.context();
        let out = ctx.uninit_of(input.shape(), input.dtype(), tags::ACTIVATIONS)?;
        crate::ops::dropout(self.mask(), &input, &out)?;
        Ok(Arc::new(out))
    }

    fn backward(&mut self, grad: Tensor, _input_grad: bool) -> Result<Option<Tensor>> {
        let active = self.saved.take().ok_or_else(|| missing_saved("Dropout"))?;
        if !active {
            return Ok(Some(grad));
        }
        let ctx = grad.context();
        let dx = ctx.uninit_of(grad.shape(), grad.dtype(), tags::ACTIVATIONS)?;
        crate::ops::dropout(self.mask(), &grad, &dx)?;
        self.step = self.step.wrapping_add(1);
        Ok(Some(dx))
    }

    fn clear_saved(&mut self) {
        self.saved = None;
    }

    fn recompute(&self) -> super::Recompute {
        super::Recompute::Cheap
    }

    fn forward_flops(&self, _batch: usize) -> u64 {
        0
    }
}
