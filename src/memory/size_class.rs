//! Size classes with bounded waste.
//!
//! Plain power-of-two bucketing wastes up to 50% (a request of 2^k + 1 bytes gets 2^(k+1)).
//! Here every doubling `(2^e, 2^(e+1)]` is split into `classes_per_doubling` equal steps of
//! `2^e / classes_per_doubling` bytes, and a request is rounded up to the next step. The
//! padding is then less than one step, and a step is at most `1 / classes_per_doubling` of
//! the request:
//!
//! ```text
//! class(size) / size  <  1 + 1 / classes_per_doubling      for size > min_class
//! ```
//!
//! With the default 8 classes per doubling that is under 12.5% (6% on average over sizes).
//! Requests at or under `min_class` (256 B, the usual storage-offset alignment) all share the
//! smallest class; their absolute waste is under 256 bytes.

#![deny(unsafe_code)]

/// Rounds request sizes to classes. Copyable configuration; see the module docs for the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeClasses {
    classes_per_doubling: u64,
    min_class: u64,
}

impl Default for SizeClasses {
    fn default() -> Self {
        Self {
            classes_per_doubling: 8,
            min_class: 256,
        }
    }
}

impl SizeClasses {
    /// `classes_per_doubling` is rounded to a power of two in `1..=64`; `min_class` to a power
    /// of two of at least `classes_per_doubling` bytes. Rounding is logged.
    pub fn new(classes_per_doubling: u64, min_class: u64) -> Self {
        let k = classes_per_doubling.clamp(1, 64).next_power_of_two();
        let m = min_class.max(k).max(4).next_power_of_two();
        if k != classes_per_doubling || m != min_class {
            log::warn!(
                "size classes: using {k} classes per doubling and a {m}-byte minimum \
                 (asked {classes_per_doubling} and {min_class}; both must be powers of two)"
            );
        }
        Self {
            classes_per_doubling: k,
            min_class: m,
        }
    }

    /// Classes per doubling.
    pub fn classes_per_doubling(&self) -> u64 {
        self.classes_per_doubling
    }

    /// The smallest class.
    pub fn min_class(&self) -> u64 {
        self.min_class
    }

    /// The largest ratio `class / request` for requests above the minimum class.
    pub fn waste_bound(&self) -> f64 {
        1.0 + 1.0 / self.classes_per_doubling as f64
    }

    /// The class (in bytes) that a request of `size` bytes is served from.
    pub fn class_of(&self, size: u64) -> u64 {
        if size <= self.min_class {
            return self.min_class;
        }
        // size is in (2^e, 2^(e+1)]; steps there are 2^e / k bytes.
        let e = 63 - (size - 1).leading_zeros() as u64;
        let step = (1u64 << e) / self.classes_per_doubling;
        size.div_ceil(step).saturating_mul(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_is_never_smaller_and_within_the_waste_bound() {
        for k in [1, 2, 4, 8, 16] {
            let classes = SizeClasses::new(k, 256);
            let bound = classes.waste_bound();
            let mut size = 257u64;
            while size < 1 << 34 {
                for s in [size, size + 1, size * 3 / 2, size * 2 - 1] {
                    let c = classes.class_of(s);
                    assert!(c >= s, "k={k} size={s} class={c}");
                    let ratio = c as f64 / s as f64;
                    assert!(
                        ratio < bound,
                        "k={k} size={s} class={c} ratio={ratio} bound={bound}"
                    );
                }
                size = size * 5 / 4 + 13;
            }
        }
    }

    #[test]
    fn classes_are_stable_and_idempotent() {
        let classes = SizeClasses::default();
        for s in [
            1,
            255,
            256,
            257,
            1000,
            4096,
            4097,
            1 << 20,
            (1 << 20) + 1,
            123_456_789,
        ] {
            let c = classes.class_of(s);
            assert_eq!(classes.class_of(c), c, "a class size maps to itself");
        }
        assert_eq!(classes.class_of(1), 256);
        assert_eq!(classes.class_of(257), 288); // (256, 512] in steps of 32
        assert_eq!(classes.class_of((1 << 20) + 1), (1 << 20) + (1 << 17));
    }

    #[test]
    fn odd_configuration_is_rounded() {
        let c = SizeClasses::new(6, 100);
        assert_eq!(c.classes_per_doubling(), 8);
        assert_eq!(c.min_class(), 128);
    }
}
