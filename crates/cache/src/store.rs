//! Storage of responses: the [`Storage`] trait and the in-memory moka store,
//! bounded by bytes (headers plus body) with moka's TinyLFU eviction.
//!
//! One store entry per primary key holds every Vary variant of that URL, so
//! a purge by URL removes them all and a lookup is one hash probe plus a
//! short scan. moka was chosen over a hand-written LRU because its
//! concurrent, sharded design keeps the hit path free of a global lock and
//! its TinyLFU admission resists one-hit-wonder scans.
//!
//! Purges by tag and by prefix go through indexes kept beside the cache
//! (`store_index.rs`: shapes, consistency argument and memory charge), so
//! they cost the responses they remove, not the size of the store. The hit
//! path never touches them: `lookup` is one moka probe.
//!
//! A hard purge marks what it names purged ([`Entry::is_purged`]), which
//! every lookup honours at once, and queues the URLs; [`Storage::maintain`]
//! (about once a second) removes them from moka. Removing in the purge
//! itself made a purge of 1,000 URLs in a store of 1,000,000 take 5 ms
//! typically but 50 ms and more now and then: moka's hash table leaves a
//! tombstone per removal and, once a tenth of a segment's buckets are
//! tombstones, rebuilds the whole segment (rehashing every key in it)
//! inside the removal that crossed the line, and the 64 segments cross it
//! together. The marks make a purge cost one lookup per response it names;
//! the rebuilds are paid by housekeeping, or never when the purged URLs
//! are fetched again first (an insert replaces the slot and drops the
//! purged variants without leaving a tombstone).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};

use http::HeaderMap;
use moka::notification::RemovalCause;
use moka::ops::compute::Op;

use crate::entry::Entry;

#[path = "store_index.rs"]
mod index;

use index::{INDEX_KEY_BYTES, INDEX_TAG_BYTES, Index};

/// Most variants kept for one URL by default (`cache.max-variants`); beyond
/// it the oldest is dropped (a guard against `Vary: User-Agent`, or a
/// client sending thousands of values of a header the origin varies on,
/// exploding one key). See [`MemoryStore::with_max_variants`].
pub const MAX_VARIANTS: usize = 32;

/// The result of looking a request up.
#[derive(Debug)]
pub enum Lookup {
    /// A stored response whose Vary matches the request.
    Found(Arc<Entry>),
    /// Responses are stored for the URL but none matches the request's
    /// Vary-nominated headers (RFC 9211 `fwd=vary-miss`).
    VaryMiss,
    /// Nothing is stored for the URL.
    Miss,
}

/// Which stored responses a purge selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One URL (all its variants), by exact cache key.
    Key(String),
    /// Every key starting with this prefix (`http://host/path/`).
    Prefix(String),
    /// Every response carrying this surrogate key / cache tag.
    Tag(String),
    All,
}

/// Figures for `/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// URLs stored (each may hold several variants).
    pub entries: u64,
    /// Bytes charged: bodies, headers and bookkeeping.
    pub bytes: u64,
    pub capacity: u64,
    /// Stored URLs pushed out to make room (size evictions, including new
    /// responses TinyLFU declined to admit), since start.
    pub evictions: u64,
}

/// A place to keep responses. The hit path calls only `lookup`.
///
/// A response on its way in (a fill) is not in the store: it is an
/// [`crate::Filling`] that readers attach to through the coalescer, and it is
/// offered to [`Storage::insert`] once complete. A disk tier implements this
/// trait the same way; the request flow does not change.
pub trait Storage: Send + Sync + 'static {
    /// The stored response for `req` (the newest matching variant).
    fn lookup(&self, key: &str, req: &HeaderMap) -> Lookup;
    /// The purge generation now: record it when a fetch starts and put it
    /// in the entry ([`Entry::fetched_under`]).
    fn generation(&self) -> u64;
    /// Stores `entry`, produced for a request with headers `req`: it
    /// replaces every stored variant of the URL that `req` would have
    /// selected (RFC 9111 §4.1: the most recent response wins). Refused,
    /// returning false, when a purge since `entry.generation` covers it.
    /// `entry` is one stored response, so give each URL its own: purges
    /// mark the entry itself, and one shared by two URLs is purged (or
    /// marked stale) under both.
    fn insert(&self, key: &str, entry: Arc<Entry>, req: &HeaderMap) -> bool;
    /// Removes one stored variant (the very entry given), leaving the
    /// URL's other variants alone.
    fn remove(&self, key: &str, entry: &Entry);
    /// Removes (hard) or marks stale (soft) what `selector` names; returns
    /// how many stored responses it touched. Effective at once: no lookup
    /// after it returns finds a hard-purged response, though a store may
    /// give the memory back only at its next [`Storage::maintain`].
    fn purge(&self, selector: &Selector, soft: bool) -> usize;
    fn stats(&self) -> StoreStats;
    /// Housekeeping (evictions and expiries that are due, removal of what
    /// purges marked), run about once a second by the node so an idle node
    /// gives back evicted and purged bodies too.
    fn maintain(&self) {}
}

/// Recent purges, so an insert can tell whether one since its fetch began
/// covers it. Bounded: an entry older than the oldest purge remembered is
/// refused (its fetch began before purges we can no longer check).
#[derive(Debug, Default)]
struct PurgeLog {
    generation: u64,
    recent: VecDeque<(u64, Selector)>,
}

/// Purges remembered for in-flight fills; a fill lasting longer than this
/// many purges is simply not stored.
const PURGE_LOG: usize = 4096;

/// Purged URLs waiting for housekeeping to remove them from moka (16 bytes
/// each); a purge that leaves more queued removes them itself, so a purge
/// of a large share of the store cannot park a large list.
const REMOVALS_QUEUED: usize = 65_536;

impl PurgeLog {
    fn record(&mut self, selector: &Selector) {
        self.generation += 1;
        if self.recent.len() == PURGE_LOG {
            self.recent.pop_front();
        }
        self.recent.push_back((self.generation, selector.clone()));
    }

    /// True when a purge after `since` covers `key` / `entry`.
    fn covers(&self, since: u64, key: &str, entry: &Entry) -> bool {
        if since >= self.generation {
            return false;
        }
        match self.recent.front() {
            Some((oldest, _)) if *oldest <= since + 1 => {}
            _ => return true,
        }
        self.recent
            .iter()
            .filter(|(g, _)| *g > since)
            .any(|(_, sel)| sel.selects(key, entry))
    }
}

impl Selector {
    /// Whether this selector names `entry` stored under `key`.
    pub fn selects(&self, key: &str, entry: &Entry) -> bool {
        match self {
            Selector::Key(k) => k == key,
            Selector::Prefix(p) => key.starts_with(p.as_str()),
            Selector::Tag(t) => entry.has_tag(t),
            Selector::All => true,
        }
    }
}

/// Every variant stored for one URL, and the id under which the index
/// knows this very slot (a rewrite of the URL's variants is a new slot).
#[derive(Debug, Clone)]
struct Slot {
    id: u64,
    variants: Variants,
}

/// One variant (the common case) is held directly, so it costs no list
/// allocation.
#[derive(Debug, Clone)]
enum Variants {
    One(Arc<Entry>),
    Many(Arc<[Arc<Entry>]>),
}

impl Variants {
    fn from_list(mut list: Vec<Arc<Entry>>) -> Self {
        match (list.len(), list.pop()) {
            (1, Some(e)) => Variants::One(e),
            (_, Some(e)) => {
                list.push(e);
                Variants::Many(list.into())
            }
            (_, None) => Variants::Many(Arc::new([])),
        }
    }
}

impl Slot {
    fn entries(&self) -> &[Arc<Entry>] {
        match &self.variants {
            Variants::One(e) => std::slice::from_ref(e),
            Variants::Many(list) => list,
        }
    }

    /// Bytes charged for this slot stored under a key of `key_len` bytes:
    /// the variants, moka's copy of the key, and the index's share (its
    /// own copy of the key, its record, and one link per tag).
    fn weight(&self, key_len: usize) -> u32 {
        let key_len = u32::try_from(key_len).unwrap_or(u32::MAX);
        self.entries()
            .iter()
            .map(|e| {
                let tags = u32::try_from(e.tags().len()).unwrap_or(u32::MAX);
                e.weight()
                    .saturating_add(tags.saturating_mul(INDEX_TAG_BYTES))
            })
            .fold(0u32, u32::saturating_add)
            .saturating_add(key_len.saturating_mul(2))
            .saturating_add(INDEX_KEY_BYTES)
    }
}

/// The in-memory store.
pub struct MemoryStore {
    cache: moka::sync::Cache<String, Slot, foldhash::fast::RandomState>,
    /// Tag and prefix indexes, shared with the cache's eviction listener.
    index: Arc<Index>,
    capacity: u64,
    /// Taken by inserts and purges (never by lookups): an insert checks the
    /// log and writes under it, a purge records itself under it before it
    /// removes anything, so no fill that began before a purge can land
    /// after it.
    purges: Mutex<PurgeLog>,
    /// Held shared by every rewrite of a slot from its old value that runs
    /// outside the purge log (a removal, the removal of what purges
    /// marked), and
    /// exclusively by a purge of everything around its invalidation: a
    /// rewrite that read the old slot before the invalidation must not
    /// put part of it back after.
    rewrites: RwLock<()>,
    /// URLs whose slots hold responses a hard purge marked, for
    /// [`MemoryStore::apply_removals`]. At most `removals_max` long
    /// between purges; a URL is queued only by a purge that marked one of
    /// its live responses.
    removals: Mutex<Vec<Arc<str>>>,
    /// [`REMOVALS_QUEUED`] (a field so a test can reach it cheaply).
    removals_max: usize,
    /// Most variants kept for one URL ([`MAX_VARIANTS`] by default).
    max_variants: usize,
}

impl MemoryStore {
    /// A store holding at most `capacity` bytes.
    pub fn new(capacity: u64) -> Self {
        let index = Arc::new(Index::new());
        let listener = Arc::clone(&index);
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(|k: &String, v: &Slot| v.weight(k.len()))
            // Runs for every slot that leaves, under moka's lock of its key
            // (so after the slot is gone and before the key can be written
            // again). It must not call back into the cache.
            .eviction_listener(move |key: Arc<String>, slot: Slot, cause| match cause {
                // Every slot we put was staged first, so the record already
                // names the slot that replaced this one.
                RemovalCause::Replaced => {}
                RemovalCause::Size => {
                    listener.evicted();
                    listener.removed(&key, slot.id);
                }
                RemovalCause::Expired | RemovalCause::Explicit => {
                    listener.removed(&key, slot.id);
                }
            })
            // foldhash (hashbrown's default hasher) with a per-process
            // random seed instead of SipHash: keys come from the network,
            // so the seed keeps them from being aimed at one bucket, and
            // the hashing of a lookup and of moka's rehashing after a
            // large purge costs a fraction of SipHash's.
            .build_with_hasher(foldhash::fast::RandomState::default());
        MemoryStore {
            cache,
            index,
            capacity,
            purges: Mutex::default(),
            rewrites: RwLock::default(),
            removals: Mutex::default(),
            removals_max: REMOVALS_QUEUED,
            max_variants: MAX_VARIANTS,
        }
    }

    /// Keeps at most `max` variants of one URL (at least one): storing
    /// another drops the oldest.
    pub fn with_max_variants(mut self, max: usize) -> Self {
        self.max_variants = max.max(1);
        self
    }

    /// The slot to store under `key` holding `list`, staged in the index.
    /// Called only inside moka's compute for `key`, right before the slot
    /// is put, so the index is never behind the cache.
    fn slot(&self, key: &str, list: Vec<Arc<Entry>>) -> Slot {
        let id = self.index.stage(key, &list);
        Slot {
            id,
            variants: Variants::from_list(list),
        }
    }

    /// Index sizes: keys indexed, and (key, tag) pairs indexed. For tests
    /// that check the indexes stay bounded.
    #[doc(hidden)]
    pub fn index_sizes(&self) -> (usize, usize) {
        self.index.sizes()
    }

    /// Purges what `selector` names among `keys` (the index's candidates;
    /// a key no longer stored, or no longer matching, is skipped): marks
    /// each named response stale (soft) or purged (hard, and its URL is
    /// queued for [`MemoryStore::apply_removals`]). A mark is on the
    /// response itself, so it holds in whichever slot of the URL carries
    /// it: an insert or removal rewriting the slot meanwhile copies the
    /// marked response (and drops it if purged) rather than reviving it.
    fn purge_keys(&self, mut keys: Vec<Arc<str>>, selector: &Selector, soft: bool) -> usize {
        let mut touched = 0;
        keys.retain(|key| {
            let Some(slot) = self.cache.get(&**key) else {
                return false;
            };
            let mut hit = false;
            for e in slot.entries() {
                if !e.is_purged() && selector.selects(key, e) {
                    if soft {
                        e.invalidate();
                    } else {
                        e.purge();
                    }
                    touched += 1;
                    hit = true;
                }
            }
            hit && !soft
        });
        if !keys.is_empty() {
            let mut queue = self.removals_queue();
            queue.append(&mut keys);
            let full = queue.len() > self.removals_max;
            drop(queue);
            if full {
                self.apply_removals();
            }
        }
        touched
    }

    /// Removes from moka what hard purges marked in the queued URLs' slots
    /// (a slot rewritten since has shed them already).
    fn apply_removals(&self) {
        let keys = std::mem::take(&mut *self.removals_queue());
        for key in keys {
            // In moka's compute for the key: serialised with inserts and
            // removals of the same URL, so no variant is lost or revived.
            let _rewrite = self.rewrite();
            self.cache.entry_by_ref(&*key).and_compute_with(|old| {
                let Some(old) = old else {
                    return Op::Nop;
                };
                let old = old.into_value();
                let keep: Vec<Arc<Entry>> = old
                    .entries()
                    .iter()
                    .filter(|e| !e.is_purged())
                    .cloned()
                    .collect();
                if keep.len() == old.entries().len() {
                    Op::Nop
                } else if keep.is_empty() {
                    Op::Remove
                } else {
                    Op::Put(self.slot(&key, keep))
                }
            });
        }
    }

    /// Purges everything. Hard: the cache is invalidated and the indexes
    /// emptied at once. Soft: every stored response is marked stale, which
    /// has to visit them all.
    fn purge_all(&self, mut log: std::sync::MutexGuard<'_, PurgeLog>, soft: bool) -> usize {
        log.record(&Selector::All);
        if soft {
            drop(log);
            let mut touched = 0;
            for (_, slot) in self.cache.iter() {
                for e in slot.entries().iter().filter(|e| !e.is_purged()) {
                    e.invalidate();
                    touched += 1;
                }
            }
            return touched;
        }
        // Responses purged already are gone for the count the index gives
        // below. Under the purge log, so no purge starting later adds any.
        self.apply_removals();
        // Both under the purge log, so no insert lands between them: one
        // landing after the invalidation but before the index is emptied
        // would be stored without its record. And with no rewrite in
        // flight, so none puts back variants it read before.
        let all = self.rewrites.write().unwrap_or_else(|p| p.into_inner());
        self.cache.invalidate_all();
        let (taken, variants) = self.index.take_all();
        drop(all);
        drop(log);
        drop(taken);
        variants
    }
}

impl MemoryStore {
    fn purge_log(&self) -> std::sync::MutexGuard<'_, PurgeLog> {
        self.purges.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// See [`MemoryStore::rewrites`]. Lock order: the purge log, then this
    /// (a purge of everything removes what purges marked before it takes
    /// the exclusive side); nothing holding this takes the purge log.
    fn rewrite(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.rewrites.read().unwrap_or_else(|p| p.into_inner())
    }

    fn removals_queue(&self) -> std::sync::MutexGuard<'_, Vec<Arc<str>>> {
        self.removals.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Storage for MemoryStore {
    fn lookup(&self, key: &str, req: &HeaderMap) -> Lookup {
        let Some(v) = self.cache.get(key) else {
            return Lookup::Miss;
        };
        // Newest first: the most recent matching response wins. Purged
        // responses waiting for housekeeping are not there.
        let mut stored = false;
        for e in v.entries().iter().rev().filter(|e| !e.is_purged()) {
            if e.variant.matches(req) {
                return Lookup::Found(Arc::clone(e));
            }
            stored = true;
        }
        if stored {
            Lookup::VaryMiss
        } else {
            Lookup::Miss
        }
    }

    fn generation(&self) -> u64 {
        self.purge_log().generation
    }

    fn insert(&self, key: &str, entry: Arc<Entry>, req: &HeaderMap) -> bool {
        let log = self.purge_log();
        if log.covers(entry.generation, key, &entry) {
            return false;
        }
        // A key-level lock in moka serialises concurrent inserts of two
        // variants of one URL, so neither is lost.
        self.cache.entry_by_ref(key).and_compute_with(|old| {
            let mut list: Vec<Arc<Entry>> = match old {
                Some(old) => old
                    .into_value()
                    .entries()
                    .iter()
                    .filter(|e| {
                        !e.is_purged() && e.variant != entry.variant && !e.variant.matches(req)
                    })
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            if list.len() >= self.max_variants {
                let excess = list.len() + 1 - self.max_variants;
                list.drain(..excess);
            }
            list.push(entry);
            Op::Put(self.slot(key, list))
        });
        drop(log);
        true
    }

    fn remove(&self, key: &str, entry: &Entry) {
        let _rewrite = self.rewrite();
        self.cache.entry_by_ref(key).and_compute_with(|old| {
            let Some(old) = old else {
                return Op::Nop;
            };
            let old = old.into_value();
            let keep: Vec<Arc<Entry>> = old
                .entries()
                .iter()
                .filter(|e| !e.is_purged() && !std::ptr::eq(Arc::as_ptr(e), entry))
                .cloned()
                .collect();
            if keep.len() == old.entries().len() {
                Op::Nop
            } else if keep.is_empty() {
                Op::Remove
            } else {
                Op::Put(self.slot(key, keep))
            }
        });
    }

    fn purge(&self, selector: &Selector, soft: bool) -> usize {
        let mut log = self.purge_log();
        if *selector == Selector::All {
            return self.purge_all(log, soft);
        }
        // Recorded first: a fill that began before this point can no
        // longer insert anything this purge covers. Every insert before it
        // has finished (inserts hold the log), so the indexes already name
        // every stored response this purge must reach.
        log.record(selector);
        drop(log);
        // One definition of what a selector names, shared with the purge
        // log that keeps older fills out; the indexes only narrow the keys
        // to look at.
        match selector {
            Selector::Key(k) => self.purge_keys(vec![Arc::from(k.as_str())], selector, soft),
            Selector::Prefix(p) => self.purge_keys(self.index.prefixed(p), selector, soft),
            Selector::Tag(t) => self.purge_keys(self.index.tagged(t), selector, soft),
            Selector::All => 0,
        }
    }

    fn maintain(&self) {
        self.apply_removals();
        self.cache.run_pending_tasks();
    }

    /// Exact figures: housekeeping runs first, so purged responses no
    /// longer count.
    fn stats(&self) -> StoreStats {
        self.maintain();
        StoreStats {
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
            capacity: self.capacity,
            evictions: self.index.evictions(),
        }
    }
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
