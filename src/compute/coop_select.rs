//! Which matmul kernel an adapter gets: cooperative matrices where the adapter offers a
//! configuration we have a kernel for, else the plain tiles.
//!
//! The choice is a pure function of what the adapter reports ([`CoopAdapter`]), so it is tested
//! on the CPU with fabricated property lists; [`super::Gpu`] makes it once per device and shows
//! it through [`MatmulKernels`]'s `Display`.

use crate::DType;
use crate::backend::CoopMode;
use wgpu::{CooperativeMatrixProperties, CooperativeScalarType as S};

/// What the choice depends on, as the adapter and device report it.
#[derive(Debug, Clone)]
pub struct CoopAdapter {
    /// The graphics API.
    pub backend: wgpu::Backend,
    /// `Adapter::cooperative_matrix_properties()`.
    pub properties: Vec<CooperativeMatrixProperties>,
    /// The adapter's subgroup sizes, smallest and largest.
    pub subgroup_sizes: (u32, u32),
    /// The features the device was created with.
    pub features: wgpu::Features,
}

/// A cooperative-matrix kernel (`shaders/coop/`). Every one accumulates in f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoopKernel {
    /// 16 x 16 x 16 fragments of f16 (Vulkan on NVIDIA and AMD); 128 x 128 workgroup tiles.
    F16x16,
    /// 8 x 8 x 8 fragments of f16 (Metal's simdgroup_half8x8); 64 x 64 workgroup tiles.
    F16x8,
    /// 8 x 8 x 8 fragments of f32 (Metal's simdgroup_float8x8), for fp32 models.
    F32x8,
}

impl CoopKernel {
    /// The fragment edge.
    pub fn fragment(self) -> u32 {
        match self {
            CoopKernel::F16x16 => 16,
            CoopKernel::F16x8 | CoopKernel::F32x8 => 8,
        }
    }

    /// The workgroup's output tile edge (8 fragments).
    pub fn tile(self) -> u32 {
        8 * self.fragment()
    }

    /// The input type.
    pub fn input(self) -> DType {
        match self {
            CoopKernel::F16x16 | CoopKernel::F16x8 => DType::F16,
            CoopKernel::F32x8 => DType::F32,
        }
    }
}

impl std::fmt::Display for CoopKernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (n, input) = match self {
            CoopKernel::F16x16 => (16, "f16"),
            CoopKernel::F16x8 => (8, "f16"),
            CoopKernel::F32x8 => (8, "f32"),
        };
        write!(f, "cooperative {n}x{n}x{n} {input}->f32")
    }
}

/// The kernel for one input type, or why there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoopChoice {
    /// This cooperative-matrix kernel runs.
    Coop(CoopKernel),
    /// The plain kernels run, for this reason.
    Plain(&'static str),
}

impl CoopChoice {
    /// The kernel, if a cooperative one was chosen.
    pub fn kernel(self) -> Option<CoopKernel> {
        match self {
            CoopChoice::Coop(k) => Some(k),
            CoopChoice::Plain(_) => None,
        }
    }
}

impl std::fmt::Display for CoopChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoopChoice::Coop(k) => write!(f, "{k}"),
            CoopChoice::Plain(why) => write!(f, "plain ({why})"),
        }
    }
}

/// The choice for both input types, as a device made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulKernels {
    /// For f16 inputs.
    pub f16: CoopChoice,
    /// For f32 inputs.
    pub f32: CoopChoice,
}

impl std::fmt::Display for MatmulKernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "f16 matmul: {}; f32 matmul: {}", self.f16, self.f32)
    }
}

fn offers(props: &[CooperativeMatrixProperties], n: u32, ab: S, cr: S) -> bool {
    props.iter().any(|p| {
        p.m_size == n && p.n_size == n && p.k_size == n && p.ab_type == ab && p.cr_type == cr
    })
}

/// The kernel for `input` on `adapter` under `mode`.
///
/// Our kernels run 256 threads as 8 subgroups of 32, so the subgroup size must be fixed at 32
/// (NVIDIA; Apple GPUs, whose simdgroups are 32 wide although wgpu reports 4..64 on Metal; AMD
/// adapters that may run 64-wide subgroups keep the plain kernels). On
/// Metal, `Auto` keeps the plain kernels until a Mac has run the simdgroup kernels against the
/// CPU; `On` opts in.
pub fn choose(adapter: &CoopAdapter, input: DType, mode: CoopMode) -> CoopChoice {
    use wgpu::Features as F;
    if mode == CoopMode::Off {
        return CoopChoice::Plain("cooperative matrices turned off");
    }
    if !adapter
        .features
        .contains(F::EXPERIMENTAL_COOPERATIVE_MATRIX | F::SUBGROUP)
    {
        return CoopChoice::Plain("the device has no cooperative matrices");
    }
    if input == DType::F16 && !adapter.features.contains(F::SHADER_F16) {
        return CoopChoice::Plain("the device has no f16");
    }
    // wgpu's Metal backend reports 4..64 for every GPU, but every Apple GPU with simdgroup
    // matrices (Apple7+) runs 32-wide simdgroups.
    if adapter.subgroup_sizes != (32, 32) && adapter.backend != wgpu::Backend::Metal {
        return CoopChoice::Plain("the subgroup size is not fixed at 32");
    }
    let props = &adapter.properties;
    let kernel = match input {
        DType::F16 if offers(props, 16, S::F16, S::F32) => CoopKernel::F16x16,
        DType::F16 if offers(props, 8, S::F16, S::F32) => CoopKernel::F16x8,
        DType::F32 if offers(props, 8, S::F32, S::F32) => CoopKernel::F32x8,
        _ => return CoopChoice::Plain("no configuration we have a kernel for"),
    };
    if adapter.backend == wgpu::Backend::Metal && mode == CoopMode::Auto {
        return CoopChoice::Plain("Metal simdgroup kernels are opt-in (WGMEM_COOP=on)");
    }
    CoopChoice::Coop(kernel)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wgpu::Features as F;

    fn prop(n: u32, k: u32, ab: S, cr: S) -> CooperativeMatrixProperties {
        CooperativeMatrixProperties {
            m_size: n,
            n_size: n,
            k_size: k,
            ab_type: ab,
            cr_type: cr,
            saturating_accumulation: false,
        }
    }

    fn all() -> wgpu::Features {
        F::EXPERIMENTAL_COOPERATIVE_MATRIX | F::SUBGROUP | F::SHADER_F16
    }

    /// What the H200 reported on 2026-12-01: 16x16x16, 16x8x16, 16x8x8, f16 into f16 or f32.
    fn h200() -> CoopAdapter {
        let mut properties = Vec::new();
        for (n, k) in [(16, 16), (8, 16), (8, 8)] {
            for cr in [S::F16, S::F32] {
                let mut p = prop(16, k, S::F16, cr);
                p.n_size = n;
                properties.push(p);
            }
        }
        CoopAdapter {
            backend: wgpu::Backend::Vulkan,
            properties,
            subgroup_sizes: (32, 32),
            features: all(),
        }
    }

    /// Metal on Apple7+: 8x8x8 in f32/f32, f16/f16 and f16/f32; wgpu reports subgroups of 4..64.
    fn apple() -> CoopAdapter {
        CoopAdapter {
            backend: wgpu::Backend::Metal,
            properties: vec![
                prop(8, 8, S::F32, S::F32),
                prop(8, 8, S::F16, S::F16),
                prop(8, 8, S::F16, S::F32),
            ],
            subgroup_sizes: (4, 64),
            features: all(),
        }
    }

    #[test]
    fn nvidia_vulkan_gets_the_16x16_f16_kernel_and_plain_f32() {
        let a = h200();
        assert_eq!(
            choose(&a, DType::F16, CoopMode::Auto),
            CoopChoice::Coop(CoopKernel::F16x16)
        );
        assert!(choose(&a, DType::F32, CoopMode::Auto).kernel().is_none());
    }

    #[test]
    fn metal_is_opt_in_for_both_input_types() {
        let a = apple();
        for input in [DType::F16, DType::F32] {
            let auto = choose(&a, input, CoopMode::Auto);
            assert!(auto.kernel().is_none(), "{auto}");
            assert!(auto.to_string().contains("WGMEM_COOP=on"), "{auto}");
        }
        assert_eq!(
            choose(&a, DType::F16, CoopMode::On),
            CoopChoice::Coop(CoopKernel::F16x8)
        );
        assert_eq!(
            choose(&a, DType::F32, CoopMode::On),
            CoopChoice::Coop(CoopKernel::F32x8)
        );
    }

    #[test]
    fn off_or_missing_features_give_the_plain_kernels() {
        assert!(
            choose(&h200(), DType::F16, CoopMode::Off)
                .kernel()
                .is_none()
        );
        let mut lavapipe = h200();
        lavapipe.properties.clear();
        lavapipe.features = F::SHADER_F16 | F::SUBGROUP;
        lavapipe.subgroup_sizes = (8, 8);
        let c = choose(&lavapipe, DType::F16, CoopMode::On);
        assert_eq!(
            c,
            CoopChoice::Plain("the device has no cooperative matrices")
        );
        let mut no_f16 = h200();
        no_f16.features.remove(F::SHADER_F16);
        assert!(choose(&no_f16, DType::F16, CoopMode::On).kernel().is_none());
    }

    #[test]
    fn a_variable_subgroup_size_keeps_the_plain_kernels() {
        let mut amd = h200();
        amd.subgroup_sizes = (32, 64);
        let c = choose(&amd, DType::F16, CoopMode::On);
        assert_eq!(c, CoopChoice::Plain("the subgroup size is not fixed at 32"));
    }

    #[test]
    fn configurations_without_our_kernel_are_not_chosen() {
        let mut only_f16_acc = h200();
        only_f16_acc.properties.retain(|p| p.cr_type == S::F16);
        assert!(
            choose(&only_f16_acc, DType::F16, CoopMode::On)
                .kernel()
                .is_none()
        );
        // 16x16 preferred over 8x8 where both exist.
        let mut both = h200();
        both.properties.push(prop(8, 8, S::F16, S::F32));
        assert_eq!(
            choose(&both, DType::F16, CoopMode::Auto),
            CoopChoice::Coop(CoopKernel::F16x16)
        );
    }

    #[test]
    fn the_choice_displays_what_runs() {
        let k = MatmulKernels {
            f16: choose(&h200(), DType::F16, CoopMode::Auto),
            f32: choose(&h200(), DType::F32, CoopMode::Auto),
        };
        let s = k.to_string();
        assert!(
            s.starts_with("f16 matmul: cooperative 16x16x16 f16->f32;"),
            "{s}"
        );
        assert!(s.contains("f32 matmul: plain ("), "{s}");
    }
}
