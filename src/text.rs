//! Text for language models: a byte-level tokenizer, a corpus with a fixed train/validation
//! split, and token windows (inputs and their next-token targets) for the [`crate::Trainer`].
//!
//! Bytes rather than characters or learned subwords: every file is valid input (UTF-8 or not),
//! the vocabulary is a fixed 256 whatever the text, and a PyTorch reference reproduces the
//! tokenization with `list(bytes)`. The split is positional, not shuffled: the last tenth of
//! the text validates, so no validation window overlaps a training one.

use crate::error::{Error, Result};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::Path;
use std::sync::Arc;

/// Bytes as tokens: token `b` is the byte `b`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteTokenizer;

impl ByteTokenizer {
    /// Tokens in the vocabulary.
    pub const VOCAB: usize = 256;

    /// The tokens of `text`.
    pub fn encode(&self, text: &[u8]) -> Vec<u32> {
        text.iter().map(|&b| u32::from(b)).collect()
    }

    /// The text of `tokens` (invalid UTF-8 becomes U+FFFD). A token outside the vocabulary is
    /// an error naming it.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        let bytes = tokens
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                u8::try_from(t).map_err(|_| {
                    Error::invalid(
                        "token",
                        format!("token {t} at position {i} is not a byte (vocabulary of 256)"),
                    )
                })
            })
            .collect::<Result<Vec<u8>>>()?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Which part of a [`TextCorpus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The first 90% of the tokens.
    Train,
    /// The last 10%.
    Validation,
}

/// A tokenized text, split once: the first 90% trains, the last 10% validates.
#[derive(Debug, Clone)]
pub struct TextCorpus {
    train: Arc<[u32]>,
    validation: Arc<[u32]>,
}

impl TextCorpus {
    /// Tokenizes `text` with the [`ByteTokenizer`] and splits it. Text of fewer than 2 bytes
    /// (nothing to split) is an error.
    pub fn from_bytes(text: &[u8]) -> Result<Self> {
        if text.len() < 2 {
            return Err(Error::invalid(
                "text",
                format!(
                    "{} bytes of text; a corpus needs at least 2 (one to train on, one to validate)",
                    text.len()
                ),
            ));
        }
        let tokens = ByteTokenizer.encode(text);
        let n_val = (tokens.len() / 10).max(1);
        let (train, validation) = tokens.split_at(tokens.len() - n_val);
        Ok(Self {
            train: train.into(),
            validation: validation.into(),
        })
    }

    /// Reads and splits a text file; an empty (or one-byte) file is an error naming it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)?;
        Self::from_bytes(&bytes).map_err(|e| match e {
            Error::InvalidArgument { reason, .. } => {
                Error::invalid("text file", format!("{}: {reason}", path.display()))
            }
            other => other,
        })
    }

    /// The tokens of `split`.
    pub fn tokens(&self, split: Split) -> &[u32] {
        match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
        }
    }

    /// Windows of `context` tokens of `split`, one starting every `stride` tokens.
    pub fn windows(&self, split: Split, context: usize, stride: usize) -> Result<TokenWindows> {
        let tokens = match split {
            Split::Train => &self.train,
            Split::Validation => &self.validation,
        };
        TokenWindows::new(Arc::clone(tokens), context, stride).map_err(|e| match e {
            Error::InvalidArgument { reason, .. } => {
                Error::invalid("text split", format!("{split:?} split: {reason}"))
            }
            other => other,
        })
    }
}

/// Windows of a token sequence: sample `i` is `context` tokens from `start(i)` as the input,
/// and the same span moved on by one token as the targets (next-token prediction).
#[derive(Debug, Clone)]
pub struct TokenWindows {
    tokens: Arc<[u32]>,
    starts: Vec<usize>,
    context: usize,
}

impl TokenWindows {
    /// A window every `stride` tokens, as many as fit (each needs `context + 1` tokens).
    pub fn new(tokens: impl Into<Arc<[u32]>>, context: usize, stride: usize) -> Result<Self> {
        let tokens = tokens.into();
        if context == 0 || stride == 0 {
            return Err(Error::invalid(
                "token windows",
                format!("context {context} and stride {stride} must both be at least 1"),
            ));
        }
        if tokens.len() < context + 1 {
            return Err(Error::invalid(
                "token windows",
                format!(
                    "{} tokens; a window of context {context} needs {} (its targets are shifted by one)",
                    tokens.len(),
                    context + 1
                ),
            ));
        }
        let starts = (0..=tokens.len() - context - 1).step_by(stride).collect();
        Ok(Self {
            tokens,
            starts,
            context,
        })
    }

    /// Number of windows.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// True when there are no windows (only after [`Self::subset`] of nothing).
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Tokens per window.
    pub fn context(&self) -> usize {
        self.context
    }

    /// The input tokens of window `i`.
    pub fn inputs(&self, i: usize) -> &[u32] {
        &self.tokens[self.starts[i]..self.starts[i] + self.context]
    }

    /// The targets of window `i`: its inputs moved on by one token.
    pub fn targets(&self, i: usize) -> &[u32] {
        &self.tokens[self.starts[i] + 1..self.starts[i] + 1 + self.context]
    }

    /// The windows at `indices`, in that order (sharing the tokens).
    /// An index past the last window is an error naming it.
    pub fn subset(&self, indices: &[usize]) -> Result<Self> {
        if let Some((at, &i)) = indices.iter().enumerate().find(|(_, i)| **i >= self.len()) {
            return Err(Error::invalid(
                "window index",
                format!(
                    "{i} (at position {at} of the indices) is not below the {} windows",
                    self.len()
                ),
            ));
        }
        Ok(self.pick(indices))
    }

    /// The windows at `indices`, known to be in range.
    fn pick(&self, indices: &[usize]) -> Self {
        Self {
            tokens: Arc::clone(&self.tokens),
            starts: indices.iter().map(|&i| self.starts[i]).collect(),
            context: self.context,
        }
    }

    /// The first `n` windows (all of them if there are fewer): a fixed evaluation set.
    pub fn first(&self, n: usize) -> Self {
        let n = n.min(self.len());
        self.pick(&(0..n).collect::<Vec<_>>())
    }

    /// A seeded permutation of the window indices (one epoch's order).
    pub fn epoch_order(&self, seed: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip() {
        let text = "Héllo, world\n".as_bytes();
        let tokens = ByteTokenizer.encode(text);
        assert_eq!(tokens.len(), text.len());
        assert_eq!(ByteTokenizer.decode(&tokens).unwrap(), "Héllo, world\n");
        assert!(ByteTokenizer.decode(&[65, 256]).is_err());
    }

    #[test]
    fn split_is_the_last_tenth() {
        let text: Vec<u8> = (0..95u8).collect();
        let c = TextCorpus::from_bytes(&text).unwrap();
        assert_eq!(c.tokens(Split::Train).len(), 86);
        assert_eq!(
            c.tokens(Split::Validation),
            &(86..95).collect::<Vec<u32>>()[..]
        );
        assert!(TextCorpus::from_bytes(b"").is_err());
        assert!(TextCorpus::from_bytes(b"a").is_err());
    }

    #[test]
    fn windows_shift_targets_by_one() {
        let w = TokenWindows::new((0..10u32).collect::<Vec<_>>(), 4, 3).unwrap();
        assert_eq!(w.len(), 2); // starts 0 and 3; a start at 6 would need token 10
        assert_eq!(w.inputs(1), &[3, 4, 5, 6]);
        assert_eq!(w.targets(1), &[4, 5, 6, 7]);
        assert_eq!(w.subset(&[1, 0]).unwrap().inputs(0), &[3, 4, 5, 6]);
        assert!(w.subset(&[w.len()]).is_err());
        assert!(TokenWindows::new(vec![1u32, 2, 3], 3, 1).is_err());
        assert!(TokenWindows::new(vec![1u32, 2, 3], 0, 1).is_err());
    }
}
