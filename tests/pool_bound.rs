//! The pool's bound on reserved bytes, for a GPT-like acquire pattern with a lagging GPU.
//!
//! The pattern (on `HostBackend`, whose work completes only when the test says so): a forward
//! pass that keeps activations of several shapes per layer and releases a temporary right
//! after using it, a backward pass that frees each layer's activations while acquiring
//! gradients and a split-K scratch, an evaluation every other step at a smaller batch. The
//! "GPU" catches up only every few submissions, so released buffers are often still in flight
//! when the next request of their class comes.
//!
//! The model is the test's own list of held buffers: from it, the peak of live bytes and, per
//! size class, the peak of live bytes in that class. The bounds checked:
//!
//! - `in_flight_ratio = 1.0`: a miss happens only when nothing cached fits, so each class
//!   never holds more buffers than it had live at once: `peak reserved <= sum over classes of
//!   the class's peak live bytes`.
//! - any ratio `r`: after the last allocation beside an in-flight buffer the reserve was at
//!   most `r * peak live`; every later miss adds a buffer to a class with no cached one, so
//!   `peak reserved <= r * peak live + sum over classes of the class's peak live bytes`.
//! - the pool before the rule (`r = inf`) breaks the first bound on this pattern (so the
//!   check can fail), and every finite ratio reserves less than it.

use std::collections::BTreeMap;
use std::sync::Arc;
use wgmem::memory::{ManagedBuffer, MemoryConfig, MemoryManager};
use wgmem::{BufferUsage, HostBackend};

/// Submissions between two catch-ups of the simulated GPU.
const LAG: u64 = 7;

struct Run {
    backend: Arc<HostBackend>,
    manager: MemoryManager<HostBackend>,
    held: BTreeMap<u64, ManagedBuffer<HostBackend>>,
    next: u64,
    submissions: u64,
    peak_live: u64,
    class_live: BTreeMap<u64, u64>,
    class_peak: BTreeMap<u64, u64>,
}

impl Run {
    fn new(in_flight_ratio: f64) -> Self {
        let backend = Arc::new(HostBackend::new());
        backend.hold_completion(true);
        let config = MemoryConfig {
            in_flight_ratio,
            ..MemoryConfig::default()
        };
        let manager = MemoryManager::with_config(Arc::clone(&backend), config).unwrap();
        Self {
            backend,
            manager,
            held: BTreeMap::new(),
            next: 0,
            submissions: 0,
            peak_live: 0,
            class_live: BTreeMap::new(),
            class_peak: BTreeMap::new(),
        }
    }

    /// Acquires `bytes` and "uses" it (a write: one submission). Returns a handle.
    fn acquire(&mut self, bytes: u64) -> u64 {
        let buffer = self
            .manager
            .acquire(bytes, BufferUsage::Storage, "gpt")
            .unwrap();
        buffer.write(0, &[1, 2, 3, 4]).unwrap();
        self.submissions += 1;
        if self.submissions % LAG == 0 {
            self.backend.complete_all();
        }
        let class = buffer.size();
        let live = self.class_live.entry(class).or_default();
        *live += class;
        let peak = self.class_peak.entry(class).or_default();
        *peak = (*peak).max(*live);
        self.next += 1;
        self.held.insert(self.next, buffer);
        let total: u64 = self.class_live.values().sum();
        self.peak_live = self.peak_live.max(total);
        self.next
    }

    fn release(&mut self, handle: u64) {
        let buffer = self.held.remove(&handle).expect("held");
        *self.class_live.get_mut(&buffer.size()).unwrap() -= buffer.size();
    }

    /// One forward and backward over `layers` layers of `rows x width` f32 activations.
    fn step(&mut self, rows: u64, width: u64, layers: usize, train: bool) {
        let f = 4;
        let mut saved = Vec::new();
        for _ in 0..layers {
            let norm = self.acquire(rows * width * f);
            let qkv = self.acquire(rows * 3 * width * f);
            let attn = self.acquire(rows * width * f);
            let scratch = self.acquire(rows * width * f + 48);
            self.release(scratch);
            let hidden = self.acquire(rows * 4 * width * f);
            let out = self.acquire(rows * width * f);
            if train {
                saved.push([norm, qkv, attn, hidden, out]);
            } else {
                for h in [norm, qkv, attn, hidden, out] {
                    self.release(h);
                }
            }
        }
        let logits = self.acquire(rows * 256 * f);
        self.release(logits);
        while let Some(layer) = saved.pop() {
            let d_hidden = self.acquire(rows * 4 * width * f);
            let split_k = self.acquire(3 * width * 4 * width * f);
            self.release(split_k);
            let d_qkv = self.acquire(rows * 3 * width * f);
            let d_x = self.acquire(rows * width * f);
            for h in layer {
                self.release(h);
            }
            for h in [d_hidden, d_qkv, d_x] {
                self.release(h);
            }
        }
    }

    /// Five steps of 1000 rows, width 96, three layers; evaluation at 250 rows after steps 2, 4.
    fn train(mut self) -> Self {
        for step in 1..=5 {
            self.step(1000, 96, 3, true);
            if step % 2 == 0 {
                self.step(250, 96, 3, false);
            }
        }
        self
    }

    fn class_peaks(&self) -> u64 {
        self.class_peak.values().sum()
    }
}

#[test]
fn reserved_stays_within_the_class_peaks_when_the_pool_always_waits() {
    let run = Run::new(1.0).train();
    let reserved = run.manager.stats().peak_reserved_bytes;
    assert_eq!(run.manager.stats().peak_live_bytes, run.peak_live);
    assert!(
        reserved <= run.class_peaks(),
        "peak reserved {reserved} over the sum of class peaks {}",
        run.class_peaks()
    );
    assert!(
        run.manager.stats().pending_waits > 0,
        "the pattern makes it wait"
    );
}

#[test]
fn reserved_stays_within_the_ratio_bound_for_every_ratio() {
    for ratio in [1.0, 1.1, 1.25, 1.5, 2.0] {
        let run = Run::new(ratio).train();
        let reserved = run.manager.stats().peak_reserved_bytes as f64;
        let bound = ratio * run.peak_live as f64 + run.class_peaks() as f64;
        assert!(
            reserved <= bound,
            "ratio {ratio}: peak reserved {reserved} over {bound}"
        );
    }
}

#[test]
fn the_pool_without_the_rule_breaks_the_bound_and_every_ratio_reserves_less() {
    let legacy = Run::new(f64::INFINITY).train();
    let legacy_reserved = legacy.manager.stats().peak_reserved_bytes;
    assert_eq!(legacy.manager.stats().pending_waits, 0);
    assert!(
        legacy_reserved > legacy.class_peaks(),
        "without waiting, buffers in flight are kept beside new ones: {legacy_reserved} vs {}",
        legacy.class_peaks()
    );
    println!(
        "ratio inf: peak live {} reserved {} (class peaks {})",
        legacy.peak_live,
        legacy_reserved,
        legacy.class_peaks()
    );
    for ratio in [1.0, 1.25, 1.5] {
        let run = Run::new(ratio).train();
        let reserved = run.manager.stats().peak_reserved_bytes;
        println!(
            "ratio {ratio}: peak live {} reserved {} (class peaks {}), {} waits",
            run.peak_live,
            reserved,
            run.class_peaks(),
            run.manager.stats().pending_waits
        );
        assert!(
            reserved < legacy_reserved,
            "ratio {ratio}: {reserved} not below {legacy_reserved}"
        );
    }
}

#[test]
fn a_ratio_below_one_or_nan_is_refused() {
    for bad in [0.5, f64::NAN, -1.0] {
        let config = MemoryConfig {
            in_flight_ratio: bad,
            ..MemoryConfig::default()
        };
        let err = MemoryManager::with_config(Arc::new(HostBackend::new()), config).unwrap_err();
        assert!(err.to_string().contains("in_flight_ratio"), "{err}");
    }
}
