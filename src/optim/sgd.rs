//! Stochastic gradient descent with momentum and weight decay.

use super::{Optimizer, bad_state, check_same_params};
use crate::compute::{self, SgdParams};
use crate::error::Result;
use crate::nn::Parameter;
use crate::tensor::{Tensor, tags};

/// SGD: `v = momentum v + g + wd p; p -= lr v` (plain `p -= lr (g + wd p)` without momentum).
pub struct Sgd {
    hp: SgdParams,
    velocity: Vec<Tensor>,
}

impl Sgd {
    /// SGD with learning rate `lr` and `momentum` (0 for none).
    pub fn new(lr: f32, momentum: f32) -> Self {
        Self {
            hp: SgdParams {
                lr,
                momentum,
                weight_decay: 0.0,
                nesterov: false,
            },
            velocity: Vec::new(),
        }
    }

    /// Sets the weight decay.
    pub fn with_weight_decay(mut self, wd: f32) -> Self {
        self.hp.weight_decay = wd;
        self
    }
}

impl Optimizer for Sgd {
    fn prepare(&mut self, params: Vec<&mut Parameter>) -> Result<()> {
        check_same_params(self.velocity.len(), params.len())?;
        if self.velocity.is_empty() && self.hp.momentum != 0.0 {
            let mut velocity = Vec::with_capacity(params.len());
            for p in &params {
                velocity.push(p.value.context().zeros(p.value.shape(), tags::OPTIMIZER)?);
            }
            self.velocity = velocity;
        }
        Ok(())
    }

    fn step(&mut self, mut params: Vec<&mut Parameter>) -> Result<()> {
        self.prepare(params.iter_mut().map(|p| &mut **p).collect())?;
        for (i, p) in params.into_iter().enumerate() {
            let v = self.velocity.get(i).map(|t| t.raw());
            compute::sgd(
                p.value.context().gpu(),
                p.value.raw(),
                p.grad.raw(),
                v,
                p.value.len(),
                &self.hp,
            )?;
            p.zero_grad()?;
        }
        Ok(())
    }

    fn step_mixed(&mut self, mut params: Vec<&mut Parameter>, inv_scale: f32) -> Result<()> {
        self.prepare(params.iter_mut().map(|p| &mut **p).collect())?;
        for (i, p) in params.into_iter().enumerate() {
            let v = self.velocity.get(i).map(|t| t.raw());
            compute::sgd_mixed(
                p.value.context().gpu(),
                p.value.raw(),
                p.grad.raw(),
                v,
                p.working.as_ref().map(|w| w.raw()),
                p.value.len(),
                &self.hp,
                inv_scale,
            )?;
        }
        Ok(())
    }

    fn state_bytes(&self) -> u64 {
        self.velocity.iter().map(|t| t.buffer().size()).sum()
    }

    fn planned_state_bytes(&self, param_bytes: u64) -> u64 {
        if self.hp.momentum == 0.0 {
            0
        } else {
            param_bytes
        }
    }

    fn learning_rate(&self) -> f32 {
        self.hp.lr
    }

    fn state_tensors(&self) -> Vec<&Tensor> {
        self.velocity.iter().collect()
    }

    fn load_state(&mut self, tensors: Vec<Tensor>, counters: &[u64]) -> Result<()> {
        if !counters.is_empty() {
            return Err(bad_state(
                "SGD",
                format!("{} counters; SGD has none", counters.len()),
            ));
        }
        if self.hp.momentum == 0.0 && !tensors.is_empty() {
            return Err(bad_state(
                "SGD",
                format!("{} velocity tensors, but momentum is 0", tensors.len()),
            ));
        }
        self.velocity = tensors;
        Ok(())
    }
}
