//! The purge indexes of the memory store: which stored URLs carry a tag,
//! and the URLs in order so a prefix is a range scan.
//!
//! **Shape.** The index is split into [`SHARDS`] shards by a hash of the
//! whole key, each behind its own mutex. A shard holds every key it owns in
//! an ordered map (key → [`Record`]) and a tag map (tag → keys of this shard
//! that hold at least one variant with the tag). A tag purge asks every
//! shard for its set (one lock and one hash probe each); a prefix purge
//! range-scans every shard's ordered map from the prefix and stops at the
//! first key that does not start with it. Both cost the matches plus a
//! constant per shard, never the store. Sharding by key rather than by host
//! keeps the common single-host node from funnelling every insert through
//! one lock; the price, a prefix purge visiting all shards, is 32 short
//! range scans.
//!
//! **Consistency.** Each stored slot has an id. An insert (or any rewrite
//! of a slot) *stages* the new slot's id and tags here before handing it to
//! moka, inside moka's per-key compute, so the index is never behind what is
//! stored. moka's eviction listener reports every slot that leaves (size,
//! expiry, explicit removal; a replaced slot needs nothing, its successor
//! was staged) while it holds that key's lock; the record is dropped only
//! when its id is the departing slot's, so a listener racing a fresh
//! insert of the same key leaves the newer record alone. The listener never calls back into
//! moka, and no shard lock is held while calling moka, so the two lock
//! orders cannot cross. What remains possible is a short-lived *extra*
//! record (staged before moka stores the slot, or kept until the listener
//! for a removed slot runs); a purge of such a key finds nothing and does
//! no harm. A *missing* record, which would let a purge skip a stored
//! response, cannot happen: a record leaves only with its own slot.
//!
//! **Memory.** Per key the index holds one shared `Arc<str>` of the key, one
//! ordered-map element (key pointer, id, tag list) and, per tag, a pointer
//! in the record and one set slot; the store charges it as
//! [`INDEX_KEY_BYTES`] plus the key's length, and [`INDEX_TAG_BYTES`] per
//! tag, so the byte bound of the cache covers its indexes too.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::entry::Entry;

/// Shards of the index: enough that inserts on two cores rarely meet on
/// one lock, few enough that visiting all of them for a purge is cheap.
pub(super) const SHARDS: usize = 32;

/// Index bytes charged per stored URL beyond the key's length: the key's
/// `Arc` allocation, its ordered-map element (pointer, id, tag list) and
/// the tag list's own allocation. Measured with a counting allocator over
/// 100,000 keys: 115 bytes requested per key beyond its length, plus
/// malloc's rounding of two allocations.
pub(super) const INDEX_KEY_BYTES: u32 = 136;

/// Index bytes charged per tag of a stored response: a pointer in the
/// record and a slot in the tag's key set (measured: 38 bytes requested
/// per tag and key, the sets between half and 7/8 full).
pub(super) const INDEX_TAG_BYTES: u32 = 48;

/// What the index knows of one stored URL.
#[derive(Debug)]
struct Record {
    /// The id of the slot this record describes.
    id: u64,
    /// Variants in that slot (for the count a purge of everything reports).
    variants: u32,
    /// Distinct tags over the slot's variants, sorted.
    tags: Box<[Arc<str>]>,
}

#[derive(Debug, Default)]
pub(super) struct Shard {
    keys: BTreeMap<Arc<str>, Record>,
    tags: HashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Sum of `Record::variants`.
    variants: usize,
}

/// The tag and prefix indexes, plus the eviction counter the store's
/// eviction listener keeps.
#[derive(Debug)]
pub(super) struct Index {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    next_id: AtomicU64,
    evictions: AtomicU64,
}

impl Index {
    pub(super) fn new() -> Self {
        Index {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            next_id: AtomicU64::new(1),
            evictions: AtomicU64::new(0),
        }
    }

    fn shard_of(&self, key: &str) -> MutexGuard<'_, Shard> {
        // The remainder is below SHARDS, so the cast cannot truncate.
        let i = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        lock(&self.shards[i])
    }

    /// Records that the slot about to be stored under `key` holds
    /// `variants`, and returns the slot's new id. Called before the slot
    /// reaches moka, inside moka's compute for `key`.
    pub(super) fn stage(&self, key: &str, variants: &[Arc<Entry>]) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // Sorted and deduplicated, so a response with many tags costs
        // T log T here rather than T squared.
        let mut wanted: Vec<&str> = variants
            .iter()
            .flat_map(|e| e.tags())
            .map(|t| &**t)
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let count = u32::try_from(variants.len()).unwrap_or(u32::MAX);
        let mut guard = self.shard_of(key);
        let shard = &mut *guard;
        // A URL stored again with the same tags (the usual refresh) is one
        // walk of the tree.
        if let Some(rec) = shard.keys.get_mut(key) {
            let same = rec.tags.len() == wanted.len()
                && rec.tags.iter().zip(&wanted).all(|(t, w)| **t == **w);
            if same {
                shard.variants = shard
                    .variants
                    .saturating_sub(rec.variants as usize)
                    .saturating_add(count as usize);
                rec.id = id;
                rec.variants = count;
                return id;
            }
        }
        let (key, old) = match shard.keys.remove_entry(key) {
            Some((k, r)) => (k, Some(r)),
            None => (Arc::from(key), None),
        };
        let mut tags = Vec::with_capacity(wanted.len());
        for t in &wanted {
            let held = old.as_ref().and_then(|r| {
                r.tags
                    .binary_search_by(|x| (**x).cmp(*t))
                    .ok()
                    .and_then(|i| r.tags.get(i))
            });
            tags.push(match held {
                Some(t) => Arc::clone(t),
                None => link(&mut shard.tags, t, &key),
            });
        }
        if let Some(old) = old {
            shard.variants = shard.variants.saturating_sub(old.variants as usize);
            for t in old.tags.iter() {
                if wanted.binary_search(&&**t).is_err() {
                    unlink(&mut shard.tags, t, &key);
                }
            }
        }
        shard.variants = shard.variants.saturating_add(count as usize);
        shard.keys.insert(
            key,
            Record {
                id,
                variants: count,
                tags: tags.into_boxed_slice(),
            },
        );
        id
    }

    /// The slot `id` left the store (moka's eviction listener): forgets
    /// `key` unless a newer slot has been staged for it since.
    pub(super) fn removed(&self, key: &str, id: u64) {
        let mut guard = self.shard_of(key);
        let shard = &mut *guard;
        // One walk of the tree in the common case; a newer record (a fresh
        // insert raced this listener) goes straight back.
        let Some((key, record)) = shard.keys.remove_entry(key) else {
            return;
        };
        if record.id != id {
            shard.keys.insert(key, record);
            return;
        }
        shard.variants = shard.variants.saturating_sub(record.variants as usize);
        for t in record.tags.iter() {
            unlink(&mut shard.tags, t, &key);
        }
    }

    /// Counts a slot pushed out to make room.
    pub(super) fn evicted(&self) {
        self.evictions.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Keys holding at least one variant tagged `tag`.
    pub(super) fn tagged(&self, tag: &str) -> Vec<Arc<str>> {
        let mut keys = Vec::new();
        for shard in self.shards.iter() {
            if let Some(set) = lock(shard).tags.get(tag) {
                keys.extend(set.iter().cloned());
            }
        }
        keys
    }

    /// Keys starting with `prefix`.
    pub(super) fn prefixed(&self, prefix: &str) -> Vec<Arc<str>> {
        let mut keys = Vec::new();
        for shard in self.shards.iter() {
            let shard = lock(shard);
            let from = (Bound::Included(prefix), Bound::Unbounded);
            keys.extend(
                shard
                    .keys
                    .range::<str, _>(from)
                    .map(|(k, _)| k)
                    .take_while(|k| k.starts_with(prefix))
                    .cloned(),
            );
        }
        keys
    }

    /// Empties the index (a purge of everything), returning what it held
    /// so the caller can free it outside its locks, and the number of
    /// variants it described.
    pub(super) fn take_all(&self) -> (Vec<Shard>, usize) {
        let taken: Vec<Shard> = self
            .shards
            .iter()
            .map(|s| std::mem::take(&mut *lock(s)))
            .collect();
        let variants = taken.iter().map(|s| s.variants).sum();
        (taken, variants)
    }

    /// Keys indexed and (key, tag) pairs indexed.
    pub(super) fn sizes(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(k, t), s| {
            let s = lock(s);
            (
                k + s.keys.len(),
                t + s.tags.values().map(HashSet::len).sum::<usize>(),
            )
        })
    }
}

/// A shard's lock. Nothing panics while holding one, but a poisoned lock
/// would still hold a consistent shard, so it is used as is.
fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|p| p.into_inner())
}

/// Adds `key` to `tag`'s set, returning the tag's shared name.
fn link(tags: &mut HashMap<Arc<str>, HashSet<Arc<str>>>, tag: &str, key: &Arc<str>) -> Arc<str> {
    let name = match tags.get_key_value(tag) {
        Some((name, _)) => Arc::clone(name),
        None => Arc::from(tag),
    };
    tags.entry(Arc::clone(&name))
        .or_default()
        .insert(Arc::clone(key));
    name
}

/// Removes `key` from `tag`'s set; an emptied set goes, and one far below
/// its peak gives memory back, so churn cannot leave the index at its
/// high-water mark.
fn unlink(tags: &mut HashMap<Arc<str>, HashSet<Arc<str>>>, tag: &str, key: &str) {
    let Some(set) = tags.get_mut(tag) else {
        return;
    };
    set.remove(key);
    if set.is_empty() {
        tags.remove(tag);
        if tags.capacity() > 64 && tags.len() * 4 < tags.capacity() {
            tags.shrink_to_fit();
        }
    } else if set.capacity() > 64 && set.len() * 4 < set.capacity() {
        set.shrink_to_fit();
    }
}
