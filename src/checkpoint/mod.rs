//! Gradient checkpointing: keep a few activations, recompute the rest in the backward pass.
//!
//! [`GradientCheckpointer`] drives a [`Sequential`] model segment by segment under a
//! [`CheckpointPolicy`]. The plan (which layers' inputs to keep) comes from [`plan`]; its
//! inputs are measured on a real batch from the memory manager's activation account, not
//! guessed. Recomputation runs the same kernels in the same order as the plain pass, so the
//! gradients are bit-identical to those without checkpointing.

pub mod plan;

pub use plan::{CheckpointPlan, LayerProfile};

use crate::backend::{Backend, parse_bytes};
use crate::error::{Error, Result};
use crate::nn::{Module, Sequential};
use crate::tensor::{Tensor, tags};
use std::sync::Arc;
use std::time::Instant;

/// Which activations to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckpointPolicy {
    /// Keep everything; recompute nothing.
    #[default]
    None,
    /// Keep the input of every `k`-th layer.
    EveryK(usize),
    /// Keep the input of every `ceil(sqrt(n))`-th layer.
    SqrtN,
    /// The least recompute whose predicted activation peak fits this many bytes.
    Budget(u64),
}

impl std::str::FromStr for CheckpointPolicy {
    type Err = Error;

    /// Parses `none`, `sqrt`, `every:K` or `budget:BYTES` (`budget:64M`).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::invalid(
                "checkpoint policy",
                format!("'{s}'; use none, sqrt, every:K or budget:BYTES"),
            )
        };
        match s.split_once(':') {
            None if s == "none" => Ok(Self::None),
            None if s == "sqrt" => Ok(Self::SqrtN),
            Some(("every", k)) => match k.parse::<usize>() {
                Ok(k) if k > 0 => Ok(Self::EveryK(k)),
                _ => Err(bad()),
            },
            Some(("budget", b)) => match parse_bytes(b)? {
                0 => Err(Error::invalid(
                    "checkpoint budget",
                    "a budget of 0 bytes fits no plan",
                )),
                b => Ok(Self::Budget(b)),
            },
            _ => Err(bad()),
        }
    }
}

/// Runs forward and backward of a [`Sequential`] under a checkpoint policy.
#[derive(Debug, Default)]
pub struct GradientCheckpointer {
    policy: CheckpointPolicy,
    overrides: Vec<(usize, crate::nn::Recompute)>,
    profile: Vec<LayerProfile>,
    profiled_rows: usize,
    plan: Option<CheckpointPlan>,
}

impl GradientCheckpointer {
    /// A checkpointer with `policy`.
    pub fn new(policy: CheckpointPolicy) -> Self {
        Self {
            policy,
            ..Self::default()
        }
    }

    /// The policy.
    pub fn policy(&self) -> CheckpointPolicy {
        self.policy
    }

    /// Changes the policy (the plan is recomputed at the next step).
    pub fn set_policy(&mut self, policy: CheckpointPolicy) {
        self.policy = policy;
        self.plan = None;
    }

    /// Overrides layer `index`'s recompute hint (selective checkpointing).
    pub fn mark(&mut self, index: usize, hint: crate::nn::Recompute) {
        self.overrides.retain(|(i, _)| *i != index);
        self.overrides.push((index, hint));
        self.plan = None;
    }

    /// The current plan, once a step has run or [`Self::prepare`] was called.
    pub fn plan(&self) -> Option<&CheckpointPlan> {
        self.plan.as_ref()
    }

    /// The measured layer profile behind the plan.
    pub fn profile(&self) -> &[LayerProfile] {
        &self.profile
    }

    /// Measures the model on `input` (one forward pass with saving, layer by layer) and
    /// computes the plan for the policy.
    pub fn prepare(
        &mut self,
        model: &mut Sequential,
        input: &Arc<Tensor>,
    ) -> Result<&CheckpointPlan> {
        let rows = input.shape().first().copied().unwrap_or(0);
        if self.profile.len() != model.len() || self.profiled_rows != rows {
            self.profile = measure(model, input)?;
            for &(i, hint) in &self.overrides {
                if let Some(p) = self.profile.get_mut(i) {
                    p.hint = hint;
                }
            }
            self.profiled_rows = rows;
            self.plan = None;
        }
        if self.plan.is_none() {
            let plan = match self.policy {
                CheckpointPolicy::None => plan::no_checkpointing(&self.profile)?,
                CheckpointPolicy::EveryK(k) => plan::every_k(&self.profile, k)?,
                CheckpointPolicy::SqrtN => plan::sqrt_n(&self.profile)?,
                CheckpointPolicy::Budget(b) => plan::plan_for_budget(&self.profile, b)?,
            };
            log::info!(
                "checkpoint plan ({:?}): boundaries {:?}, predicted activation peak {} bytes, recompute {} ns",
                self.policy,
                plan.boundaries,
                plan.predicted_peak,
                plan.predicted_recompute
            );
            self.plan = Some(plan);
        }
        Ok(self.plan.as_ref().expect("set above"))
    }

    /// Forward, `head` (the loss: returns the gradient of the output and a value), backward.
    /// Parameter gradients are accumulated into the model's parameters.
    pub fn forward_backward<T>(
        &mut self,
        model: &mut Sequential,
        input: Arc<Tensor>,
        head: impl FnOnce(Arc<Tensor>) -> Result<(Tensor, T)>,
    ) -> Result<T> {
        self.forward_backward_observed(model, input, head, &mut |_| Ok(()))
    }

    /// [`Self::forward_backward`], calling `done(i)` once layer `i`'s backward is recorded
    /// (see [`Sequential::backward_range_observed`]); layers run backward once each, from the
    /// last, whatever the plan recomputes in between.
    pub fn forward_backward_observed<T>(
        &mut self,
        model: &mut Sequential,
        input: Arc<Tensor>,
        head: impl FnOnce(Arc<Tensor>) -> Result<(Tensor, T)>,
        done: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<T> {
        let result = self.run(model, input, head, done);
        if result.is_err() {
            model.clear_saved();
        }
        result
    }

    fn run<T>(
        &mut self,
        model: &mut Sequential,
        input: Arc<Tensor>,
        head: impl FnOnce(Arc<Tensor>) -> Result<(Tensor, T)>,
        done: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<T> {
        let n = model.len();
        let segments = if self.policy == CheckpointPolicy::None {
            std::iter::once(0..n).collect()
        } else {
            self.prepare(model, &input)?.segments(n)?
        };
        let last = segments.len() - 1;
        let mut kept = Vec::with_capacity(last);
        let mut x = input;
        for (k, seg) in segments.iter().enumerate() {
            if k < last {
                kept.push(Arc::clone(&x));
            }
            x = model.forward_range(seg.clone(), x, k == last)?;
        }
        let (mut grad, value) = head(x)?;
        for (k, seg) in segments.iter().enumerate().rev() {
            if k < last {
                let input = kept.pop().expect("one kept input per earlier segment");
                drop(model.forward_range(seg.clone(), input, true)?);
            }
            match model.backward_range_observed(seg.clone(), grad, k > 0, done)? {
                Some(g) => grad = g,
                None => break,
            }
        }
        Ok(value)
    }
}

/// One forward pass with saving, layer by layer, recording input sizes, the growth of the
/// activation account, and wall time (the GPU is drained around each layer).
fn measure(model: &mut Sequential, input: &Arc<Tensor>) -> Result<Vec<LayerProfile>> {
    let ctx = Arc::clone(input.context());
    let memory = ctx.memory();
    let mut profile = Vec::with_capacity(model.len());
    let mut x = Arc::clone(input);
    ctx.backend().wait_idle()?;
    for layer in model.layers_mut() {
        let before = memory.stats().live_for_tag(tags::ACTIVATIONS);
        let input_bytes = x.buffer().size();
        let start = Instant::now();
        x = layer.forward(x, true)?;
        ctx.backend().wait_idle()?;
        let cost = start.elapsed().as_nanos() as u64;
        let after = memory.stats().live_for_tag(tags::ACTIVATIONS);
        profile.push(LayerProfile {
            input_bytes,
            saved_bytes: after.saturating_sub(before),
            cost: cost.max(1),
            hint: layer.recompute(),
        });
    }
    drop(x);
    model.clear_saved();
    Ok(profile)
}
