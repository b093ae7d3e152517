//! `Embedding`: token ids to vectors (plus learned positions), and [`TiedHead`], the output
//! layer that reuses the token table.
//!
//! Token ids enter as an ordinary `[batch, seq]` tensor of f32 integers (see
//! [`token_tensor`], which checks them on the host where they are known), so an embedding is a
//! [`Module`] like any other and a whole GPT fits a [`super::Sequential`]. The backward pass
//! sums each table row's gradient in a fixed order (no float atomics in WGSL), so it is
//! deterministic.
//!
//! Mixed precision ([`Module::set_precision`] with f16): the embedding reads its f32 tables
//! and writes f16 vectors; its backward accumulates the f16 output gradient into the f32 table
//! gradients. A tied head multiplies by the table, so the table then also gets an f16 working
//! copy ([`Parameter::working`]) that the mixed optimizer step rewrites with every update; the
//! embedding shares that copy with its [`TiedHead`], which reads it in both passes and
//! accumulates the table's gradient in f32.

use super::TiedHead;
use super::{Module, Parameter, missing_saved};
use crate::DType;
use crate::compute::EmbeddingDims;
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::{Context, Tensor, tags};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Arc, Mutex};

/// The f16 working copy of a tied table, shared by the embedding (which creates and drops it
/// in `set_precision`) and its heads (which read it): `None` in f32.
pub(super) type SharedWorking = Arc<Mutex<Option<wgpu::Buffer>>>;

/// The standard deviation of GPT-2's initialisation, used for the tables.
pub const EMBEDDING_INIT_STD: f32 = 0.02;

/// `n` values from a normal distribution `N(0, std²)` drawn from `seed` (Box-Muller).
pub(crate) fn normal_values(seed: u64, n: usize, std: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f64 = 1.0 - rng.random::<f64>();
            let v: f64 = rng.random::<f64>();
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32 * std
        })
        .collect()
}

/// Uploads `ids` (`batch * seq` token ids, row-major) as the `[batch, seq]` input of an
/// [`Embedding`], after checking every id is below `vocab`.
pub fn token_tensor(
    ctx: &Arc<Context>,
    ids: &[u32],
    [batch, seq]: [usize; 2],
    vocab: usize,
) -> Result<Tensor> {
    if ids.len() != batch * seq {
        return Err(Error::Shape {
            op: "token_tensor",
            left: vec![ids.len()],
            right: vec![batch, seq],
            reason: "one id per position of each sequence".into(),
        });
    }
    if let Some((at, &id)) = ids
        .iter()
        .enumerate()
        .find(|&(_, &id)| id as usize >= vocab)
    {
        return Err(Error::invalid(
            "token id",
            format!("id {id} at position {at} is not below the vocabulary size {vocab}"),
        ));
    }
    if vocab > 1 << 24 {
        return Err(Error::invalid(
            "vocabulary size",
            format!("{vocab}: ids travel as f32, exact only below 2^24"),
        ));
    }
    let values: Vec<f32> = ids.iter().map(|&id| id as f32).collect();
    ctx.from_slice(&values, &[batch, seq], tags::DATA)
}

/// Token embedding `[vocab, width]`, optionally plus learned positions `[context, width]`:
/// `y[b, t] = token[ids[b, t]] + position[t]`. Input `[batch, seq]` ids, output
/// `[batch, seq, width]`. Tables start as `N(0, 0.02²)` (GPT-2).
pub struct Embedding {
    ctx: Arc<Context>,
    table: Parameter,
    positions: Option<Parameter>,
    ids: Option<Arc<Tensor>>,
    dtype: DType,
    working: SharedWorking,
    alive: Arc<()>,
}

impl Embedding {
    /// A token table of `vocab` rows of `width`, drawn from `seed`.
    pub fn new(ctx: &Arc<Context>, vocab: usize, width: usize, seed: u64) -> Result<Self> {
        if vocab == 0 || width == 0 {
            return Err(Error::invalid(
                "Embedding size",
                format!("vocab {vocab}, width {width}: both must be at least 1"),
            ));
        }
        let values = normal_values(seed, vocab * width, EMBEDDING_INIT_STD);
        Ok(Self {
            ctx: Arc::clone(ctx),
            table: parameter(ctx, "token", &values, &[vocab, width])?,
            positions: None,
            ids: None,
            dtype: DType::F32,
            working: Arc::new(Mutex::new(None)),
            alive: Arc::new(()),
        })
    }

    /// Adds a learned position table for sequences of up to `context` tokens (seed `seed`).
    pub fn with_positions(mut self, context: usize, seed: u64) -> Result<Self> {
        if context == 0 {
            return Err(Error::invalid("Embedding context", "at least 1 position"));
        }
        let values = normal_values(seed, context * self.width(), EMBEDDING_INIT_STD);
        self.positions = Some(parameter(
            &self.ctx,
            "position",
            &values,
            &[context, self.width()],
        )?);
        Ok(self)
    }

    /// Rows of the token table.
    pub fn vocab(&self) -> usize {
        self.table.value.shape()[0]
    }

    /// Features per token.
    pub fn width(&self) -> usize {
        self.table.value.shape()[1]
    }

    /// The longest sequence the position table covers (`None` without positions).
    pub fn context(&self) -> Option<usize> {
        self.positions.as_ref().map(|p| p.value.shape()[0])
    }

    /// The token table.
    pub fn table(&self) -> &Parameter {
        &self.table
    }

    /// The position table.
    pub fn positions(&self) -> Option<&Parameter> {
        self.positions.as_ref()
    }

    /// The type of the output vectors: f16 in mixed precision.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Whether a [`TiedHead`] of this table exists (it shares the working-copy slot).
    fn is_tied(&self) -> bool {
        Arc::strong_count(&self.working) > 1
    }

    /// [`token_tensor`] with this table's vocabulary, and the context checked too.
    pub fn tokens(&self, ids: &[u32], batch: usize, seq: usize) -> Result<Tensor> {
        self.check_seq(seq)?;
        token_tensor(&self.ctx, ids, [batch, seq], self.vocab())
    }

    /// An output layer `[.., width] → [.., vocab]` computing `x · tableᵀ` with this table: its
    /// gradient accumulates into [`Embedding::table`]'s, so the optimizer (which sees the
    /// table once, through the embedding) updates one tied parameter.
    pub fn tied_head(&self) -> TiedHead {
        TiedHead {
            ctx: Arc::clone(&self.ctx),
            table: self.table.value.raw().clone(),
            grad: self.table.grad.raw().clone(),
            working: Arc::clone(&self.working),
            vocab: self.vocab(),
            width: self.width(),
            owner: Arc::downgrade(&self.alive),
            input: None,
        }
    }

    fn check_seq(&self, seq: usize) -> Result<()> {
        match self.context() {
            Some(context) if seq > context => Err(Error::invalid(
                "sequence length",
                format!("{seq} tokens exceed the position table of {context}"),
            )),
            _ => Ok(()),
        }
    }
}

fn parameter(ctx: &Arc<Context>, name: &str, data: &[f32], shape: &[usize]) -> Result<Parameter> {
    Ok(Parameter {
        name: name.to_string(),
        value: ctx.from_slice(data, shape, tags::PARAMS)?,
        grad: ctx.zeros(shape, tags::GRADIENTS)?,
        working: None,
    })
}

impl Module for Embedding {
    fn name(&self) -> String {
        match self.context() {
            Some(c) => format!(
                "Embedding({}x{}, {c} positions)",
                self.vocab(),
                self.width()
            ),
            None => format!("Embedding({}x{})", self.vocab(), self.width()),
        }
    }

    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        let [batch, seq] = input.dims2("Embedding::forward")?;
        self.check_seq(seq)?;
        let width = self.width();
        let out = self
            .ctx
            .uninit_of(&[batch, seq, width], self.dtype, tags::ACTIVATIONS)?;
        let dims = EmbeddingDims {
            rows: batch * seq,
            seq,
            width,
            vocab: self.vocab(),
        };
        ops::embedding_forward(
            dims,
            &input,
            &self.table.value,
            self.positions.as_ref().map(|p| &p.value),
            &out,
        )?;
        if save {
            self.ids = Some(input);
        }
        Ok(Arc::new(out))
    }

    fn backward(&mut self, grad: Tensor, _input_grad: bool) -> Result<Option<Tensor>> {
        let ids = self.ids.take().ok_or_else(|| missing_saved("Embedding"))?;
        let [batch, seq] = ids.dims2("Embedding::backward")?;
        let dims = EmbeddingDims {
            rows: batch * seq,
            seq,
            width: self.width(),
            vocab: self.vocab(),
        };
        if grad.len() != dims.rows * dims.width {
            return Err(Error::Shape {
                op: "Embedding::backward",
                left: grad.shape().to_vec(),
                right: vec![batch, seq, dims.width],
                reason: "the output gradient must match the forward output".into(),
            });
        }
        grad.expect_dtype("Embedding::backward", "the output gradient", self.dtype)?;
        ops::embedding_backward(
            dims,
            &ids,
            &grad,
            &self.table.grad,
            self.positions.as_ref().map(|p| &p.grad),
        )?;
        // Token ids have no gradient.
        Ok(None)
    }

    /// f16: f16 output; and, when a [`TiedHead`] shares the table, an f16 working copy of it
    /// (the head's operand). The tables themselves and their gradients stay f32.
    fn set_precision(&mut self, dtype: DType) -> Result<()> {
        let working = match dtype {
            DType::F16 if self.is_tied() => {
                self.ctx.gpu().require_f16()?;
                let w = self
                    .ctx
                    .uninit_of(self.table.value.shape(), DType::F16, tags::PARAMS)?;
                ops::convert(&self.table.value, &w)?;
                Some(w)
            }
            _ => None,
        };
        *self.working.lock().unwrap_or_else(|e| e.into_inner()) =
            working.as_ref().map(|w| w.raw().clone());
        self.table.working = working;
        self.dtype = dtype;
        Ok(())
    }

    fn parameters(&mut self) -> Vec<&mut Parameter> {
        let mut params = vec![&mut self.table];
        params.extend(self.positions.as_mut());
        params
    }

    fn clear_saved(&mut self) {
        self.ids = None;
    }

    fn forward_flops(&self, batch: usize) -> u64 {
        (batch * self.width()) as u64
    }
}
