//! The fault hook of [`WgpuBackend`]: where a [`FaultPlan`] is consulted, so tests can make
//! allocations, writes, reads and submits fail under code that runs on the real backend
//! (`Context`, `Trainer`) without a wrapper type in the user's signatures.
//!
//! With the `testing` feature the hook holds an optional shared plan; without it the hook is
//! a zero-sized type whose checks compile to nothing, so release builds carry no cost.

use super::WgpuBackend;

#[cfg(any(test, feature = "testing"))]
pub(super) use enabled::FaultHook;

#[cfg(not(any(test, feature = "testing")))]
pub(super) use disabled::FaultHook;

#[cfg(any(test, feature = "testing"))]
mod enabled {
    use crate::backend::FaultPlan;
    use crate::error::Result;
    use crate::sync::lock;
    use std::sync::{Arc, Mutex};

    /// The plan a test installed, if any.
    #[derive(Debug, Default)]
    pub(in crate::backend::wgpu_backend) struct FaultHook {
        pub(super) plan: Mutex<Option<Arc<FaultPlan>>>,
    }

    impl FaultHook {
        pub(in crate::backend::wgpu_backend) fn new() -> Self {
            Self::default()
        }

        fn with(&self, check: impl FnOnce(&FaultPlan) -> Result<()>) -> Result<()> {
            match &*lock(&self.plan) {
                Some(plan) => check(plan),
                None => Ok(()),
            }
        }

        pub(in crate::backend::wgpu_backend) fn allocate(&self, size: u64) -> Result<()> {
            self.with(|p| p.on_allocate(size))
        }

        pub(in crate::backend::wgpu_backend) fn transfer(&self, op: &'static str) -> Result<()> {
            self.with(|p| p.on_transfer(op))
        }

        pub(in crate::backend::wgpu_backend) fn submit(&self) -> Result<()> {
            self.with(FaultPlan::on_submit)
        }

        pub(in crate::backend::wgpu_backend) fn check_lost(&self) -> Result<()> {
            self.with(FaultPlan::check_lost)
        }
    }
}

#[cfg(not(any(test, feature = "testing")))]
mod disabled {
    use crate::error::Result;

    /// No plan can be installed without the `testing` feature.
    #[derive(Debug)]
    pub(in crate::backend::wgpu_backend) struct FaultHook;

    impl FaultHook {
        pub(in crate::backend::wgpu_backend) fn new() -> Self {
            Self
        }

        #[inline(always)]
        pub(in crate::backend::wgpu_backend) fn allocate(&self, _size: u64) -> Result<()> {
            Ok(())
        }

        #[inline(always)]
        pub(in crate::backend::wgpu_backend) fn transfer(&self, _op: &'static str) -> Result<()> {
            Ok(())
        }

        #[inline(always)]
        pub(in crate::backend::wgpu_backend) fn submit(&self) -> Result<()> {
            Ok(())
        }

        #[inline(always)]
        pub(in crate::backend::wgpu_backend) fn check_lost(&self) -> Result<()> {
            Ok(())
        }
    }
}

impl WgpuBackend {
    /// Installs `plan` (or removes it, with `None`): from now on this backend consults it
    /// before every allocation, write, read and submit, and fails where it says. Only with
    /// the `testing` feature. The plan's device loss is this backend's: once lost, every
    /// later operation is [`crate::Error::DeviceLost`], as after a real loss.
    #[cfg(any(test, feature = "testing"))]
    pub fn set_fault_plan(&self, plan: Option<std::sync::Arc<crate::backend::FaultPlan>>) {
        *crate::sync::lock(&self.faults.plan) = plan;
    }
}
