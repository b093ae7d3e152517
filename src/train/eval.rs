//! Evaluation on a validation split during training: before the first step, every `every`
//! steps, and after the last, so a run's curve of held-out loss comes with it.

use super::{Source, StepInfo, Trainer};
use crate::error::{Error, Result};

/// One evaluation of the held-out data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Optimizer steps taken when it was measured (0: before training).
    pub step: u64,
    /// Mean loss over the held-out data.
    pub loss: f64,
    /// Fraction of targets predicted right.
    pub accuracy: f64,
}

impl Trainer {
    /// Runs `steps` steps from the run's position as [`Self::train_steps`] does, evaluating
    /// `validation` (without saving, nothing changes) before the first step, after every
    /// `every` steps and after the last; `on_eval` sees each evaluation as it is made. Returns
    /// them all, in order.
    pub fn train_steps_evaluating<S: Source>(
        &mut self,
        train: &S,
        validation: &S,
        steps: u64,
        every: u64,
        mut on_step: impl FnMut(&StepInfo),
        mut on_eval: impl FnMut(&Evaluation),
    ) -> Result<Vec<Evaluation>> {
        if every == 0 {
            return Err(Error::invalid(
                "evaluation interval",
                "evaluate every N steps needs N of at least 1",
            ));
        }
        if validation.is_empty() {
            return Err(Error::invalid(
                "validation data",
                "the validation set is empty",
            ));
        }
        let mut evaluations = Vec::new();
        let mut evaluate = |trainer: &mut Self| -> Result<()> {
            let (loss, accuracy) = trainer.evaluate(validation)?;
            let e = Evaluation {
                step: trainer.report.steps,
                loss,
                accuracy,
            };
            on_eval(&e);
            evaluations.push(e);
            Ok(())
        };
        evaluate(self)?;
        let mut done = 0;
        while done < steps {
            let chunk = every.min(steps - done);
            self.train_steps(train, chunk, &mut on_step)?;
            done += chunk;
            evaluate(self)?;
        }
        Ok(evaluations)
    }
}
