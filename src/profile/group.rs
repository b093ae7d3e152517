//! Per-group aggregates (by source location, by tag, by scope), kept in both the tracking and
//! the full mode, so the by-source report costs no event log.

use super::event::SourceLocation;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::sync::Arc;

/// A multiply-rotate hasher (the Fx hash of rustc) for the profiler's maps, whose keys are
/// ids, addresses and short tags chosen by the program, not by an adversary: it costs a
/// couple of nanoseconds where the default SipHash costs tens, on every event.
#[derive(Default, Clone, Copy)]
pub(super) struct WordHasher(u64);

impl Hasher for WordHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(tail) ^ rest.len() as u64);
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, word: usize) {
        self.write_u64(word as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` with [`WordHasher`].
pub(super) type WordMap<K, V> = HashMap<K, V, BuildHasherDefault<WordHasher>>;

/// Totals of one group (one source location, tag or scope).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Successful acquisitions.
    pub count: u64,
    /// Of those, served from the pool.
    pub hits: u64,
    /// Of those, newly allocated.
    pub misses: u64,
    /// Bytes acquired in total (size-class bytes, summed over acquisitions).
    pub total_bytes: u64,
    /// Bytes live now.
    pub live_bytes: u64,
    /// Highest `live_bytes` seen.
    pub peak_live_bytes: u64,
}

impl GroupStats {
    pub(super) fn acquired(&mut self, hit: bool, size: u64) {
        self.count += 1;
        if hit {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
        self.total_bytes += size;
        self.live_bytes += size;
        self.peak_live_bytes = self.peak_live_bytes.max(self.live_bytes);
    }

    pub(super) fn freed(&mut self, size: u64) {
        self.live_bytes = self.live_bytes.saturating_sub(size);
    }
}

/// The three groupings, updated together.
#[derive(Default)]
pub(super) struct Groups {
    /// Keyed by the address of the static `Location`: one per call site, hashed as a word.
    pub(super) by_source: WordMap<usize, (SourceLocation, GroupStats)>,
    pub(super) by_tag: WordMap<&'static str, GroupStats>,
    pub(super) by_scope: WordMap<Arc<str>, GroupStats>,
}

fn site_key(location: SourceLocation) -> usize {
    location as *const _ as usize
}

/// The entry for `key`, cloning the key only when it is new (scope paths are `Arc`s, but
/// `HashMap::entry` would take one by value on every call).
fn entry<'m, K: Hash + Eq + Clone>(
    map: &'m mut WordMap<K, GroupStats>,
    key: &K,
) -> &'m mut GroupStats {
    if !map.contains_key(key) {
        map.insert(key.clone(), GroupStats::default());
    }
    map.get_mut(key).expect("inserted above")
}

impl Groups {
    pub(super) fn acquired(
        &mut self,
        hit: bool,
        size: u64,
        tag: &'static str,
        location: Option<SourceLocation>,
        scope: Option<&Arc<str>>,
    ) {
        if let Some(l) = location {
            self.by_source
                .entry(site_key(l))
                .or_insert((l, GroupStats::default()))
                .1
                .acquired(hit, size);
        }
        self.by_tag.entry(tag).or_default().acquired(hit, size);
        if let Some(s) = scope {
            entry(&mut self.by_scope, s).acquired(hit, size);
        }
    }

    pub(super) fn freed(
        &mut self,
        size: u64,
        tag: &'static str,
        location: Option<SourceLocation>,
        scope: Option<&Arc<str>>,
    ) {
        if let Some(l) = location {
            if let Some((_, g)) = self.by_source.get_mut(&site_key(l)) {
                g.freed(size);
            }
        }
        if let Some(g) = self.by_tag.get_mut(tag) {
            g.freed(size);
        }
        if let Some(g) = scope.and_then(|s| self.by_scope.get_mut(s)) {
            g.freed(size);
        }
    }
}
