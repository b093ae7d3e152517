//! [`DType`]: the element type of a tensor's storage.
//!
//! It lives below `compute/` and `tensor` so that both the kernels (which bind a buffer by its
//! byte length) and the tensors (which size their buffers and the memory account by it) agree on
//! what an element is. Arithmetic inside the kernels is f32 whatever the storage: f16 storage
//! halves the bytes moved and held, and the f32 accumulation keeps sums from losing digits.

/// The element type of a tensor's storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DType {
    /// IEEE binary32.
    #[default]
    F32,
    /// IEEE binary16 (needs `wgpu::Features::SHADER_F16` on the device): 11 significant bits,
    /// largest finite value 65504.
    F16,
}

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
        }
    }

    /// Bytes of a buffer holding `len` elements: `len * size`, rounded up to whole 4-byte words
    /// (storage bindings and buffer writes move whole words), at least one word. `None` when the
    /// count overflows.
    pub fn buffer_bytes(self, len: usize) -> Option<u64> {
        let bytes = (len as u64).checked_mul(self.size() as u64)?;
        Some(bytes.max(1).next_multiple_of(4))
    }

    /// Relative rounding error of one conversion to this type: half a unit in the last place,
    /// `2^-24` for f32 and `2^-11` for f16. Tests derive their tolerances from it.
    pub const fn unit_roundoff(self) -> f64 {
        match self {
            DType::F32 => 1.0 / 16_777_216.0,
            DType::F16 => 1.0 / 2048.0,
        }
    }

    /// The WGSL name (`"f32"`, `"f16"`).
    pub const fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::DType;

    #[test]
    fn buffer_bytes_round_to_whole_words() {
        assert_eq!(DType::F32.buffer_bytes(3), Some(12));
        assert_eq!(DType::F16.buffer_bytes(3), Some(8));
        assert_eq!(DType::F16.buffer_bytes(4), Some(8));
        assert_eq!(DType::F16.buffer_bytes(0), Some(4));
        assert_eq!(DType::F32.buffer_bytes(usize::MAX), None);
    }
}
