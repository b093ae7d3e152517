//! What the [`Trainer`](super::Trainer) trains on: a [`Source`] of samples, each uploaded as a
//! row of the model's input with its integer targets.
//!
//! Two sources exist: [`Dataset`] (f32 features and one class label per row, the digits) and
//! [`TokenWindows`] (a window of token ids as the input row and, per position, the next token
//! as its target). The trainer's loop (order, batches, micro-batches, sharding, adaptation)
//! only sees the trait, so both train through the same code; the targets go to the
//! [`Objective`](super::Objective).

use crate::DType;
use crate::backend::WgpuBackend;
use crate::data::Dataset;
use crate::error::Result;
use crate::memory::ManagedBuffer;
use crate::tensor::{Context, Tensor, tags};
use crate::text::TokenWindows;
use std::ops::Range;
use std::sync::Arc;

/// A micro-batch's targets: on the GPU for the loss kernel, and on the host for checks.
pub struct Targets {
    /// `host.len()` `u32`s.
    pub buffer: ManagedBuffer<WgpuBackend>,
    /// The same values.
    pub host: Vec<u32>,
}

/// Samples the trainer can batch, shuffle, shard and upload.
pub trait Source {
    /// Number of samples.
    fn len(&self) -> usize;

    /// True when there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A seeded permutation of the sample indices (one epoch's order).
    fn epoch_order(&self, seed: u64) -> Vec<usize>;

    /// The samples at `indices`, in that order.
    fn select(&self, indices: &[usize]) -> Result<Self>
    where
        Self: Sized;

    /// Uploads samples `rows` (under the data tag): the model's input and the targets.
    /// Real-valued inputs are stored as `dtype` (f16 when the trainer runs in mixed
    /// precision); inputs that are ids (tokens) stay f32 whatever it is.
    fn upload(
        &self,
        ctx: &Arc<Context>,
        rows: Range<usize>,
        dtype: DType,
    ) -> Result<(Arc<Tensor>, Targets)>;

    /// Targets of each sample (the denominator of the accuracy): 1 for a label per row.
    fn targets_per_sample(&self) -> usize {
        1
    }

    /// The first input value that is NaN or infinite, as (row, column, value); checked on
    /// the host before a step (a ReLU could hide it from the loss).
    fn first_non_finite(&self) -> Option<(usize, usize, f32)> {
        None
    }
}

fn upload_targets(ctx: &Arc<Context>, host: Vec<u32>) -> Result<Targets> {
    Ok(Targets {
        buffer: ctx.upload_u32(&host, tags::DATA)?,
        host,
    })
}

impl Source for Dataset {
    fn len(&self) -> usize {
        Dataset::len(self)
    }

    fn epoch_order(&self, seed: u64) -> Vec<usize> {
        Dataset::epoch_order(self, seed)
    }

    fn select(&self, indices: &[usize]) -> Result<Self> {
        self.subset(indices)
    }

    /// The features as an `[n, features]` tensor; the labels, one per row.
    fn upload(
        &self,
        ctx: &Arc<Context>,
        rows: Range<usize>,
        dtype: DType,
    ) -> Result<(Arc<Tensor>, Targets)> {
        let d = self.n_features();
        let x = ctx.from_slice_of(
            &self.features()[rows.start * d..rows.end * d],
            &[rows.len(), d],
            dtype,
            tags::DATA,
        )?;
        let targets = upload_targets(ctx, self.labels()[rows].to_vec())?;
        Ok((Arc::new(x), targets))
    }

    fn first_non_finite(&self) -> Option<(usize, usize, f32)> {
        let d = self.n_features().max(1);
        let i = self.features().iter().position(|v| !v.is_finite())?;
        Some((i / d, i % d, self.features()[i]))
    }
}

impl Source for TokenWindows {
    fn len(&self) -> usize {
        TokenWindows::len(self)
    }

    fn epoch_order(&self, seed: u64) -> Vec<usize> {
        TokenWindows::epoch_order(self, seed)
    }

    fn select(&self, indices: &[usize]) -> Result<Self> {
        self.subset(indices)
    }

    fn targets_per_sample(&self) -> usize {
        self.context()
    }

    /// The token ids as an `[n, context]` tensor of f32 values (exact below 2^24), the input
    /// of [`crate::nn::Embedding`]; the next token of every position, `n · context` targets.
    /// Token ids as an f32 `[n, context]` tensor (whatever `dtype`: the embedding reads ids);
    /// the next tokens as targets.
    fn upload(
        &self,
        ctx: &Arc<Context>,
        rows: Range<usize>,
        _dtype: DType,
    ) -> Result<(Arc<Tensor>, Targets)> {
        let t = self.context();
        let mut ids = Vec::with_capacity(rows.len() * t);
        let mut next = Vec::with_capacity(rows.len() * t);
        for i in rows.clone() {
            ids.extend(self.inputs(i).iter().map(|&v| v as f32));
            next.extend_from_slice(self.targets(i));
        }
        let x = ctx.from_slice(&ids, &[rows.len(), t], tags::DATA)?;
        Ok((Arc::new(x), upload_targets(ctx, next)?))
    }
}
