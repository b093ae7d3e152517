//! [`BufferPool`]: cached buffers by size class, reused most-recent-first, evicted
//! least-recently-used-first across all classes, and held back while the GPU may use them.
//!
//! The pool is plain data: it stores buffers of any type `T` and never creates or destroys
//! one. Whatever it evicts it hands back to the caller (the
//! [`MemoryManager`](super::MemoryManager)) to free. That keeps it free of wgpu, free of
//! unsafe code, and testable against a model.
//!
//! A released buffer first goes to *pending*, stamped with the submission index that covers
//! all work recorded so far; it becomes reusable only once the backend reports that index
//! complete ([`BufferPool::reclaim`]). Reuse takes the exact class first, then the smallest
//! larger class within `max_reuse_ratio` of the request, so a buffer is never much larger
//! than what was asked.
//!
//! When nothing reusable fits but a pending buffer would, [`BufferPool::pending_fits`] says so;
//! the manager then either waits for the GPU and reuses it or creates a new buffer beside it,
//! by its in-flight ratio (see [`MemoryConfig::in_flight_ratio`](super::MemoryConfig)).

#![deny(unsafe_code)]

use super::size_class::SizeClasses;
use crate::backend::{BufferUsage, SubmissionIndex};
use std::collections::{BTreeMap, VecDeque};

type Key = (BufferUsage, u64);

/// A buffer taken from or evicted by the pool, with its class size.
#[derive(Debug)]
pub struct Pooled<T> {
    /// The buffer.
    pub buffer: T,
    /// Its usage.
    pub usage: BufferUsage,
    /// Its size class in bytes (its real size).
    pub class: u64,
}

/// Cached buffers by (usage, size class). See the module docs.
#[derive(Debug)]
pub struct BufferPool<T> {
    classes: SizeClasses,
    max_reuse_ratio: f64,
    /// Reusable buffers per key, oldest first, each with the tick of its release.
    free: BTreeMap<Key, VecDeque<(u64, T)>>,
    /// Global LRU order: tick -> key of the buffer released at that tick.
    lru: BTreeMap<u64, Key>,
    /// Released buffers the GPU may still use, in release order.
    pending: VecDeque<(SubmissionIndex, Key, T)>,
    /// How many pending buffers each key has (keys with none are removed).
    pending_keys: BTreeMap<Key, usize>,
    tick: u64,
    reusable_bytes: u64,
    pending_bytes: u64,
}

impl<T> BufferPool<T> {
    /// An empty pool. `max_reuse_ratio` (at least 1) caps how much larger than the request's
    /// class a reused buffer may be.
    pub fn new(classes: SizeClasses, max_reuse_ratio: f64) -> Self {
        Self {
            classes,
            max_reuse_ratio: max_reuse_ratio.max(1.0),
            free: BTreeMap::new(),
            lru: BTreeMap::new(),
            pending: VecDeque::new(),
            pending_keys: BTreeMap::new(),
            tick: 0,
            reusable_bytes: 0,
            pending_bytes: 0,
        }
    }

    /// The size classes in use.
    pub fn classes(&self) -> &SizeClasses {
        &self.classes
    }

    /// Bytes held: reusable plus pending.
    pub fn cached_bytes(&self) -> u64 {
        self.reusable_bytes + self.pending_bytes
    }

    /// Bytes held that the GPU may still be using.
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    /// Number of buffers held (reusable plus pending).
    pub fn len(&self) -> usize {
        self.lru.len() + self.pending.len()
    }

    /// True when the pool holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when some released buffers wait for the GPU.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The keys a request of `size` bytes may be served from: its class up to the reuse cap.
    fn fitting(&self, usage: BufferUsage, size: u64) -> std::ops::RangeInclusive<Key> {
        let class = self.classes.class_of(size);
        let cap = (((class as f64) * self.max_reuse_ratio) as u64).max(class);
        (usage, class)..=(usage, cap)
    }

    /// Takes a reusable buffer for a request of `size` bytes: the exact class, else the
    /// smallest larger class within the reuse cap. Most recently released first.
    pub fn take(&mut self, usage: BufferUsage, size: u64) -> Option<Pooled<T>> {
        let key = self
            .free
            .range(self.fitting(usage, size))
            .find(|(_, list)| !list.is_empty())
            .map(|(k, _)| *k)?;
        let list = self.free.get_mut(&key)?;
        let (tick, buffer) = list.pop_back()?;
        if list.is_empty() {
            self.free.remove(&key);
        }
        self.lru.remove(&tick);
        self.reusable_bytes -= key.1;
        Some(Pooled {
            buffer,
            usage,
            class: key.1,
        })
    }

    /// True when a buffer that the GPU may still be using would fit the request (its class
    /// up to the reuse cap): waiting for the GPU and [`BufferPool::reclaim`] would then let
    /// [`BufferPool::take`] serve it, where a new allocation adds a buffer beside it.
    pub fn pending_fits(&self, usage: BufferUsage, size: u64) -> bool {
        self.pending_keys
            .range(self.fitting(usage, size))
            .next()
            .is_some()
    }

    /// Puts a released buffer in the pool. It is reusable at once when `stamp` (the
    /// submission covering its last use) is at most `completed`, else once
    /// [`BufferPool::reclaim`] sees `stamp` complete.
    pub fn release(
        &mut self,
        buffer: Pooled<T>,
        stamp: SubmissionIndex,
        completed: SubmissionIndex,
    ) {
        let key = (buffer.usage, buffer.class);
        if stamp <= completed {
            self.push_free(key, buffer.buffer);
        } else {
            self.pending_bytes += buffer.class;
            *self.pending_keys.entry(key).or_default() += 1;
            self.pending.push_back((stamp, key, buffer.buffer));
        }
    }

    /// Puts a buffer straight into the reusable set (prewarming, or known idle).
    pub fn insert_reusable(&mut self, buffer: Pooled<T>) {
        self.push_free((buffer.usage, buffer.class), buffer.buffer);
    }

    fn push_free(&mut self, key: Key, buffer: T) {
        self.tick += 1;
        self.lru.insert(self.tick, key);
        self.free
            .entry(key)
            .or_default()
            .push_back((self.tick, buffer));
        self.reusable_bytes += key.1;
    }

    fn forget_pending(&mut self, key: Key) {
        if let Some(n) = self.pending_keys.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.pending_keys.remove(&key);
            }
        }
    }

    /// Moves every pending buffer whose stamp is at most `completed` to the reusable set.
    /// Returns how many moved.
    pub fn reclaim(&mut self, completed: SubmissionIndex) -> usize {
        let mut moved = 0;
        let mut still = VecDeque::with_capacity(self.pending.len());
        while let Some((stamp, key, buffer)) = self.pending.pop_front() {
            if stamp <= completed {
                self.pending_bytes -= key.1;
                self.forget_pending(key);
                self.push_free(key, buffer);
                moved += 1;
            } else {
                still.push_back((stamp, key, buffer));
            }
        }
        self.pending = still;
        moved
    }

    /// Evicts one buffer: the least recently used reusable one, else the oldest pending one.
    pub fn evict_one(&mut self) -> Option<Pooled<T>> {
        if let Some((_, key)) = self.lru.pop_first() {
            let list = self.free.get_mut(&key).expect("lru and free lists agree");
            let (_, buffer) = list.pop_front().expect("lru and free lists agree");
            if list.is_empty() {
                self.free.remove(&key);
            }
            self.reusable_bytes -= key.1;
            return Some(Pooled {
                buffer,
                usage: key.0,
                class: key.1,
            });
        }
        let (_, key, buffer) = self.pending.pop_front()?;
        self.pending_bytes -= key.1;
        self.forget_pending(key);
        Some(Pooled {
            buffer,
            usage: key.0,
            class: key.1,
        })
    }

    /// Evicts in LRU order until at least `bytes` are freed or the pool is empty.
    pub fn evict_bytes(&mut self, bytes: u64) -> Vec<Pooled<T>> {
        let mut out = Vec::new();
        let mut freed = 0;
        while freed < bytes {
            match self.evict_one() {
                Some(p) => {
                    freed += p.class;
                    out.push(p);
                }
                None => break,
            }
        }
        out
    }

    /// Evicts at least `fraction` (0..=1) of the cached bytes, LRU first.
    pub fn evict_fraction(&mut self, fraction: f64) -> Vec<Pooled<T>> {
        let target = (self.cached_bytes() as f64 * fraction.clamp(0.0, 1.0)).ceil() as u64;
        self.evict_bytes(target)
    }

    /// The current LRU tick: buffers released after this point have a larger one.
    pub fn tick(&self) -> u64 {
        self.tick
    }

    /// Evicts every reusable buffer released at or before `tick` and not reused since.
    pub fn evict_released_before(&mut self, tick: u64) -> Vec<Pooled<T>> {
        let mut out = Vec::new();
        while self.lru.first_key_value().is_some_and(|(t, _)| *t <= tick) {
            out.extend(self.evict_one());
        }
        out
    }

    /// Evicts everything, pending buffers included.
    pub fn clear(&mut self) -> Vec<Pooled<T>> {
        self.evict_bytes(u64::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> BufferPool<u32> {
        BufferPool::new(SizeClasses::default(), 1.25)
    }

    fn put(p: &mut BufferPool<u32>, id: u32, size: u64) {
        let class = p.classes().class_of(size);
        p.insert_reusable(Pooled {
            buffer: id,
            usage: BufferUsage::Storage,
            class,
        });
    }

    #[test]
    fn reuses_most_recent_of_the_exact_class_first() {
        let mut p = pool();
        put(&mut p, 1, 1000);
        put(&mut p, 2, 1000);
        assert_eq!(p.take(BufferUsage::Storage, 1000).unwrap().buffer, 2);
        assert_eq!(p.take(BufferUsage::Storage, 990).unwrap().buffer, 1);
        assert!(p.take(BufferUsage::Storage, 1000).is_none());
        assert_eq!(p.cached_bytes(), 0);
    }

    #[test]
    fn reuses_a_larger_class_only_within_the_cap() {
        let mut p = pool();
        put(&mut p, 1, 4096); // class 4096
        assert!(
            p.take(BufferUsage::Storage, 2048).is_none(),
            "4096 is 2x the 2048 class"
        );
        assert_eq!(
            p.take(BufferUsage::Storage, 3500).unwrap().buffer,
            1,
            "3584 class, 4096 within 1.25x"
        );
        put(&mut p, 2, 4096);
        assert!(
            p.take(BufferUsage::Uniform, 4096).is_none(),
            "usages are kept apart"
        );
    }

    #[test]
    fn evicts_least_recently_used_across_classes() {
        let mut p = pool();
        put(&mut p, 1, 1 << 20);
        put(&mut p, 2, 300);
        put(&mut p, 3, 1 << 20);
        assert_eq!(p.evict_one().unwrap().buffer, 1);
        assert_eq!(p.evict_one().unwrap().buffer, 2);
        assert_eq!(p.evict_one().unwrap().buffer, 3);
        assert!(p.evict_one().is_none());
    }

    #[test]
    fn pending_buffers_are_not_reused_before_their_submission_completes() {
        let mut p = pool();
        let class = p.classes().class_of(1000);
        p.release(
            Pooled {
                buffer: 7,
                usage: BufferUsage::Storage,
                class,
            },
            5,
            4,
        );
        assert!(p.take(BufferUsage::Storage, 1000).is_none());
        assert_eq!(p.reclaim(4), 0);
        assert!(p.take(BufferUsage::Storage, 1000).is_none());
        assert_eq!(p.reclaim(5), 1);
        assert_eq!(p.take(BufferUsage::Storage, 1000).unwrap().buffer, 7);
        let class = p.classes().class_of(1000);
        p.release(
            Pooled {
                buffer: 8,
                usage: BufferUsage::Storage,
                class,
            },
            6,
            6,
        );
        assert_eq!(
            p.take(BufferUsage::Storage, 1000).unwrap().buffer,
            8,
            "already complete: reusable at once"
        );
    }

    #[test]
    fn pending_fits_sees_in_flight_buffers_within_the_cap_until_they_leave_pending() {
        let mut p = pool();
        let storage = BufferUsage::Storage;
        let class = p.classes().class_of(4096);
        let pooled = |buffer| Pooled {
            buffer,
            usage: storage,
            class,
        };
        assert!(!p.pending_fits(storage, 4096));
        p.release(pooled(1), 3, 2);
        p.release(pooled(2), 3, 2);
        assert!(p.take(storage, 4096).is_none(), "in flight: not reusable");
        assert!(p.pending_fits(storage, 4096));
        assert!(
            p.pending_fits(storage, 3500),
            "4096 is within 1.25x of the 3584 class"
        );
        assert!(!p.pending_fits(storage, 2048), "4096 is 2x the 2048 class");
        assert!(
            !p.pending_fits(BufferUsage::Uniform, 4096),
            "usages are kept apart"
        );
        assert_eq!(
            p.evict_one().unwrap().buffer,
            1,
            "the oldest pending goes first"
        );
        assert!(p.pending_fits(storage, 4096), "one still pending");
        assert_eq!(p.reclaim(3), 1);
        assert!(
            !p.pending_fits(storage, 4096),
            "reclaimed: reusable, no longer pending"
        );
        assert_eq!(p.take(storage, 4096).unwrap().buffer, 2);
        assert!(p.is_empty());
    }

    #[test]
    fn evict_fraction_frees_at_least_that_share() {
        let mut p = pool();
        for i in 0..10 {
            put(&mut p, i, 4096);
        }
        let evicted = p.evict_fraction(0.5);
        assert_eq!(evicted.len(), 5);
        assert_eq!(
            evicted.iter().map(|e| e.buffer).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(p.cached_bytes(), 5 * 4096);
        assert_eq!(p.clear().len(), 5);
        assert!(p.is_empty());
    }
}
