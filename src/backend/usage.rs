//! [`UsageFlags`]: a backend-neutral set of buffer usages, for buffers an application binds in
//! pipelines of its own (vertex, index, indirect, uniform, ...).
//!
//! The [`Backend`](super::Backend) trait must not name wgpu types (the pool, the manager and the
//! host backend know nothing of wgpu), yet an application on wgpu wants pooled buffers with any
//! `wgpu::BufferUsages` combination. So the combination travels as this plain bit set inside
//! [`BufferUsage::Custom`](super::BufferUsage::Custom), and each backend translates it. The bit
//! values are WebGPU's `GPUBufferUsage` constants, which wgpu uses too, so the translation on wgpu
//! is a lossless copy of the bits.

use crate::error::{Error, Result};
use std::fmt;
use std::ops::{BitOr, BitOrAssign};

/// A set of buffer usages (WebGPU's `GPUBufferUsage` bits). See the module docs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct UsageFlags(u32);

impl UsageFlags {
    /// The host maps the buffer to read it.
    pub const MAP_READ: Self = Self(1 << 0);
    /// The host maps the buffer to write it.
    pub const MAP_WRITE: Self = Self(1 << 1);
    /// Source of copies.
    pub const COPY_SRC: Self = Self(1 << 2);
    /// Destination of copies and queue writes.
    pub const COPY_DST: Self = Self(1 << 3);
    /// Index buffer of draws.
    pub const INDEX: Self = Self(1 << 4);
    /// Vertex buffer of draws.
    pub const VERTEX: Self = Self(1 << 5);
    /// Uniform buffer binding.
    pub const UNIFORM: Self = Self(1 << 6);
    /// Storage buffer binding.
    pub const STORAGE: Self = Self(1 << 7);
    /// Arguments of indirect draws and dispatches.
    pub const INDIRECT: Self = Self(1 << 8);
    /// Destination of query-set resolves.
    pub const QUERY_RESOLVE: Self = Self(1 << 9);

    const NAMES: [(Self, &'static str); 10] = [
        (Self::MAP_READ, "MAP_READ"),
        (Self::MAP_WRITE, "MAP_WRITE"),
        (Self::COPY_SRC, "COPY_SRC"),
        (Self::COPY_DST, "COPY_DST"),
        (Self::INDEX, "INDEX"),
        (Self::VERTEX, "VERTEX"),
        (Self::UNIFORM, "UNIFORM"),
        (Self::STORAGE, "STORAGE"),
        (Self::INDIRECT, "INDIRECT"),
        (Self::QUERY_RESOLVE, "QUERY_RESOLVE"),
    ];

    /// Every bit this type names.
    pub const fn all() -> Self {
        Self((1 << 10) - 1)
    }

    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The set with exactly `bits`, bits this type does not name included (a backend rejects
    /// those when the buffer is allocated).
    pub const fn from_bits_retain(bits: u32) -> Self {
        Self(bits)
    }

    /// True when every usage of `other` is in `self`.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// True when no usage is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The bits of `self` that this type does not name.
    pub const fn unknown_bits(self) -> u32 {
        self.0 & !Self::all().0
    }
}

impl BitOr for UsageFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

impl BitOrAssign for UsageFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        self.0 |= rhs.0;
    }
}

impl fmt::Debug for UsageFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "(empty)");
        }
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { " | " };
            first = false;
            write!(f, "{s}")
        };
        for (flag, name) in Self::NAMES {
            if self.contains(flag) {
                sep(f)?;
                write!(f, "{name}")?;
            }
        }
        if self.unknown_bits() != 0 {
            sep(f)?;
            write!(f, "{:#x}", self.unknown_bits())?;
        }
        Ok(())
    }
}

/// The check every backend makes of a [`BufferUsage::Custom`](super::BufferUsage::Custom) set:
/// at least one usage, and only usages this type names.
pub(crate) fn check_named(flags: UsageFlags) -> Result<()> {
    if flags.is_empty() {
        return Err(Error::invalid(
            "buffer usage",
            "an empty usage set; name at least one usage, e.g. STORAGE | COPY_DST",
        ));
    }
    if flags.unknown_bits() != 0 {
        return Err(Error::invalid(
            "buffer usage",
            format!(
                "{flags:?} has bits {:#x} that name no usage; use the UsageFlags constants",
                flags.unknown_bits()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_combine_and_print_their_names() {
        let f = UsageFlags::VERTEX | UsageFlags::COPY_DST;
        assert!(f.contains(UsageFlags::VERTEX));
        assert!(!f.contains(UsageFlags::INDEX));
        assert_eq!(format!("{f:?}"), "COPY_DST | VERTEX");
        assert_eq!(format!("{:?}", UsageFlags::empty()), "(empty)");
        let odd = UsageFlags::from_bits_retain(1 << 20 | 1);
        assert_eq!(odd.unknown_bits(), 1 << 20);
        assert_eq!(format!("{odd:?}"), "MAP_READ | 0x100000");
    }
}
