//! Whether the device is asked for cooperative matrices, and the one place where wgpu's
//! experimental features are turned on.
//!
//! Cooperative matrices (tensor cores, simdgroup matrices) are behind wgpu 30's
//! `EXPERIMENTAL_COOPERATIVE_MATRIX`, which needs an `unsafe` token at `request_device`. The
//! mode ([`CoopMode`]) says whether to ask for it; `compute::coop_select` decides which kernel
//! runs.

/// Use of cooperative-matrix matmul kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CoopMode {
    /// Where they are verified: Vulkan's 16x16 f16 kernels on adapters that offer them. Metal's
    /// simdgroup kernels have not run on a Mac yet, so `Auto` keeps the plain kernels there.
    #[default]
    Auto,
    /// Wherever the adapter offers a configuration we have a kernel for, Metal included.
    On,
    /// Never: the plain kernels everywhere, and the experimental feature is not requested.
    Off,
}

impl CoopMode {
    /// The names `WGMEM_COOP` accepts.
    pub const NAMES: [&'static str; 3] = ["auto", "on", "off"];

    /// Parses one of [`CoopMode::NAMES`] (case-insensitive).
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "on" => Some(Self::On),
            "off" => Some(Self::Off),
            _ => None,
        }
    }

    /// `WGMEM_COOP`, or `Auto` when unset; an unknown name logs a warning naming the valid ones.
    pub fn from_env() -> Self {
        let Ok(name) = std::env::var("WGMEM_COOP") else {
            return Self::Auto;
        };
        Self::parse(&name).unwrap_or_else(|| {
            log::warn!(
                "WGMEM_COOP={name:?} is not one of {:?}; using auto",
                Self::NAMES
            );
            Self::Auto
        })
    }
}

/// The features to request: timestamp queries for the profiler; f16, subgroups and cooperative
/// matrices when the adapter has them all and `mode` is not `Off`. Returns the features and
/// whether the experimental token is needed.
pub(super) fn features(adapter: wgpu::Features, mode: CoopMode) -> (wgpu::Features, bool) {
    use wgpu::Features as F;
    let mut wanted = adapter & (F::TIMESTAMP_QUERY | F::SHADER_F16 | F::SUBGROUP);
    let coop = mode != CoopMode::Off && adapter.contains(F::EXPERIMENTAL_COOPERATIVE_MATRIX);
    if coop {
        wanted |= F::EXPERIMENTAL_COOPERATIVE_MATRIX;
    }
    (wanted, coop)
}

/// The experimental-features token for `request_device`.
pub(super) fn experimental(coop: bool) -> wgpu::ExperimentalFeatures {
    if !coop {
        return wgpu::ExperimentalFeatures::disabled();
    }
    // SAFETY: wgpu's contract is that experimental features may have implementation bugs that
    // safe calls can reach. We use one of them, EXPERIMENTAL_COOPERATIVE_MATRIX, and only
    // through the crate's own matmul shaders (shaders/coop/), which wgpu and naga validate like
    // any other shader: they load, multiply and store fragments of the types and sizes the
    // adapter listed in `cooperative_matrix_properties()` (the host picks the shader from that
    // list), from workgroup arrays whose every fragment lies inside the array (offsets and
    // strides are constants of the kernel and the subgroup index is clamped to the 8 subgroups
    // the tile has), and to a workgroup array of the same kind. Storage
    // buffers are only touched by ordinary bounds-checked loads and stores. The kernels were
    // run against a CPU f64 reference on the H200 (benches/coop_check.sh) before `Auto` used
    // them; on Metal `Auto` does not, until that check has run on a Mac.
    unsafe { wgpu::ExperimentalFeatures::enabled() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_case_insensitively_and_reject_unknown_names() {
        assert_eq!(CoopMode::parse(" ON "), Some(CoopMode::On));
        assert_eq!(CoopMode::parse("off"), Some(CoopMode::Off));
        assert_eq!(CoopMode::parse("Auto"), Some(CoopMode::Auto));
        assert_eq!(CoopMode::parse("yes"), None);
    }

    #[test]
    fn the_experimental_feature_is_requested_only_when_offered_and_not_off() {
        use wgpu::Features as F;
        let all = F::SHADER_F16 | F::SUBGROUP | F::EXPERIMENTAL_COOPERATIVE_MATRIX;
        assert_eq!(features(all, CoopMode::Auto), (all, true));
        assert_eq!(
            features(all, CoopMode::Off),
            (F::SHADER_F16 | F::SUBGROUP, false)
        );
        assert_eq!(
            features(F::SHADER_F16, CoopMode::On),
            (F::SHADER_F16, false)
        );
    }
}
