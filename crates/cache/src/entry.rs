//! One stored response.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use http::header::HeaderName;
use http::{HeaderMap, StatusCode};

use crate::CacheControl;
use crate::fields::Fields;
use crate::policy::{Freshness, Reuse};
use crate::vary::Variant;

/// Surrogate keys for tag purges: Fastly's `Surrogate-Key` (space separated)
/// and Cloudflare's `Cache-Tag` (comma separated).
pub static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
pub static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");

/// What one stored response costs beyond its body, header bytes and key,
/// as measured (docs/benchmarks.md, "Memory"): moka's own node, deque
/// entries, `Arc`s and hash slot (485 bytes, measured alone), the
/// `Arc<Entry>` itself (~250) and malloc's rounding. Charging what an entry
/// really costs keeps resident memory tracking `cache.size`; an estimate
/// that is too low lets small objects overfill memory by a third.
pub const ENTRY_OVERHEAD: usize = 750;

/// A stored response: status, headers as received (hop-by-hop removed) in
/// compact form, the whole body as shared `Bytes` (a hit clones the handle,
/// never the bytes), and what the policy computed about it.
#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    pub headers: Fields,
    pub body: Bytes,
    pub freshness: Freshness,
    pub variant: Variant,
    /// The store's purge generation when this response was fetched: an
    /// entry fetched before a purge that covers it is never inserted
    /// after that purge ([`crate::Storage::insert`]).
    pub generation: u64,
    tags: Box<[Box<str>]>,
    /// Soft purge: kept, but treated as stale (revalidated before use).
    invalidated: AtomicBool,
    /// Hard purge: never served again; the store drops it at its next
    /// housekeeping ([`crate::Storage::maintain`]).
    purged: AtomicBool,
    weight: u32,
}

impl Entry {
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        freshness: Freshness,
        variant: Variant,
    ) -> Self {
        let tags = tags_of(&headers);
        let headers = Fields::from_map(&headers);
        let weight = ENTRY_OVERHEAD
            + body.len()
            + variant.weight()
            + headers.weight()
            + tags.iter().map(|t| t.len() + 16).sum::<usize>();
        Entry {
            status,
            headers,
            body,
            freshness,
            variant,
            generation: 0,
            tags,
            invalidated: AtomicBool::new(false),
            purged: AtomicBool::new(false),
            weight: u32::try_from(weight).unwrap_or(u32::MAX),
        }
    }

    /// The same entry, marked as fetched under purge `generation`.
    pub fn fetched_under(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// Bytes this entry is charged in the store.
    pub fn weight(&self) -> u32 {
        self.weight
    }

    pub fn tags(&self) -> &[Box<str>] {
        &self.tags
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| &**t == tag)
    }

    /// Marks the entry stale without removing it (soft purge).
    pub fn invalidate(&self) {
        self.invalidated.store(true, Ordering::Relaxed);
    }

    pub fn is_invalidated(&self) -> bool {
        self.invalidated.load(Ordering::Relaxed)
    }

    /// Marks the entry gone (hard purge): the store's lookups skip it from
    /// now on, and its housekeeping removes it. Relaxed is enough: the flag
    /// publishes nothing else, and a lookup that happens after the purge
    /// (the only one the purge promises anything to) sees the store.
    pub(crate) fn purge(&self) {
        self.purged.store(true, Ordering::Relaxed);
    }

    /// Hard-purged: no longer served, waiting to be removed from the store.
    pub fn is_purged(&self) -> bool {
        self.purged.load(Ordering::Relaxed)
    }

    /// May this copy be served when the upstream fails (RFC 5861 §4 and
    /// the operator's grace)? A soft-purged copy counts as stale since its
    /// purge, so it needs an allowance (`stale-if-error` or the grace) even
    /// while its freshness lifetime runs, as with Fastly's soft purge.
    pub fn usable_on_error(&self, now: SystemTime, grace: std::time::Duration) -> bool {
        if self.is_invalidated() && self.freshness.stale_if_error.max(grace).is_zero() {
            return false;
        }
        self.freshness.usable_on_error(now, grace)
    }

    pub fn reuse(&self, now: SystemTime, req: &CacheControl) -> Reuse {
        self.freshness.reuse(now, req, self.is_invalidated())
    }
}

fn tags_of(headers: &HeaderMap) -> Box<[Box<str>]> {
    let mut tags: Vec<Box<str>> = Vec::new();
    for (name, sep) in [(&SURROGATE_KEY, ' '), (&CACHE_TAG, ',')] {
        for v in headers.get_all(name) {
            if let Ok(s) = v.to_str() {
                for t in s.split(sep).map(str::trim).filter(|t| !t.is_empty()) {
                    if !tags.iter().any(|x| &**x == t) {
                        tags.push(t.into());
                    }
                }
            }
        }
    }
    tags.into_boxed_slice()
}
