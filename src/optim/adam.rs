//! Adam and AdamW.

use super::{Optimizer, bad_state, check_same_params};
use crate::compute::{self, AdamParams};
use crate::error::Result;
use crate::nn::Parameter;
use crate::tensor::{Tensor, tags};

/// Adam (AdamW with [`Adam::decoupled`]), moments zero-initialised, bias-corrected.
pub struct Adam {
    hp: AdamParams,
    moments: Vec<(Tensor, Tensor)>,
    step: u32,
}

impl Adam {
    /// Adam with learning rate `lr` and the usual betas (0.9, 0.999), eps 1e-8.
    pub fn new(lr: f32) -> Self {
        Self {
            hp: AdamParams {
                lr,
                ..AdamParams::default()
            },
            moments: Vec::new(),
            step: 0,
        }
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
        for (p, (m, v)) in params.into_iter().zip(&self.moments) {
            compute::adam(
                p.value.context().gpu(),
                p.value.raw(),
                p.grad.raw(),
                m.raw(),
                v.raw(),
                p.value.len(),
                self.step,
                &self.hp,
            )?;
            p.zero_grad()?;
        }
        Ok(())
    }

    fn step_mixed(&mut self, mut params: Vec<&mut Parameter>, inv_scale: f32) -> Result<()> {
        self.prepare(params.iter_mut().map(|p| &mut **p).collect())?;
        self.step += 1;
        for (p, (m, v)) in params.into_iter().zip(&self.moments) {
            compute::adam_mixed(
                p.value.context().gpu(),
                p.value.raw(),
                p.grad.raw(),
                m.raw(),
                v.raw(),
                p.working.as_ref().map(|w| w.raw()),
                p.value.len(),
                self.step,
                &self.hp,
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

    fn adam_params(&self) -> Option<AdamParams> {
        Some(self.hp)
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
