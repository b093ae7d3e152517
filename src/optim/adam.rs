//! Adam and AdamW.

use super::{Optimizer, bad_state, check_same_params};
use crate::compute::{self, AdamParams};
use crate::error::Result;
use crate::nn::Parameter;
use crate::tensor::{Tensor, tags};

/// Which parameters weight decay applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecayMask {
    /// Every parameter.
    #[default]
    All,
    /// Parameters of two or more dimensions (weight matrices, embedding tables), not biases
    /// or normalisation scales and shifts (one dimension): GPT-2's and nanoGPT's rule.
    Matrices,
}

impl DecayMask {
    /// Whether a parameter of `shape` is decayed.
    pub fn decays(self, shape: &[usize]) -> bool {
        match self {
            DecayMask::All => true,
            DecayMask::Matrices => shape.len() >= 2,
        }
    }
}

/// Adam (AdamW with [`Adam::decoupled`] or [`Adam::adamw`]), moments zero-initialised,
/// bias-corrected.
pub struct Adam {
    hp: AdamParams,
    mask: DecayMask,
    moments: Vec<(Tensor, Tensor)>,
    step: u32,
}

impl Adam {
    /// The hyperparameters (learning rate, betas, eps, weight decay), for code that runs Adam
    /// its own way (ZeRO-1's [`crate::distributed::ShardedAdam`]).
    pub fn hyperparameters(&self) -> AdamParams {
        self.hp
    }

    /// Whether one set of hyperparameters describes every parameter's update: false when a
    /// decay mask leaves some parameters undecayed. ZeRO-1's sharded Adam applies one decay to
    /// every parameter, so it refuses such an Adam rather than decay biases and norms.
    pub fn is_uniform(&self) -> bool {
        self.mask == DecayMask::All || self.hp.weight_decay == 0.0
    }

    /// Adam with learning rate `lr` and the usual betas (0.9, 0.999), eps 1e-8.
    pub fn new(lr: f32) -> Self {
        Self {
            hp: AdamParams {
                lr,
                ..AdamParams::default()
            },
            mask: DecayMask::All,
            moments: Vec::new(),
            step: 0,
        }
    }

    /// AdamW as GPTs train with it: decoupled weight decay on the weight matrices and
    /// embeddings only ([`DecayMask::Matrices`]), betas (0.9, 0.95), eps 1e-8.
    pub fn adamw(lr: f32, weight_decay: f32) -> Self {
        let mut adam = Self::new(lr)
            .decoupled(weight_decay)
            .with_decay_mask(DecayMask::Matrices);
        adam.hp.beta2 = 0.95;
        adam
    }

    /// Which parameters the weight decay applies to (default [`DecayMask::All`]).
    pub fn with_decay_mask(mut self, mask: DecayMask) -> Self {
        self.mask = mask;
        self
    }

    /// AdamW: weight decay applied to the parameters directly.
    pub fn decoupled(mut self, weight_decay: f32) -> Self {
        self.hp.weight_decay = weight_decay;
        self.hp.decoupled = true;
        self
    }

    /// Steps taken.
    pub fn steps(&self) -> u32 {
        self.step
    }
}

impl Optimizer for Adam {
    fn prepare(&mut self, params: Vec<&mut Parameter>) -> Result<()> {
        check_same_params(self.moments.len(), params.len())?;
        if self.moments.is_empty() {
            let mut moments = Vec::with_capacity(params.len());
            for p in &params {
                let ctx = p.value.context();
                moments.push((
                    ctx.zeros(p.value.shape(), tags::OPTIMIZER)?,
                    ctx.zeros(p.value.shape(), tags::OPTIMIZER)?,
                ));
            }
            self.moments = moments;
        }
        Ok(())
    }

    fn step(&mut self, mut params: Vec<&mut Parameter>) -> Result<()> {
        self.prepare(params.iter_mut().map(|p| &mut **p).collect())?;
        self.step += 1;
        let undecayed = AdamParams {
            weight_decay: 0.0,
            ..self.hp
        };
        for (p, (m, v)) in params.into_iter().zip(&self.moments) {
            let hp = if self.mask.decays(p.value.shape()) {
                &self.hp
            } else {
                &undecayed
            };
            compute::adam(
                p.value.context().gpu(),
                p.value.raw(),
                p.grad.raw(),
                m.raw(),
                v.raw(),
                p.value.len(),
                self.step,
                hp,
            )?;
            p.zero_grad()?;
        }
        Ok(())
    }

    fn step_mixed(&mut self, mut params: Vec<&mut Parameter>, inv_scale: f32) -> Result<()> {
        self.prepare(params.iter_mut().map(|p| &mut **p).collect())?;
        self.step += 1;
        let undecayed = AdamParams {
            weight_decay: 0.0,
            ..self.hp
        };
        for (p, (m, v)) in params.into_iter().zip(&self.moments) {
            // The same decay mask as the f32 step: biases and norms are not decayed.
            let hp = if self.mask.decays(p.value.shape()) {
                &self.hp
            } else {
                &undecayed
            };
            compute::adam_mixed(
                p.value.context().gpu(),
                p.value.raw(),
                p.grad.raw(),
                m.raw(),
                v.raw(),
                p.working.as_ref().map(|w| w.raw()),
                p.value.len(),
                self.step,
                hp,
                inv_scale,
            )?;
        }
        Ok(())
    }

    fn state_bytes(&self) -> u64 {
        self.moments
            .iter()
            .map(|(m, v)| m.buffer().size() + v.buffer().size())
            .sum()
    }

    fn planned_state_bytes(&self, param_bytes: u64) -> u64 {
        2 * param_bytes
    }

    fn learning_rate(&self) -> f32 {
        self.hp.lr
    }

    fn set_learning_rate(&mut self, lr: f32) {
        self.hp.lr = lr;
    }

    fn state_tensors(&self) -> Vec<&Tensor> {
        self.moments.iter().flat_map(|(m, v)| [m, v]).collect()
    }

    fn state_counters(&self) -> Vec<u64> {
        vec![u64::from(self.step)]
    }

    fn load_state(&mut self, tensors: Vec<Tensor>, counters: &[u64]) -> Result<()> {
        let step = match counters {
            [step] => u32::try_from(*step)
                .map_err(|_| bad_state("Adam", format!("step {step} does not fit in u32")))?,
            _ => {
                return Err(bad_state(
                    "Adam",
                    format!("{} counters; Adam has one (its step)", counters.len()),
                ));
            }
        };
        if tensors.len() % 2 != 0 || (tensors.is_empty() != (step == 0)) {
            return Err(bad_state(
                "Adam",
                format!("{} moment tensors at step {step}", tensors.len()),
            ));
        }
        let mut it = tensors.into_iter();
        let mut moments = Vec::new();
        while let (Some(m), Some(v)) = (it.next(), it.next()) {
            moments.push((m, v));
        }
        self.moments = moments;
        self.step = step;
        Ok(())
    }
}
