//! A GPT as a [`Sequential`]: token and position [`Embedding`], pre-norm [`Block`]s, a final
//! [`LayerNorm`] and the output head tied to the token table ([`crate::nn::TiedHead`]); and
//! sampling text from one.
//!
//! One builder serves the example, the tests and the benchmark, so all three train the same
//! model as the PyTorch reference (`benches/reference/torch_gpt.py`): its shapes, and its
//! initialisation (Linear uniform in `±1/sqrt(in)`, tables `N(0, 0.02²)`, norms 1 and 0).
//!
//! The model's `set_precision(DType::F16)` (what `Precision::Mixed` in the trainer calls)
//! switches every layer: f16 activations from the embedding to the logits, f16 working copies
//! of the matrices (the tied table's included); [`generate`] then runs in f16 too.

use super::{Block, BlockConfig, Embedding, LayerNorm, Module, Sequential};
use crate::error::{Error, Result};
use crate::tensor::{Context, tags};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Arc;

/// The sizes of a [`GptConfig::build`] model.
#[derive(Debug, Clone, PartialEq)]
pub struct GptConfig {
    /// Tokens in the vocabulary (256 for bytes).
    pub vocab: usize,
    /// Blocks.
    pub layers: usize,
    /// Attention heads per block (must divide `width`).
    pub heads: usize,
    /// Features of the residual stream.
    pub width: usize,
    /// The longest sequence (rows of the position table).
    pub context: usize,
    /// Dropout probability in the blocks (0: none).
    pub dropout: f32,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl Default for GptConfig {
    /// The example's default, sized for a laptop: 6 layers, 6 heads, width 384, context 256.
    fn default() -> Self {
        Self {
            vocab: 256,
            layers: 6,
            heads: 6,
            width: 384,
            context: 256,
            dropout: 0.0,
            seed: 0,
        }
    }
}

impl GptConfig {
    /// The model: `Embedding (+ positions) → layers × Block → LayerNorm → tied head`. Its
    /// input is `[batch, seq]` token ids as f32 (`seq <= context`), its output the logits
    /// `[batch, seq, vocab]`.
    pub fn build(&self, ctx: &Arc<Context>) -> Result<Sequential> {
        if self.layers == 0 {
            return Err(Error::invalid("GPT layers", "a GPT needs at least 1 block"));
        }
        let embedding = Embedding::new(ctx, self.vocab, self.width, self.seed)?
            .with_positions(self.context, self.seed.wrapping_add(1))?;
        let head = embedding.tied_head();
        let mut block = BlockConfig::new(self.width, self.heads);
        block.dropout = self.dropout;
        let mut model = Sequential::new().with(embedding);
        for layer in 0..self.layers as u64 {
            let seed = self.seed.wrapping_add(16 * (layer + 1));
            model.push(Block::new(ctx, &block, seed)?);
        }
        model.push(LayerNorm::new(ctx, self.width)?);
        model.push(head);
        Ok(model)
    }

    /// Parameters of the model (the tied head adds none).
    pub fn parameter_count(&self) -> usize {
        let (w, v, t) = (self.width, self.vocab, self.context);
        let block =
            2 * 2 * w + (w * 3 * w + 3 * w) + (w * w + w) + (w * 4 * w + 4 * w) + (4 * w * w + w);
        v * w + t * w + self.layers * block + 2 * w
    }
}

/// Continues `prompt` by `tokens` tokens sampled from `model` (a [`GptConfig::build`] model
/// or any with the same input and output): each step runs the model (without saving) on the
/// last `context` tokens and draws the next from the softmax of the last position's logits at
/// `temperature` (0: the most likely token). Returns the new tokens.
pub fn generate(
    model: &mut Sequential,
    ctx: &Arc<Context>,
    prompt: &[u32],
    context: usize,
    tokens: usize,
    temperature: f32,
    seed: u64,
) -> Result<Vec<u32>> {
    if prompt.is_empty() || context == 0 {
        return Err(Error::invalid(
            "generation prompt",
            format!(
                "{} prompt tokens and context {context}: both must be at least 1",
                prompt.len()
            ),
        ));
    }
    if !(temperature.is_finite() && temperature >= 0.0) {
        return Err(Error::invalid(
            "temperature",
            format!("{temperature}: sampling needs a finite temperature >= 0"),
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut all = prompt.to_vec();
    for _ in 0..tokens {
        let window = &all[all.len().saturating_sub(context)..];
        let ids: Vec<f32> = window.iter().map(|&t| t as f32).collect();
        let x = ctx.from_slice(&ids, &[1, window.len()], tags::DATA)?;
        let logits = model.forward(Arc::new(x), false)?.to_vec()?;
        let vocab = logits.len() / window.len();
        let last = &logits[(window.len() - 1) * vocab..];
        all.push(sample(last, temperature, &mut rng) as u32);
    }
    Ok(all.split_off(prompt.len()))
}

/// Draws an index from `softmax(logits / temperature)` (the argmax at temperature 0).
fn sample(logits: &[f32], temperature: f32, rng: &mut ChaCha8Rng) -> usize {
    let argmax = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap_or(0);
    if temperature == 0.0 {
        return argmax;
    }
    let top = f64::from(logits[argmax]);
    let weights: Vec<f64> = logits
        .iter()
        .map(|&l| ((f64::from(l) - top) / f64::from(temperature)).exp())
        .collect();
    let mut u = rng.random::<f64>() * weights.iter().sum::<f64>();
    for (i, w) in weights.iter().enumerate() {
        u -= w;
        if u <= 0.0 {
            return i;
        }
    }
    argmax
}
