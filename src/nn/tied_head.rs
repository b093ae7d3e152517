//! [`TiedHead`]: the output layer that multiplies by an [`Embedding`](super::Embedding)'s token table
//! (`logits = x · tableᵀ`), so the table is one parameter updated once per step.
//!
//! The head owns no parameter: it holds the embedding's buffers, and, in mixed precision, reads
//! the table's f16 working copy (the embedding creates it in `set_precision` and the mixed
//! optimizer step rewrites it with every update) while accumulating the table's gradient in
//! f32.

use super::embedding::SharedWorking;
use super::{Module, missing_saved};
use crate::DType;
use crate::compute::{self, MatmulOptions};
use crate::error::{Error, Result};
use crate::ops;
use crate::tensor::{Context, Tensor, tags};
use std::sync::{Arc, Weak};

/// The output layer tied to an [`Embedding`](super::Embedding)'s token table (see [`Embedding::tied_head`](super::Embedding::tied_head)).
/// It owns no parameter; using it after its embedding was dropped is an error.
pub struct TiedHead {
    pub(super) ctx: Arc<Context>,
    pub(super) table: wgpu::Buffer,
    pub(super) grad: wgpu::Buffer,
    pub(super) working: SharedWorking,
    pub(super) vocab: usize,
    pub(super) width: usize,
    pub(super) owner: Weak<()>,
    pub(super) input: Option<Arc<Tensor>>,
}

impl TiedHead {
    fn check_owner(&self) -> Result<()> {
        if self.owner.strong_count() == 0 {
            return Err(Error::invalid(
                "TiedHead",
                "its embedding was dropped; keep the embedding in the model",
            ));
        }
        Ok(())
    }

    /// The compute type and the table the kernels read: the embedding's f16 working copy in
    /// mixed precision, else the f32 table.
    fn operand(&self) -> (DType, wgpu::Buffer) {
        match &*self.working.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(w) => (DType::F16, w.clone()),
            None => (DType::F32, self.table.clone()),
        }
    }

    /// `c (+)= op(a) · op(b)` with the matmul of `dtype` (f16 operands may write f32 `c`).
    #[allow(clippy::too_many_arguments)]
    fn product(
        &self,
        dtype: DType,
        (a, a_shape): (&wgpu::Buffer, [usize; 2]),
        (b, b_shape): (&wgpu::Buffer, [usize; 2]),
        c: &wgpu::Buffer,
        c_dtype: DType,
        opts: &MatmulOptions<'_>,
    ) -> Result<()> {
        let gpu = self.ctx.gpu();
        // The table's gradient (`[vocab, width]` over every row) is small and long in K: split
        // K as `ops::matmul` does.
        let split = ops::split_k_scratch(&self.ctx, dtype, c_dtype, a_shape, b_shape, opts)?;
        let opts = ops::with_split(opts, &split);
        match dtype {
            DType::F32 => compute::matmul(gpu, a, a_shape, b, b_shape, c, &opts),
            DType::F16 => compute::matmul_f16(gpu, a, a_shape, b, b_shape, c, c_dtype, &opts),
        }
    }
}

impl Module for TiedHead {
    fn name(&self) -> String {
        format!("TiedHead({}→{})", self.width, self.vocab)
    }

    fn forward(&mut self, input: Arc<Tensor>, save: bool) -> Result<Arc<Tensor>> {
        self.check_owner()?;
        let features = input.shape().last().copied().unwrap_or(0);
        if features != self.width {
            return Err(Error::Shape {
                op: "TiedHead::forward",
                left: input.shape().to_vec(),
                right: vec![self.vocab, self.width],
                reason: format!("the input needs {} features", self.width),
            });
        }
        let (dtype, table) = self.operand();
        input.expect_dtype("TiedHead::forward", "the input", dtype)?;
        let rows = input.len() / self.width;
        let mut shape = input.shape().to_vec();
        *shape.last_mut().expect("checked above") = self.vocab;
        let out = self.ctx.uninit_of(&shape, dtype, tags::ACTIVATIONS)?;
        let trans_b = MatmulOptions {
            trans_b: true,
            ..Default::default()
        };
        self.product(
            dtype,
            (input.raw(), [rows, self.width]),
            (&table, [self.vocab, self.width]),
            out.raw(),
            dtype,
            &trans_b,
        )?;
        if save {
            self.input = Some(input);
        }
        Ok(Arc::new(out))
    }

    fn backward(&mut self, grad: Tensor, input_grad: bool) -> Result<Option<Tensor>> {
        self.check_owner()?;
        let input = self.input.take().ok_or_else(|| missing_saved("TiedHead"))?;
        let rows = input.len() / self.width;
        if grad.len() != rows * self.vocab {
            return Err(Error::Shape {
                op: "TiedHead::backward",
                left: grad.shape().to_vec(),
                right: vec![rows, self.vocab],
                reason: "the output gradient must match the forward output".into(),
            });
        }
        let (dtype, table) = self.operand();
        grad.expect_dtype("TiedHead::backward", "the output gradient", dtype)?;
        // d table += dyᵀ · x (f32, also from f16 operands)
        let accumulate = MatmulOptions {
            trans_a: true,
            accumulate: true,
            ..Default::default()
        };
        self.product(
            dtype,
            (grad.raw(), [rows, self.vocab]),
            (input.raw(), [rows, self.width]),
            &self.grad,
            DType::F32,
            &accumulate,
        )?;
        if !input_grad {
            return Ok(None);
        }
        // dx = dy · table
        let dx = self
            .ctx
            .uninit_of(input.shape(), dtype, tags::ACTIVATIONS)?;
        self.product(
            dtype,
            (grad.raw(), [rows, self.vocab]),
            (&table, [self.vocab, self.width]),
            dx.raw(),
            dtype,
            &MatmulOptions::default(),
        )?;
        Ok(Some(dx))
    }

    fn clear_saved(&mut self) {
        self.input = None;
    }

    /// The head follows its embedding, which owns the table and its working copy: `dtype`
    /// must be the embedding's (a model switches the embedding first, as a
    /// [`super::Sequential`] does), else this is an error naming what to do.
    fn set_precision(&mut self, dtype: DType) -> Result<()> {
        self.check_owner()?;
        let (have, _) = self.operand();
        if have != dtype {
            return Err(Error::invalid(
                "TiedHead precision",
                format!(
                    "the head computes in {have} because its embedding does; set the embedding's \
                     precision to {dtype} first (as the model's set_precision does)"
                ),
            ));
        }
        Ok(())
    }

    fn forward_flops(&self, batch: usize) -> u64 {
        2 * (batch * self.width * self.vocab) as u64
    }
}
