//! The memory layer under injected faults ([`FaultyBackend`] over `HostBackend`).
//!
//! Covered: the Nth allocation failing (survived by the manager's retry ladder, or an
//! out-of-memory when every retry fails too); failing writes and reads as
//! [`Error::Transfer`]; a lost device as [`Error::DeviceLost`] on every later operation with
//! nothing leaked; and random sequences of every public memory operation (acquire, drop,
//! write, read, copy, evict, clear, limits, pressure, prewarm, scratch, workspace) under
//! random fault rates, where after every operation
//! - the result is `Ok` or one of the typed errors a fault can cause,
//! - live bytes equal the sum of the held buffers (and the requested bytes theirs),
//! - cached bytes equal what the backend holds minus the live bytes,
//! - reserved bytes stay under the hard limit (or at the live bytes, when it was lowered
//!   below them),
//!
//! and at the end, after dropping everything and `clear_cache`, the backend holds nothing
//! and the pool still serves a write and a read. The last tests run the wrapper over the real
//! `WgpuBackend` (lavapipe in CI) with the same account checks, and a `FaultPlan` installed in
//! the real backend itself (`WgpuBackend::set_fault_plan`): allocation, write, read and submit
//! each fail where planned, and removing the plan gives the device back.

mod common;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use std::sync::Arc;
use wgmem::memory::{MemoryManager, Workspace};
use wgmem::pressure::PressureLevel;
use wgmem::testing::FaultyBackend;
use wgmem::{Backend, BufferUsage, Error, HostBackend, ManagedBuffer, MemoryConfig};

type Faulty = FaultyBackend<HostBackend>;

const KIB: u64 = 1024;

fn faulty(seed: u64, config: MemoryConfig) -> (Arc<Faulty>, MemoryManager<Faulty>) {
    let backend = Arc::new(FaultyBackend::new(
        HostBackend::new().with_max_buffer_size(1 << 20),
        seed,
    ));
    let manager = MemoryManager::with_config(Arc::clone(&backend), config).unwrap();
    (backend, manager)
}

/// Every public memory operation the random sequences use.
#[derive(Debug, Clone)]
enum Op {
    Acquire(u64, bool),
    Drop(usize),
    Write(usize, u8),
    Read(usize),
    Copy(usize, usize),
    EvictFraction(f64),
    ClearCache,
    EvictUnusedSinceMark,
    HardLimit(Option<u64>),
    SoftLimit(Option<u64>),
    Pressure(u8),
    Prewarm(Vec<u64>),
    Temporary(usize, u64),
    Workspace(u8, u64),
    WorkspaceClear,
    AllocationRate(f64),
    FailNextAllocation,
    TransferRates(f64, f64),
    HoldCompletion(bool),
    RunCleanups,
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        8 => 1u64..64 * KIB,
        1 => Just(0u64),
        1 => Just((1u64 << 20) + 1),
        1 => Just(u64::MAX),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        12 => (size(), any::<bool>()).prop_map(|(s, u)| Op::Acquire(s, u)),
        8 => any::<usize>().prop_map(Op::Drop),
        4 => (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Op::Write(i, b)),
        4 => any::<usize>().prop_map(Op::Read),
        2 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Op::Copy(a, b)),
        1 => (0.0f64..=1.0).prop_map(Op::EvictFraction),
        1 => Just(Op::ClearCache),
        1 => Just(Op::EvictUnusedSinceMark),
        1 => prop::option::of(0u64..512 * KIB).prop_map(Op::HardLimit),
        1 => prop::option::of(0u64..512 * KIB).prop_map(Op::SoftLimit),
        1 => (0u8..3).prop_map(Op::Pressure),
        1 => prop::collection::vec(size(), 0..4).prop_map(Op::Prewarm),
        1 => (0usize..4, size()).prop_map(|(c, s)| Op::Temporary(c, s)),
        2 => (0u8..3, size()).prop_map(|(n, s)| Op::Workspace(n, s)),
        1 => Just(Op::WorkspaceClear),
        1 => prop_oneof![Just(0.0), 0.0f64..0.5, Just(1.0)].prop_map(Op::AllocationRate),
        1 => Just(Op::FailNextAllocation),
        1 => (0.0f64..0.5, 0.0f64..0.5).prop_map(|(w, r)| Op::TransferRates(w, r)),
        1 => any::<bool>().prop_map(Op::HoldCompletion),
        1 => Just(Op::RunCleanups),
    ]
}

/// A manager under faults, what the test holds, and a mirror of what it expects.
struct Harness {
    backend: Arc<Faulty>,
    manager: MemoryManager<Faulty>,
    /// Held buffers and the byte they were last filled with, if that write succeeded.
    held: Vec<(ManagedBuffer<Faulty>, Option<u8>)>,
    workspace: Workspace<Faulty>,
    /// Mirror of the workspace: slot name, requested bytes, class bytes.
    slots: Vec<(&'static str, u64, u64)>,
    mark: u64,
    ok: u64,
    errors: u64,
}

const SLOTS: [&str; 3] = ["a", "b", "c"];

impl Harness {
    fn new(seed: u64) -> Self {
        let (backend, manager) = faulty(seed, MemoryConfig::default());
        let workspace = Workspace::new(&manager, "workspace");
        Self {
            backend,
            manager,
            held: Vec::new(),
            workspace,
            slots: Vec::new(),
            mark: 0,
            ok: 0,
            errors: 0,
        }
    }

    fn index(&self, i: usize) -> Option<usize> {
        (!self.held.is_empty()).then(|| i % self.held.len())
    }

    fn apply(&mut self, op: Op) -> Result<(), Error> {
        let m = &self.manager;
        match op {
            Op::Acquire(size, uniform) => {
                let usage = if uniform {
                    BufferUsage::Uniform
                } else {
                    BufferUsage::Storage
                };
                self.held.push((m.acquire(size, usage, "held")?, None));
            }
            Op::Drop(i) => {
                if let Some(i) = self.index(i) {
                    self.held.swap_remove(i);
                }
            }
            Op::Write(i, byte) => {
                if let Some(i) = self.index(i) {
                    let (buffer, expected) = &mut self.held[i];
                    let len = buffer.requested() / 4 * 4;
                    // A failed write leaves the contents unspecified.
                    *expected = None;
                    buffer.write(0, &vec![byte; len as usize])?;
                    *expected = Some(byte);
                }
            }
            Op::Read(i) => {
                if let Some(i) = self.index(i) {
                    let (buffer, expected) = &self.held[i];
                    let mut out = vec![0u8; (buffer.requested() / 4 * 4) as usize];
                    buffer.read(0, &mut out)?;
                    if let Some(byte) = expected {
                        assert!(out.iter().all(|b| b == byte), "a read sees the last write");
                    }
                }
            }
            Op::Copy(a, b) => {
                if let (Some(a), Some(b)) = (self.index(a), self.index(b)) {
                    if a != b {
                        let len =
                            self.held[a].0.requested().min(self.held[b].0.requested()) / 4 * 4;
                        self.backend
                            .copy(self.held[a].0.raw(), 0, self.held[b].0.raw(), 0, len)?;
                        // Whole-buffer equality is no longer known for the destination.
                        let full = self.held[b].0.requested() / 4 * 4 == len;
                        self.held[b].1 = self.held[a].1.filter(|_| full);
                    }
                }
            }
            Op::EvictFraction(f) => {
                m.evict_fraction(f);
            }
            Op::ClearCache => {
                m.clear_cache();
            }
            Op::EvictUnusedSinceMark => {
                m.evict_unused_since(self.mark);
                self.mark = m.mark();
            }
            Op::HardLimit(limit) => m.set_hard_limit(limit)?,
            Op::SoftLimit(limit) => m.set_soft_limit(limit),
            Op::Pressure(level) => {
                let level = [
                    PressureLevel::Normal,
                    PressureLevel::Warning,
                    PressureLevel::Critical,
                ][level as usize];
                m.respond_to_pressure(level);
            }
            Op::Prewarm(sizes) => m.prewarm(&sizes, BufferUsage::Storage)?,
            Op::Temporary(count, size) => {
                let backend = Arc::clone(&self.backend);
                m.with_temporary_buffers(count, size, |bufs| {
                    for b in bufs {
                        assert!(b.size() >= size);
                        // A failure inside the closure is the caller's business: ignore it.
                        let _ = backend.write(b.raw(), 0, &[1, 2, 3, 4]);
                    }
                })?;
            }
            Op::Workspace(slot, size) => {
                let name = SLOTS[slot as usize];
                let found = self.slots.iter().position(|s| s.0 == name);
                match found {
                    Some(i) if self.slots[i].2 >= size => {
                        self.workspace.buffer(name, size)?;
                    }
                    _ => {
                        // The workspace gives the small buffer back before acquiring.
                        if let Some(i) = found {
                            self.slots.swap_remove(i);
                        }
                        let class = self.workspace.buffer(name, size)?.size();
                        self.slots.push((name, size, class));
                    }
                }
            }
            Op::WorkspaceClear => {
                self.workspace.clear();
                self.slots.clear();
            }
            Op::AllocationRate(rate) => self.backend.set_allocation_failure_rate(rate),
            Op::FailNextAllocation => self
                .backend
                .fail_allocation_at(self.backend.allocate_calls() + 1),
            Op::TransferRates(w, r) => {
                self.backend.set_write_failure_rate(w);
                self.backend.set_read_failure_rate(r);
            }
            Op::HoldCompletion(hold) => self.backend.inner().hold_completion(hold),
            Op::RunCleanups => m.run_cleanups(),
        }
        Ok(())
    }

    /// Applies `op`, checks that an error is one a fault (or the input) can cause, and that
    /// the account is exact afterwards.
    fn step(&mut self, op: Op) {
        let shown = format!("{op:?}");
        match self.apply(op) {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.errors += 1;
                assert!(
                    matches!(
                        e,
                        Error::OutOfMemory(_)
                            | Error::ZeroSize
                            | Error::TooLarge { .. }
                            | Error::Transfer { .. }
                            | Error::DeviceLost { .. }
                            | Error::InvalidArgument { .. }
                    ),
                    "{shown}: unexpected error {e:?}"
                );
            }
        }
        self.check(&shown);
    }

    fn check(&self, after: &str) {
        let s = self.manager.stats();
        let held: u64 = self.held.iter().map(|(b, _)| b.size()).sum();
        let held_requested: u64 = self.held.iter().map(|(b, _)| b.requested()).sum();
        let ws: u64 = self.slots.iter().map(|s| s.2).sum();
        let ws_requested: u64 = self.slots.iter().map(|s| s.1).sum();
        assert_eq!(
            ws,
            self.workspace.bytes(),
            "after {after}: workspace mirror"
        );
        assert_eq!(s.live_bytes, held + ws, "after {after}: live bytes");
        assert_eq!(
            s.requested_live_bytes,
            held_requested + ws_requested,
            "after {after}: requested bytes"
        );
        assert_eq!(
            s.cached_bytes,
            self.backend.allocated_bytes() - s.live_bytes,
            "after {after}: cached = backend allocated - live"
        );
        if let Some(limit) = self.manager.hard_limit() {
            assert!(
                s.reserved_bytes() <= limit.max(s.live_bytes),
                "after {after}: reserved {} over the limit {limit}",
                s.reserved_bytes()
            );
        }
    }

    /// Drops everything, clears the cache and checks that nothing leaked; then, unless the
    /// device is lost, that the pool still serves a write and a read.
    fn finish(mut self) -> (u64, u64) {
        self.held.clear();
        self.workspace.clear();
        self.slots.clear();
        self.check("dropping everything");
        self.backend.inner().hold_completion(false);
        self.manager.clear_cache();
        assert_eq!(self.manager.stats().live_bytes, 0);
        assert_eq!(self.backend.allocated_bytes(), 0, "no buffer leaked");
        assert_eq!(self.backend.live_buffers(), 0, "no buffer leaked");
        assert_eq!(self.backend.inner().allocated_bytes(), 0);
        if !self.backend.is_lost() {
            self.backend.clear_faults();
            self.manager.set_hard_limit(None).unwrap();
            let b = self
                .manager
                .acquire(4 * KIB, BufferUsage::Storage, "after")
                .expect("the pool is usable after the faults");
            b.write(0, &[7u8; 4096]).unwrap();
            let mut out = [0u8; 4096];
            b.read(0, &mut out).unwrap();
            assert!(out.iter().all(|&x| x == 7));
        }
        (self.ok, self.errors)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn every_memory_operation_succeeds_or_fails_typed_and_the_account_stays_exact(
        seed in any::<u64>(),
        ops in prop::collection::vec(op(), 1..160),
        lose_at in prop::option::of(0usize..160),
    ) {
        let mut h = Harness::new(seed);
        for (i, op) in ops.into_iter().enumerate() {
            if lose_at == Some(i) {
                h.backend.lose_device("injected device loss");
            }
            h.step(op);
        }
        h.finish();
    }
}

/// A long seeded run for the closing figures: prints the faults injected and survived.
#[test]
fn a_long_random_run_under_faults_leaks_nothing() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let ops = prop::collection::vec(op(), 20_000)
        .new_tree(&mut runner)
        .unwrap()
        .current();
    let mut h = Harness::new(2026);
    h.backend.set_allocation_failure_rate(0.1);
    h.backend.set_write_failure_rate(0.05);
    h.backend.set_read_failure_rate(0.05);
    for op in ops {
        h.step(op);
    }
    let faults = h.backend.faults();
    let stats = h.manager.stats();
    let (ok, errors) = h.finish();
    eprintln!(
        "20000 operations: {ok} ok, {errors} typed errors; faults injected {faults:?} (total {}); \
         manager retries {}, OOMs {}",
        faults.total(),
        stats.retries,
        stats.ooms
    );
    assert!(faults.allocations > 100 && faults.writes > 10 && faults.reads > 10);
}

#[test]
fn a_failed_nth_allocation_is_retried_and_survived() {
    let (backend, m) = faulty(1, MemoryConfig::default());
    let a = m.acquire(KIB, BufferUsage::Storage, "a").unwrap();
    backend.fail_allocation_at(backend.allocate_calls() + 1);
    let b = m.acquire(2 * KIB, BufferUsage::Storage, "b").unwrap();
    let s = m.stats();
    assert_eq!(backend.faults().allocations, 1);
    assert_eq!((s.retries, s.ooms, s.allocations), (1, 0, 2));
    assert_eq!(s.live_bytes, a.size() + b.size());
    assert_eq!(
        s.requested_live_bytes,
        3 * KIB,
        "the failed try left no trace"
    );
}

#[test]
fn allocations_that_always_fail_end_in_a_typed_out_of_memory_with_the_account_intact() {
    let (backend, m) = faulty(2, MemoryConfig::default());
    let a = m.acquire(KIB, BufferUsage::Storage, "a").unwrap();
    let before = m.stats();
    backend.set_allocation_failure_rate(1.0);
    match m.acquire(8 * KIB, BufferUsage::Storage, "b") {
        Err(Error::OutOfMemory(report)) => {
            assert!(report.device_message.unwrap().contains("injected"));
            assert_eq!(report.largest, vec![("a".to_string(), a.size())]);
        }
        other => panic!("expected out-of-memory, got {other:?}"),
    }
    let after = m.stats();
    assert_eq!(after.live_bytes, before.live_bytes);
    assert_eq!(after.requested_live_bytes, before.requested_live_bytes);
    assert_eq!(after.allocations, before.allocations);
    assert_eq!(after.ooms, 1);
    assert_eq!(
        backend.faults().allocations,
        3,
        "one try per rung of the ladder"
    );
    // A pool hit needs no allocation, so it still works.
    drop(a);
    let again = m.acquire(KIB, BufferUsage::Storage, "a").unwrap();
    assert_eq!(m.stats().pool_hits, 1);
    drop(again);
}

#[test]
fn failed_writes_and_reads_are_transfer_errors_and_the_buffer_stays_usable() {
    let (backend, m) = faulty(3, MemoryConfig::default());
    let b = m.acquire(64, BufferUsage::Storage, "b").unwrap();
    backend.set_write_failure_rate(1.0);
    assert!(matches!(
        b.write(0, &[1; 64]),
        Err(Error::Transfer { op: "write", .. })
    ));
    backend.set_write_failure_rate(0.0);
    backend.set_read_failure_rate(1.0);
    b.write(0, &[1; 64]).unwrap();
    let mut out = [0u8; 64];
    let e = b.read(0, &mut out).unwrap_err();
    assert!(matches!(e, Error::Transfer { op: "read", .. }), "{e}");
    assert!(e.to_string().contains("read"));
    backend.clear_faults();
    b.read(0, &mut out).unwrap();
    assert_eq!(out, [1; 64]);
    assert_eq!(backend.faults().total(), 2);
}

#[test]
fn a_lost_device_fails_every_later_operation_and_leaks_nothing() {
    let (backend, m) = faulty(4, MemoryConfig::default());
    let a = m.acquire(KIB, BufferUsage::Storage, "a").unwrap();
    let cached = m.acquire(2 * KIB, BufferUsage::Storage, "c").unwrap();
    drop(cached);
    backend.lose_device("driver reset");
    let lost = |r: Result<(), Error>| matches!(r, Err(Error::DeviceLost { ref reason }) if reason == "driver reset");
    assert!(lost(a.write(0, &[0; 4])));
    assert!(lost(a.read(0, &mut [0; 4])));
    assert!(lost(backend.wait_idle()));
    assert!(lost(
        m.acquire(64 * KIB, BufferUsage::Storage, "new").map(|_| ())
    ));
    let message = a.write(0, &[0; 4]).unwrap_err().to_string();
    assert!(
        message.contains("lost") && message.contains("resume"),
        "{message}"
    );
    drop(a);
    m.clear_cache();
    assert_eq!(backend.allocated_bytes(), 0);
    assert_eq!(backend.live_buffers(), 0);
    assert_eq!(m.stats().live_bytes, 0);
    assert!(backend.faults().device_lost >= 5);
}

/// The wrapper over the real GPU backend: the same account checks on lavapipe in CI.
#[test]
fn faults_over_the_gpu_backend_keep_the_account_exact() {
    let backend = Arc::new(FaultyBackend::new(wgmem::WgpuBackend::new().unwrap(), 5));
    let m = MemoryManager::new(Arc::clone(&backend));
    backend.set_allocation_failure_rate(0.2);
    backend.set_write_failure_rate(0.1);
    backend.set_read_failure_rate(0.1);
    let mut rng = common::Rng::new(5);
    let mut held: Vec<(ManagedBuffer<_>, Option<u8>)> = Vec::new();
    for i in 0..400u64 {
        let r = match rng.next_u64() % 4 {
            0 | 1 => m
                .acquire(
                    4 + rng.next_u64() % (256 * KIB),
                    BufferUsage::Storage,
                    "gpu",
                )
                .map(|b| held.push((b, None))),
            2 if !held.is_empty() => {
                let k = rng.next_u64() as usize % held.len();
                held.swap_remove(k);
                Ok(())
            }
            _ if !held.is_empty() => {
                let k = rng.next_u64() as usize % held.len();
                let (b, mark) = &mut held[k];
                let len = (b.requested() / 4 * 4) as usize;
                let mut out = vec![0u8; len];
                match b.read(0, &mut out) {
                    Ok(()) => {
                        if let Some(x) = *mark {
                            assert!(out.iter().all(|&v| v == x), "step {i}");
                        }
                        *mark = None;
                        let byte = i as u8;
                        b.write(0, &vec![byte; len]).map(|()| *mark = Some(byte))
                    }
                    Err(e) => Err(e),
                }
            }
            _ => Ok(()),
        };
        if let Err(e) = r {
            assert!(
                matches!(e, Error::OutOfMemory(_) | Error::Transfer { .. }),
                "{e}"
            );
        }
        let s = m.stats();
        let live: u64 = held.iter().map(|(b, _)| b.size()).sum();
        assert_eq!(s.live_bytes, live);
        assert_eq!(s.cached_bytes, backend.allocated_bytes() - live);
    }
    let faults = backend.faults();
    assert!(
        faults.allocations > 0 && faults.writes + faults.reads > 0,
        "{faults:?}"
    );
    backend.lose_device("test");
    if let Some((b, _)) = held.first() {
        assert!(matches!(b.write(0, &[0; 4]), Err(Error::DeviceLost { .. })));
    }
    held.clear();
    m.clear_cache();
    assert_eq!(backend.allocated_bytes(), 0);
    assert_eq!(backend.live_buffers(), 0);
}

#[test]
fn a_fault_plan_under_the_gpu_backend_fails_each_operation_and_can_be_removed() {
    use wgmem::testing::FaultPlan;
    let backend = common::fresh_gpu_backend();
    let manager = MemoryManager::new(Arc::clone(&backend));
    let buffer = manager.acquire(256, BufferUsage::Storage, "t").unwrap();
    let other = manager.acquire(256, BufferUsage::Storage, "t").unwrap();
    let plan = Arc::new(FaultPlan::new(9));
    backend.set_fault_plan(Some(Arc::clone(&plan)));
    // The backend's own refusal, then the manager's report after its retries.
    plan.set_allocation_failure_rate(1.0);
    let e = backend.allocate(4096, BufferUsage::Storage).unwrap_err();
    assert!(matches!(e, Error::DeviceOutOfMemory { .. }), "{e:?}");
    let e = manager
        .acquire(8192, BufferUsage::Storage, "t")
        .unwrap_err();
    assert!(matches!(e, Error::OutOfMemory(_)), "{e:?}");
    plan.set_allocation_failure_rate(0.0);
    plan.fail_write_at(1);
    let e = buffer.write(0, &[1; 256]).unwrap_err();
    assert!(matches!(e, Error::Transfer { op: "write", .. }), "{e:?}");
    buffer.write(0, &[7; 256]).unwrap();
    plan.fail_read_at(1);
    let mut out = [0u8; 256];
    let e = backend.read(buffer.raw(), 0, &mut out).unwrap_err();
    assert!(matches!(e, Error::Transfer { op: "read", .. }), "{e:?}");
    backend.read(buffer.raw(), 0, &mut out).unwrap();
    assert_eq!(out, [7; 256], "the buffer stayed usable");
    // A lost device at the next submit (of the recorded copy): every later operation says so.
    plan.lose_device_at_submit(1);
    backend.copy(buffer.raw(), 0, other.raw(), 0, 256).unwrap();
    let e = backend.wait_idle().unwrap_err();
    assert!(matches!(e, Error::DeviceLost { .. }), "{e:?}");
    assert!(matches!(
        manager.acquire(64, BufferUsage::Storage, "t"),
        Err(Error::DeviceLost { .. })
    ));
    let f = plan.faults();
    assert!(f.allocations >= 2 && f.writes == 1 && f.reads == 1 && f.device_lost >= 2);
    // Removing the plan gives the device back (it was never really lost).
    backend.set_fault_plan(None);
    buffer.write(0, &[3; 256]).unwrap();
    backend.read(buffer.raw(), 0, &mut out).unwrap();
    assert_eq!(out, [3; 256]);
    drop((buffer, other));
    manager.clear_cache();
    assert_eq!(manager.stats().reserved_bytes(), 0);
}
