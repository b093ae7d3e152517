//! [`GradCompression`]: what the gradients travel as between the ranks.
//!
//! After PyTorch DDP's `fp16_compress_hook`: each bucket is converted to IEEE half precision
//! on the GPU before its readback (`shaders/compress.wgsl`), summed over the ranks as half
//! values ([`super::Collective::all_reduce_f16`]: MPI moves and sums half the bytes), and
//! widened back on the GPU after its upload. The trainer scales each rank's gradient by its
//! share of the batch before the exchange, so the sum is the batch mean and its size is that
//! of one gradient, not `world` of them (no division is needed against overflow).
//!
//! What it costs in accuracy: each rank's value is rounded once to f16 (relative error at most
//! 2⁻¹¹, values below 6·10⁻⁸ flush to zero or subnormals) and each addition of the sum is
//! rounded to f16 again. With [`GradCompression::F16ErrorFeedback`] what a rank's rounding
//! lost is kept on its GPU (one `f32` per parameter, tag [`COMM_STATE`]) and added to the next
//! step's gradient before it is rounded, so small gradient components are delayed, not lost.

use crate::error::{Error, Result};

/// The memory tag of the error-feedback residuals (kept across steps, unlike [`super::COMM`]).
pub const COMM_STATE: &str = "comm_state";

/// The wire format of the gradient all-reduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradCompression {
    /// `f32`, bit-exact sums (the default).
    #[default]
    None,
    /// IEEE half precision: half the bytes, each value rounded.
    F16,
    /// Half precision with error feedback: rounding errors are carried to the next step.
    F16ErrorFeedback,
}

impl GradCompression {
    /// Whether values travel as f16.
    pub fn is_f16(self) -> bool {
        self != Self::None
    }

    /// Bytes one gradient value takes on the wire.
    pub fn bytes_per_value(self) -> u64 {
        if self.is_f16() { 2 } else { 4 }
    }
}

impl std::str::FromStr for GradCompression {
    type Err = Error;

    /// Parses `none`, `f16` or `f16-ef` (f16 with error feedback).
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "f16" => Ok(Self::F16),
            "f16-ef" => Ok(Self::F16ErrorFeedback),
            _ => Err(Error::invalid(
                "gradient compression",
                format!("'{s}'; use none, f16 or f16-ef (f16 with error feedback)"),
            )),
        }
    }
}
