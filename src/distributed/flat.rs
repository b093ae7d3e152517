//! The parameters of a model seen as one flat vector, and the copies between that view and
//! the parameters' own buffers: into a packing buffer on the GPU, or from host memory.
//!
//! Buckets and ZeRO shards are ranges of the flat vector; a range usually spans several
//! parameters, so each operation walks the range's segments (one per parameter touched).

use super::pipeline::Piece;
use crate::backend::Backend;
use crate::error::Result;
use crate::tensor::{Context, Tensor};
use std::ops::Range;

/// Where each tensor starts in the flat vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlatLayout {
    starts: Vec<usize>,
    total: usize,
}

/// The part of one tensor that a flat range covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Index of the tensor.
    pub tensor: usize,
    /// First element within the tensor.
    pub offset: usize,
    /// Elements.
    pub len: usize,
    /// Position of the first element within the flat range.
    pub at: usize,
}

impl FlatLayout {
    /// The layout of tensors of these lengths, in order.
    pub fn new(lens: impl IntoIterator<Item = usize>) -> Self {
        let mut starts = Vec::new();
        let mut total = 0;
        for len in lens {
            starts.push(total);
            total += len;
        }
        starts.push(total);
        Self { starts, total }
    }

    /// Elements in all.
    pub fn total(&self) -> usize {
        self.total
    }

    /// The segments covered by `range` (clamped to the flat vector), in order.
    pub fn segments(&self, range: Range<usize>) -> Vec<Segment> {
        let end = range.end.min(self.total);
        let mut out = Vec::new();
        for t in 0..self.starts.len() - 1 {
            let (s, e) = (self.starts[t], self.starts[t + 1]);
            let (lo, hi) = (s.max(range.start), e.min(end));
            if lo < hi {
                out.push(Segment {
                    tensor: t,
                    offset: lo - s,
                    len: hi - lo,
                    at: lo - range.start,
                });
            }
        }
        out
    }
}

/// Copies the flat `range` of `tensors` into `pack` starting at element `at` (GPU to GPU).
pub(crate) fn pack(
    ctx: &Context,
    tensors: &[&Tensor],
    layout: &FlatLayout,
    range: Range<usize>,
    pack: &wgpu::Buffer,
    at: usize,
) -> Result<()> {
    for s in layout.segments(range) {
        ctx.backend().copy(
            tensors[s.tensor].raw(),
            (s.offset * 4) as u64,
            pack,
            ((at + s.at) * 4) as u64,
            (s.len * 4) as u64,
        )?;
    }
    Ok(())
}

/// Copies `pack` (from element `at`) into the flat `range` of `tensors` (GPU to GPU): the
/// inverse of [`pack`]. The part of `range` past the layout's end is dropped.
pub(crate) fn unpack(
    ctx: &Context,
    pack: &wgpu::Buffer,
    at: usize,
    tensors: &[&Tensor],
    layout: &FlatLayout,
    range: Range<usize>,
) -> Result<()> {
    for s in layout.segments(range) {
        ctx.backend().copy(
            pack,
            ((at + s.at) * 4) as u64,
            tensors[s.tensor].raw(),
            (s.offset * 4) as u64,
            (s.len * 4) as u64,
        )?;
    }
    Ok(())
}

/// The flat `range` of `tensors` as pieces of an exchange bucket, the first at value `at`.
pub(crate) fn pieces<'a>(
    tensors: &[&'a Tensor],
    layout: &FlatLayout,
    range: Range<usize>,
    at: usize,
) -> Vec<Piece<'a>> {
    layout
        .segments(range)
        .into_iter()
        .map(|s| Piece {
            buffer: tensors[s.tensor].raw(),
            offset: (s.offset * 4) as u64,
            values: s.len,
            at: at + s.at,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_split_a_range_at_tensor_boundaries() {
        let l = FlatLayout::new([3, 0, 5, 2]);
        assert_eq!(l.total(), 10);
        let segs = l.segments(2..9);
        let got: Vec<_> = segs
            .iter()
            .map(|s| (s.tensor, s.offset, s.len, s.at))
            .collect();
        assert_eq!(got, vec![(0, 2, 1, 0), (2, 0, 5, 1), (3, 0, 1, 6)]);
        // Past the end is clamped (padding).
        assert_eq!(l.segments(9..20).len(), 1);
        assert!(l.segments(10..12).is_empty());
    }
}
