//! Dynamic loss scaling for mixed-precision training.
//!
//! f16 keeps 11 significant bits down to 6e-5 (subnormals to 6e-8): the gradients of a mean
//! loss over a batch are often smaller than that and would round to zero in f16 activation
//! gradients. The loss gradient is therefore multiplied by a scale `S` where it is made (inside
//! the softmax kernel, before rounding to f16), every gradient downstream carries `S`, and the
//! optimizer divides it out of the f32 parameter gradients in its fused step.
//!
//! Too large an `S` overflows f16 (65504) somewhere: the infinity (or a NaN made from it)
//! reaches the f32 parameter gradients. Before each update one small kernel per gradient checks
//! them on the GPU into a single flag, and the step reads that one `u32` back:
//! - overflow: the step is skipped (gradients zeroed, no update, counted in the report) and
//!   `S` is multiplied by `backoff_factor`;
//! - otherwise the update runs and, after `growth_interval` good steps in a row, `S` is
//!   multiplied by `growth_factor`, so the scale keeps probing upward.
//!
//! The policy is PyTorch's `GradScaler` (init 2^16, growth 2 every 2000 steps, backoff 0.5).

use crate::backend::{BufferUsage, WgpuBackend};
use crate::compute;
use crate::error::{Error, Result};
use crate::memory::ManagedBuffer;
use crate::nn::Parameter;
use crate::tensor::{Context, tags};

/// The loss scaler's policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LossScaleConfig {
    /// The scale of the first step.
    pub initial: f32,
    /// Multiplies the scale after `growth_interval` steps in a row without overflow (> 1).
    pub growth_factor: f32,
    /// Multiplies the scale after an overflow (in (0, 1)).
    pub backoff_factor: f32,
    /// Good steps in a row before the scale grows (at least 1).
    pub growth_interval: u64,
    /// The scale never goes below this (> 0): a model whose gradients overflow even here is
    /// skipped step after step, which the report shows.
    pub min_scale: f32,
    /// The scale never grows past this.
    pub max_scale: f32,
}

impl Default for LossScaleConfig {
    fn default() -> Self {
        Self {
            initial: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
            min_scale: 1.0 / 16384.0,
            max_scale: 16_777_216.0,
        }
    }
}

impl LossScaleConfig {
    /// Checks the policy: every factor and bound finite and in range.
    pub fn validate(&self) -> Result<()> {
        let bad = |reason: String| Err(Error::invalid("loss scale", reason));
        let finite = [
            self.initial,
            self.growth_factor,
            self.backoff_factor,
            self.min_scale,
            self.max_scale,
        ]
        .iter()
        .all(|v| v.is_finite());
        if !finite {
            return bad(format!("{self:?}: every value must be finite"));
        }
        if !(self.min_scale > 0.0
            && self.min_scale <= self.initial
            && self.initial <= self.max_scale)
        {
            return bad(format!(
                "need 0 < min_scale <= initial <= max_scale; got {} <= {} <= {}",
                self.min_scale, self.initial, self.max_scale
            ));
        }
        if self.growth_factor <= 1.0 || !(self.backoff_factor > 0.0 && self.backoff_factor < 1.0) {
            return bad(format!(
                "need growth_factor > 1 and 0 < backoff_factor < 1; got {} and {}",
                self.growth_factor, self.backoff_factor
            ));
        }
        if self.growth_interval == 0 {
            return bad("growth_interval must be at least 1 step".into());
        }
        Ok(())
    }
}

/// The scale in use, its policy, and the GPU flag of the overflow check.
pub(crate) struct LossScaler {
    config: LossScaleConfig,
    scale: f32,
    good_steps: u64,
    flag: ManagedBuffer<WgpuBackend>,
}

impl LossScaler {
    /// A scaler at `config.initial` (validated), with its one-word flag from `ctx`'s pool.
    pub(crate) fn new(ctx: &Context, config: LossScaleConfig) -> Result<Self> {
        config.validate()?;
        let flag = ctx
            .memory()
            .acquire(4, BufferUsage::Storage, tags::SCRATCH)?;
        Ok(Self {
            scale: config.initial,
            good_steps: 0,
            config,
            flag,
        })
    }

    /// The scale the next step's loss gradient is multiplied by.
    pub(crate) fn scale(&self) -> f32 {
        self.scale
    }

    /// Whether any of `params`' gradients holds an inf or a NaN: one check kernel per gradient
    /// into one flag, one 4-byte read (which waits for the step's GPU work).
    pub(crate) fn overflowed(&self, ctx: &Context, params: &[&mut Parameter]) -> Result<bool> {
        let gpu = ctx.gpu();
        compute::fill(gpu, self.flag.raw(), 1, 0.0)?;
        for p in params {
            compute::check_finite(gpu, p.grad.raw(), p.grad.len(), self.flag.raw())?;
        }
        Ok(ctx.read_u32(&self.flag, 1)?[0] != 0)
    }

    /// The scale and the good steps counted toward its next growth (saved with a run's state).
    pub(crate) fn state(&self) -> (f32, u64) {
        (self.scale, self.good_steps)
    }

    /// Continues from a saved [`Self::state`].
    pub(crate) fn restore(&mut self, (scale, good_steps): (f32, u64)) {
        self.scale = scale;
        self.good_steps = good_steps;
    }

    /// Moves the scale after a step: down on overflow, up after enough good steps.
    pub(crate) fn update(&mut self, overflow: bool) {
        if overflow {
            self.scale = (self.scale * self.config.backoff_factor).max(self.config.min_scale);
            self.good_steps = 0;
            return;
        }
        self.good_steps += 1;
        if self.good_steps >= self.config.growth_interval {
            self.scale = (self.scale * self.config.growth_factor).min(self.config.max_scale);
            self.good_steps = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LossScaleConfig;

    #[test]
    fn bad_policies_are_refused() {
        let ok = LossScaleConfig::default();
        assert!(ok.validate().is_ok());
        for bad in [
            LossScaleConfig { initial: 0.0, ..ok },
            LossScaleConfig {
                initial: f32::INFINITY,
                ..ok
            },
            LossScaleConfig {
                growth_factor: 1.0,
                ..ok
            },
            LossScaleConfig {
                backoff_factor: 1.0,
                ..ok
            },
            LossScaleConfig {
                growth_interval: 0,
                ..ok
            },
            LossScaleConfig {
                min_scale: 1e6,
                ..ok
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
