//! Learning-rate schedules: linear warmup then cosine decay, as GPTs are trained.
//!
//! [`Scheduled`] wraps an optimizer and sets its learning rate before every step from the
//! number of steps taken, which it counts and saves with the optimizer's state, so a resumed
//! run continues the schedule where it stopped.

use super::{Optimizer, bad_state};
use crate::error::{Error, Result};
use crate::nn::Parameter;
use crate::tensor::Tensor;

/// Linear warmup from 0 to `peak` over `warmup` steps, then cosine decay to `min` at step
/// `total`, and `min` after it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    /// The rate at the end of the warmup.
    pub peak: f32,
    /// The rate at and after `total`.
    pub min: f32,
    /// Steps of warmup.
    pub warmup: u64,
    /// The step at which the decay ends.
    pub total: u64,
}

impl LrSchedule {
    /// A warmup-cosine schedule; `0 <= min <= peak`, both finite, and `warmup <= total`.
    pub fn warmup_cosine(peak: f32, min: f32, warmup: u64, total: u64) -> Result<Self> {
        if !(peak.is_finite() && min.is_finite() && 0.0 <= min && min <= peak) {
            return Err(Error::invalid(
                "learning-rate schedule",
                format!("peak {peak} and min {min} need 0 <= min <= peak, both finite"),
            ));
        }
        if warmup > total {
            return Err(Error::invalid(
                "learning-rate schedule",
                format!("warmup of {warmup} steps is longer than the {total} steps of the run"),
            ));
        }
        Ok(Self {
            peak,
            min,
            warmup,
            total,
        })
    }

    /// The rate of step `step` (0-based: the first update is step 0).
    pub fn at(&self, step: u64) -> f32 {
        if step < self.warmup {
            return (f64::from(self.peak) * (step + 1) as f64 / self.warmup as f64) as f32;
        }
        if step >= self.total {
            return self.min;
        }
        let span = (self.total - self.warmup).max(1) as f64;
        let progress = (step - self.warmup) as f64 / span;
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        (f64::from(self.min) + cosine * f64::from(self.peak - self.min)) as f32
    }
}

/// Wraps an optimizer: sets the learning rate from an [`LrSchedule`] before each step. Not
/// Adam to ZeRO-1 (which downcasts to [`crate::optim::Adam`]): its sharded Adam keeps one rate, so a
/// scheduled run with `zero1` is refused rather than run at a constant rate.
pub struct Scheduled {
    inner: Box<dyn Optimizer>,
    schedule: LrSchedule,
    steps: u64,
}

impl Scheduled {
    /// `inner` stepping at the rates of `schedule`.
    pub fn new(mut inner: Box<dyn Optimizer>, schedule: LrSchedule) -> Self {
        inner.set_learning_rate(schedule.at(0));
        Self {
            inner,
            schedule,
            steps: 0,
        }
    }

    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }
}

impl Optimizer for Scheduled {
    fn step(&mut self, params: Vec<&mut Parameter>) -> Result<()> {
        self.inner.set_learning_rate(self.schedule.at(self.steps));
        self.inner.step(params)?;
        self.steps += 1;
        Ok(())
    }

    fn step_mixed(&mut self, params: Vec<&mut Parameter>, inv_scale: f32) -> Result<()> {
        self.inner.set_learning_rate(self.schedule.at(self.steps));
        self.inner.step_mixed(params, inv_scale)?;
        self.steps += 1;
        Ok(())
    }

    fn prepare(&mut self, params: Vec<&mut Parameter>) -> Result<()> {
        self.inner.prepare(params)
    }

    fn state_bytes(&self) -> u64 {
        self.inner.state_bytes()
    }

    fn planned_state_bytes(&self, param_bytes: u64) -> u64 {
        self.inner.planned_state_bytes(param_bytes)
    }

    /// The rate of the next step.
    fn learning_rate(&self) -> f32 {
        self.schedule.at(self.steps)
    }

    /// Scales the schedule so that its next rate is `lr` (peak and min alike).
    fn set_learning_rate(&mut self, lr: f32) {
        let now = self.schedule.at(self.steps);
        if now > 0.0 {
            let k = lr / now;
            self.schedule.peak *= k;
            self.schedule.min *= k;
        }
    }

    fn state_tensors(&self) -> Vec<&Tensor> {
        self.inner.state_tensors()
    }

    /// The inner optimizer's counters, then the schedule's step.
    fn state_counters(&self) -> Vec<u64> {
        let mut counters = self.inner.state_counters();
        counters.push(self.steps);
        counters
    }

    fn load_state(&mut self, tensors: Vec<Tensor>, counters: &[u64]) -> Result<()> {
        let Some((steps, inner)) = counters.split_last() else {
            return Err(bad_state(
                "Scheduled",
                "no counters; the last one is the schedule's step".into(),
            ));
        };
        self.inner.load_state(tensors, inner)?;
        self.steps = *steps;
        Ok(())
    }
}
