//! [`FaultPlan`]: which device operations fail, decided in one place that any backend consults.
//!
//! A plan is shared (`Arc`) between the test that drives it and the backend that asks it.
//! [`crate::testing::FaultyBackend`] wraps any backend around one; [`WgpuBackend`] holds an
//! optional one of its own ([`WgpuBackend::set_fault_plan`]) so that the code users write
//! (`Context`, `Gpu`, `Tensor`, `Trainer`, all on `WgpuBackend`) runs unchanged while
//! allocations, writes, reads and submits fail underneath it. Both exist only with the
//! `testing` feature; without it `WgpuBackend` carries a zero-sized no-op in the plan's place.
//!
//! Every knob takes `&self`, so a test can change the faults mid-run.
//!
//! [`WgpuBackend`]: super::WgpuBackend
//! [`WgpuBackend::set_fault_plan`]: super::WgpuBackend::set_fault_plan

use crate::error::{Error, Result};
use crate::sync::lock;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::Mutex;

/// What a [`FaultPlan`] has injected so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultCounts {
    /// Allocations refused as out of memory.
    pub allocations: u64,
    /// Writes failed with [`Error::Transfer`].
    pub writes: u64,
    /// Reads failed with [`Error::Transfer`].
    pub reads: u64,
    /// Operations refused with [`Error::DeviceLost`] once the device was lost.
    pub device_lost: u64,
}

impl FaultCounts {
    /// All injected faults together.
    pub fn total(&self) -> u64 {
        self.allocations + self.writes + self.reads + self.device_lost
    }
}

#[derive(Debug)]
struct PlanState {
    rng: ChaCha8Rng,
    /// 1-based indices (counting every `allocate` call) of allocations that must fail.
    fail_allocation_at: Vec<u64>,
    /// 1-based indices of writes and of reads that must fail.
    fail_write_at: Vec<u64>,
    fail_read_at: Vec<u64>,
    allocation_rate: f64,
    write_rate: f64,
    read_rate: f64,
    /// Each submit loses the device with this probability.
    loss_rate: f64,
    /// The submit (1-based, counting every submit the plan has seen) that loses the device.
    lose_at_submit: Option<u64>,
    lost: Option<String>,
    allocate_calls: u64,
    write_calls: u64,
    read_calls: u64,
    submits: u64,
    counts: FaultCounts,
}

/// Seeded decisions of which operations fail. See the module docs.
#[derive(Debug)]
pub struct FaultPlan {
    state: Mutex<PlanState>,
}

impl FaultPlan {
    /// A plan with no faults; `seed` drives the random failure rates.
    pub fn new(seed: u64) -> Self {
        Self {
            state: Mutex::new(PlanState {
                rng: ChaCha8Rng::seed_from_u64(seed),
                fail_allocation_at: Vec::new(),
                fail_write_at: Vec::new(),
                fail_read_at: Vec::new(),
                allocation_rate: 0.0,
                write_rate: 0.0,
                read_rate: 0.0,
                loss_rate: 0.0,
                lose_at_submit: None,
                lost: None,
                allocate_calls: 0,
                write_calls: 0,
                read_calls: 0,
                submits: 0,
                counts: FaultCounts::default(),
            }),
        }
    }

    /// Makes the `n`th call to `allocate` (1-based, see [`Self::allocate_calls`]) fail as out
    /// of memory.
    pub fn fail_allocation_at(&self, n: u64) {
        lock(&self.state).fail_allocation_at.push(n);
    }

    /// Makes the `n`th write from now (1 = the next one) fail with [`Error::Transfer`].
    pub fn fail_write_at(&self, n: u64) {
        let mut s = lock(&self.state);
        let at = s.write_calls + n.max(1);
        s.fail_write_at.push(at);
    }

    /// Makes the `n`th read from now (1 = the next one) fail with [`Error::Transfer`].
    pub fn fail_read_at(&self, n: u64) {
        let mut s = lock(&self.state);
        let at = s.read_calls + n.max(1);
        s.fail_read_at.push(at);
    }

    /// Each later allocation fails with probability `rate` (clamped to 0..=1).
    pub fn set_allocation_failure_rate(&self, rate: f64) {
        lock(&self.state).allocation_rate = clamp_rate(rate);
    }

    /// Each later write fails with probability `rate` (clamped to 0..=1).
    pub fn set_write_failure_rate(&self, rate: f64) {
        lock(&self.state).write_rate = clamp_rate(rate);
    }

    /// Each later read fails with probability `rate` (clamped to 0..=1).
    pub fn set_read_failure_rate(&self, rate: f64) {
        lock(&self.state).read_rate = clamp_rate(rate);
    }

    /// Each later submit loses the device with probability `rate` (clamped to 0..=1).
    /// Backends that do not submit ([`crate::HostBackend`]) never consult it.
    pub fn set_device_loss_rate(&self, rate: f64) {
        lock(&self.state).loss_rate = clamp_rate(rate);
    }

    /// The `n`th submit from now (1 = the next one) loses the device.
    pub fn lose_device_at_submit(&self, n: u64) {
        let mut s = lock(&self.state);
        s.lose_at_submit = Some(s.submits + n.max(1));
    }

    /// Clears every planned fault and rate (a lost device stays lost).
    pub fn clear_faults(&self) {
        let mut s = lock(&self.state);
        s.fail_allocation_at.clear();
        s.fail_write_at.clear();
        s.fail_read_at.clear();
        s.allocation_rate = 0.0;
        s.write_rate = 0.0;
        s.read_rate = 0.0;
        s.loss_rate = 0.0;
        s.lose_at_submit = None;
    }

    /// From now on every operation but freeing returns [`Error::DeviceLost`] with `reason`.
    pub fn lose_device(&self, reason: impl Into<String>) {
        lock(&self.state).lost = Some(reason.into());
    }

    /// True once the device is lost.
    pub fn is_lost(&self) -> bool {
        lock(&self.state).lost.is_some()
    }

    /// The faults injected so far.
    pub fn faults(&self) -> FaultCounts {
        lock(&self.state).counts
    }

    /// Calls to `allocate` the plan has seen, failed ones included.
    pub fn allocate_calls(&self) -> u64 {
        lock(&self.state).allocate_calls
    }

    /// Submits the plan has seen.
    pub fn submits(&self) -> u64 {
        lock(&self.state).submits
    }

    /// Consulted before an allocation of `size` bytes: `Err` when the device is lost or this
    /// allocation is planned (or drawn) to fail.
    pub(crate) fn on_allocate(&self, size: u64) -> Result<()> {
        let mut s = lock(&self.state);
        s.allocate_calls += 1;
        let call = s.allocate_calls;
        check_lost(&mut s)?;
        let planned = s.fail_allocation_at.iter().position(|&n| n == call);
        if let Some(i) = planned {
            s.fail_allocation_at.swap_remove(i);
        }
        let rate = s.allocation_rate;
        if planned.is_some() || (rate > 0.0 && s.rng.random_bool(rate)) {
            s.counts.allocations += 1;
            return Err(super::device_out_of_memory(
                size,
                format!("injected fault at allocation {call}"),
            ));
        }
        Ok(())
    }

    /// Consulted before a write (`op == "write"`) or a read (`"read"`).
    pub(crate) fn on_transfer(&self, op: &'static str) -> Result<()> {
        let mut s = lock(&self.state);
        check_lost(&mut s)?;
        let s = &mut *s;
        let (calls, planned, rate) = if op == "write" {
            (&mut s.write_calls, &mut s.fail_write_at, s.write_rate)
        } else {
            (&mut s.read_calls, &mut s.fail_read_at, s.read_rate)
        };
        *calls += 1;
        let call = *calls;
        let planned = match planned.iter().position(|&n| n == call) {
            Some(i) => {
                planned.swap_remove(i);
                true
            }
            None => false,
        };
        if planned || (rate > 0.0 && s.rng.random_bool(rate)) {
            if op == "write" {
                s.counts.writes += 1;
            } else {
                s.counts.reads += 1;
            }
            return Err(Error::Transfer {
                op,
                reason: "injected fault".into(),
            });
        }
        Ok(())
    }

    /// Consulted before a batch of GPU work is submitted: may lose the device.
    pub(crate) fn on_submit(&self) -> Result<()> {
        let mut s = lock(&self.state);
        check_lost(&mut s)?;
        s.submits += 1;
        let drawn = s.loss_rate > 0.0 && {
            let rate = s.loss_rate;
            s.rng.random_bool(rate)
        };
        if drawn || s.lose_at_submit == Some(s.submits) {
            s.lose_at_submit = None;
            s.lost = Some(format!("injected device loss at submit {}", s.submits));
            return check_lost(&mut s);
        }
        Ok(())
    }

    /// Consulted by every other operation that needs the device.
    pub(crate) fn check_lost(&self) -> Result<()> {
        check_lost(&mut lock(&self.state))
    }
}

/// `Err(DeviceLost)` (counted) when the device is lost.
fn check_lost(s: &mut PlanState) -> Result<()> {
    match &s.lost {
        Some(reason) => {
            let reason = reason.clone();
            s.counts.device_lost += 1;
            Err(Error::DeviceLost { reason })
        }
        None => Ok(()),
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planned_loss_happens_at_that_submit_and_sticks() {
        let plan = FaultPlan::new(1);
        plan.on_submit().unwrap();
        plan.lose_device_at_submit(2);
        plan.on_submit().unwrap();
        assert!(matches!(plan.on_submit(), Err(Error::DeviceLost { .. })));
        assert!(plan.is_lost());
        assert!(plan.on_allocate(4).is_err() && plan.on_transfer("read").is_err());
        assert_eq!(plan.faults().device_lost, 3);
        plan.clear_faults();
        assert!(plan.check_lost().is_err(), "a lost device stays lost");
    }

    #[test]
    fn planned_transfer_failures_hit_exactly_that_call() {
        let plan = FaultPlan::new(1);
        plan.on_transfer("write").unwrap();
        plan.fail_write_at(2);
        plan.fail_read_at(1);
        plan.on_transfer("write").unwrap();
        assert!(matches!(
            plan.on_transfer("write"),
            Err(Error::Transfer { op: "write", .. })
        ));
        plan.on_transfer("write").unwrap();
        assert!(matches!(
            plan.on_transfer("read"),
            Err(Error::Transfer { op: "read", .. })
        ));
        plan.on_transfer("read").unwrap();
        assert_eq!((plan.faults().writes, plan.faults().reads), (1, 1));
    }

    #[test]
    fn rates_are_clamped_and_seeded() {
        let draws = |seed| {
            let plan = FaultPlan::new(seed);
            plan.set_write_failure_rate(f64::NAN);
            assert!(plan.on_transfer("write").is_ok());
            plan.set_write_failure_rate(0.5);
            (0..64)
                .map(|_| plan.on_transfer("write").is_err())
                .collect::<Vec<_>>()
        };
        assert_eq!(draws(3), draws(3));
        assert!(draws(3).contains(&true) && draws(3).contains(&false));
        let plan = FaultPlan::new(0);
        plan.set_allocation_failure_rate(7.0);
        let e = plan.on_allocate(1).unwrap_err();
        assert!(
            matches!(e, Error::DeviceOutOfMemory { requested: 1, .. }),
            "a backend's refusal is its own variant: {e:?}"
        );
        assert!(e.is_out_of_memory());
    }
}
