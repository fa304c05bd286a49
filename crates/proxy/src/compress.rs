//! Compression at the edge, stored once per encoding (issue 12, item 5).
//!
//! ```text
//! entry: coding = negotiate(Accept-Encoding)  (identity for Range, no-transform)
//!        Accept-Encoding := coding            (lookups, variants, upstream see one token)
//!   │
//!   ├─ identity ─────────────────────────────► the usual cache path
//!   └─ br / zstd / gzip
//!        lookup(coding) ── fresh ────────────► hit: stored encoded bytes, no CPU
//!        lookup(identity) ┬─ fresh, encodable ─► encode once (blocking pool,
//!                         │                      collapsed per URL+coding),
//!                         │                      store as its own variant, serve
//!                         ├─ other ───────────► the usual path for identity
//!                         └─ none ────────────► the usual path (fill with coding)
//! ```
//!
//! A fill whose response may be encoded is stored as the identity variant
//! (with `Vary: Accept-Encoding`), whatever coding its request negotiated,
//! and streams identity to its readers (read-while-write is kept); the
//! encoded forms are made from it by the first request for each coding.
//! Encoded variants share the URL's store slot, so a purge of the URL (or
//! of a tag, which they carry too) removes them with it, and they are
//! charged to the store like any response, and to the fill budget while
//! being made. A response the origin encoded is stored and served as it
//! came (under the coding it was asked for) and never encoded again.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, Method};
use meridian_cache::encoding::{self, Coding};
use meridian_cache::{
    CacheControl, CacheStatus, Coalescer, Entry, Join, Lookup, Outcome, Reuse, Variant,
};
use meridian_common::{ByteSize, ConfigError};
use serde::Deserialize;

use crate::engine::{Engine, Req};
use crate::outcome::{Served, bump};
use crate::respond;

/// `compression.types` default: text, scripts, data and the font formats
/// that are not compressed already (woff and woff2 are).
pub const DEFAULT_TYPES: &[&str] = &[
    "text/*",
    "application/javascript",
    "application/x-javascript",
    "application/json",
    "application/xml",
    "*/*+json",
    "*/*+xml",
    "image/svg+xml",
    "application/wasm",
    "font/ttf",
    "font/otf",
    "application/vnd.ms-fontobject",
];

/// `compression.min-size` default, as Cloudflare's and a common nginx
/// `gzip_min_length`: below it the saving is lost in headers and framing.
pub const DEFAULT_MIN_SIZE: u64 = 1024;

/// Default levels. Each object is encoded once and served many times, but
/// the first request for a coding waits for it: brotli 5 and zstd 3 are
/// the points past which time grows much faster than the ratio improves
/// (brotli 11 is ~50 times slower than 5 for a few percent), gzip 6 is
/// zlib's and nginx's own default.
pub const DEFAULT_BROTLI_LEVEL: u32 = 5;
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;
pub const DEFAULT_GZIP_LEVEL: u32 = 6;

/// `[compression]` as written. Default on for edges; the shield turns it
/// off unless its file says otherwise (its clients are edges, which
/// encode for their own clients).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct CompressionSection {
    /// Encode compressible responses for clients that accept it (default
    /// true on an edge, false on a shield).
    pub enabled: Option<bool>,
    /// Codings offered, any of "br", "zstd", "gzip" (default all three).
    /// Among equal q-values the order is always br > zstd > gzip.
    pub encodings: Option<Vec<String>>,
    /// Smallest body encoded (default "1KiB").
    pub min_size: Option<ByteSize>,
    /// Media types encoded: exact, `type/*` or `*/*+suffix` (default
    /// [`DEFAULT_TYPES`]).
    pub types: Option<Vec<String>>,
    /// Brotli quality, 0 to 11 (default 5).
    pub brotli_level: Option<u32>,
    /// Zstandard level, 1 to 19 (default 3).
    pub zstd_level: Option<i32>,
    /// Gzip level, 1 to 9 (default 6).
    pub gzip_level: Option<u32>,
}

/// The validated `[compression]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Compression {
    pub offered: Vec<Coding>,
    pub min_size: u64,
    pub types: Vec<String>,
    pub brotli_level: u32,
    pub zstd_level: i32,
    pub gzip_level: u32,
}

impl CompressionSection {
    /// `None` when compression is off.
    pub fn validate(&self, source: &str) -> Result<Option<Compression>, ConfigError> {
        let bad = |key: &str, reason: String| {
            ConfigError::invalid(source, format!("compression.{key}"), reason)
        };
        if !self.enabled.unwrap_or(true) {
            return Ok(None);
        }
        let offered = match &self.encodings {
            None => Coding::PREFERENCE.to_vec(),
            Some(list) => {
                let mut out = Vec::new();
                for name in list {
                    match Coding::parse(name) {
                        Some(Coding::Identity) | None => {
                            return Err(bad(
                                "encodings",
                                format!("`{name}` is not one of \"br\", \"zstd\", \"gzip\""),
                            ));
                        }
                        Some(c) if !out.contains(&c) => out.push(c),
                        Some(_) => {}
                    }
                }
                out
            }
        };
        let types = match &self.types {
            None => DEFAULT_TYPES.iter().map(|t| (*t).to_owned()).collect(),
            Some(list) => {
                for t in list {
                    if t.split_once('/')
                        .is_none_or(|(a, b)| a.is_empty() || b.is_empty())
                    {
                        return Err(bad("types", format!("`{t}` is not a media type")));
                    }
                }
                list.clone()
            }
        };
        let level = |key: &str, v: i64, range: std::ops::RangeInclusive<i64>| {
            if range.contains(&v) {
                Ok(())
            } else {
                Err(bad(
                    key,
                    format!("{v} is not between {} and {}", range.start(), range.end()),
                ))
            }
        };
        let brotli_level = self.brotli_level.unwrap_or(DEFAULT_BROTLI_LEVEL);
        level("brotli-level", i64::from(brotli_level), 0..=11)?;
        let zstd_level = self.zstd_level.unwrap_or(DEFAULT_ZSTD_LEVEL);
        level("zstd-level", i64::from(zstd_level), 1..=19)?;
        let gzip_level = self.gzip_level.unwrap_or(DEFAULT_GZIP_LEVEL);
        level("gzip-level", i64::from(gzip_level), 1..=9)?;
        Ok(Some(Compression {
            offered,
            min_size: self.min_size.map_or(DEFAULT_MIN_SIZE, ByteSize::bytes),
            types,
            brotli_level,
            zstd_level,
            gzip_level,
        }))
    }
}

/// The engine's compression state: the settings, and the encodings being
/// made (one per URL and coding; later requests wait for it).
pub struct Compressor {
    config: Compression,
    making: Coalescer,
}

impl Compressor {
    pub fn new(config: Compression) -> Self {
        Compressor {
            config,
            making: Coalescer::new(),
        }
    }

    /// The coding a request is served in: identity for a Range (ranges
    /// are served from the identity form) and for a request's own
    /// `no-transform` (RFC 9111 §5.2.1.6).
    fn coding_for(&self, req: &HeaderMap, cc: &CacheControl) -> Coding {
        if cc.no_transform || req.contains_key(header::RANGE) {
            return Coding::Identity;
        }
        encoding::negotiate(req, &self.config.offered)
    }

    /// A stored identity response this node may encode.
    fn encodable(&self, e: &Entry) -> bool {
        e.body.len() as u64 >= self.config.min_size
            && encoding::encodable(e.status, &e.headers.to_map(0), &self.config.types)
    }
}

/// What the lookup with compression found: a lookup result for the usual
/// path, or a fresh identity form to encode for this request.
pub(crate) enum Looked {
    Lookup(Lookup),
    /// The first request of a coding: encode `identity` now and serve it
    /// ([`Engine::serve_encoded`]), or, when that fails, the identity form.
    Encode(Arc<Entry>, Coding),
}

/// Fields describing the identity bytes, wrong for an encoded form.
static DIGESTS: [HeaderName; 4] = [
    HeaderName::from_static("content-md5"),
    HeaderName::from_static("digest"),
    HeaderName::from_static("content-digest"),
    HeaderName::from_static("repr-digest"),
];

impl Engine {
    /// The cache lookup of a GET or HEAD. Without compression, the store's
    /// lookup. With it, `req`'s `Accept-Encoding` becomes the negotiated
    /// coding (so every spelling of one preference shares a variant, and
    /// the upstream is asked for that coding), and an encoded request is
    /// served from its stored encoded variant, or encoded from the stored
    /// identity form ([`Looked::Encode`]). An encoded hit costs what an
    /// identity hit does: one negotiation and one lookup. Synchronous, so
    /// the hit path's future holds no encoder's state.
    pub(crate) fn lookup_encoded(
        &self,
        req: &mut Req,
        cc: &CacheControl,
        now: SystemTime,
    ) -> Looked {
        let Some(cz) = &self.compression else {
            return Looked::Lookup(self.store.lookup(&req.key, &req.parts.headers));
        };
        let coding = cz.coding_for(&req.parts.headers, cc);
        encoding::set_accept(&mut req.parts.headers, coding);
        let first = self.store.lookup(&req.key, &req.parts.headers);
        if coding == Coding::Identity {
            return Looked::Lookup(first);
        }
        if let Lookup::Found(e) = &first
            && self.fresh_here(e, cc, now)
        {
            return Looked::Lookup(first);
        }
        encoding::set_accept(&mut req.parts.headers, Coding::Identity);
        let Lookup::Found(identity) = self.store.lookup(&req.key, &req.parts.headers) else {
            // No identity form: the usual path, asking for the coding. An
            // encoded form made here is not revalidated upstream (its tag
            // is this node's): it is fetched afresh.
            encoding::set_accept(&mut req.parts.headers, coding);
            return match first {
                Lookup::Found(e) if made_here(&e) => Looked::Lookup(Lookup::VaryMiss),
                other => Looked::Lookup(other),
            };
        };
        if req.parts.method == Method::GET
            && self.fresh_here(&identity, cc, now)
            && cz.encodable(&identity)
        {
            return Looked::Encode(identity, coding);
        }
        // Stale, not encodable, or a HEAD (which never starts an
        // encoding): the identity form, through the usual path.
        Looked::Lookup(Lookup::Found(identity))
    }

    /// [`Looked::Encode`]: `identity` encoded in `coding` (made now, or by
    /// the request already making it) and served as a hit; `None` when it
    /// cannot be made (then the identity form is served).
    pub(crate) async fn serve_encoded(
        self: &Arc<Self>,
        req: &Req,
        identity: &Arc<Entry>,
        coding: Coding,
        now: SystemTime,
    ) -> Option<Served> {
        let enc = self.encode(req, identity, coding).await?;
        let mut cs = CacheStatus::hit(enc.freshness.ttl(now));
        let r = respond::from_entry(
            &self.stamp,
            &req.parts.method,
            &req.parts.headers,
            &enc,
            &mut cs,
            now,
        );
        Some((r, cs))
    }

    /// Servable as it is: fresh for this request, and not fetched before
    /// a purge-log lag the node must revalidate across.
    fn fresh_here(&self, e: &Entry, cc: &CacheControl, now: SystemTime) -> bool {
        e.reuse(now, cc) == Reuse::Fresh
            && self
                .sync
                .revalidate_before(now)
                .is_none_or(|t| e.freshness.response_time >= t)
    }

    /// The variant a fill is stored as. With compression, a response this
    /// node may encode is the identity variant (`Vary: Accept-Encoding`
    /// added), whatever coding the request negotiated; one the upstream
    /// encoded gets `Vary: Accept-Encoding` too, since it answered the
    /// coding this node asked for.
    pub(crate) fn fill_variant(
        &self,
        resp: &mut HeaderMap,
        req: &HeaderMap,
        status: http::StatusCode,
        declared: Option<u64>,
    ) -> Variant {
        let Some(cz) = &self.compression else {
            return Variant::new(resp, req);
        };
        if encoding::is_encoded(resp) {
            encoding::add_vary(resp);
            return Variant::new(resp, req);
        }
        if encoding::encodable(status, resp, &cz.config.types)
            && declared.is_none_or(|n| n >= cz.config.min_size)
        {
            encoding::add_vary(resp);
            let mut identity = req.clone();
            encoding::set_accept(&mut identity, Coding::Identity);
            return Variant::new(resp, &identity);
        }
        Variant::new(resp, req)
    }

    /// Whether a collapsed request may read a fill or stored response of
    /// `variant`: its own, or (with compression) the identity form, which
    /// every client can take.
    pub(crate) fn variant_serves(&self, variant: &Variant, req: &HeaderMap) -> bool {
        if variant.matches(req) {
            return true;
        }
        if self.compression.is_none() {
            return false;
        }
        let mut identity = req.clone();
        encoding::set_accept(&mut identity, Coding::Identity);
        variant.matches(&identity)
    }

    /// The `coding` form of the stored `identity` response: made once per
    /// URL and coding on the blocking pool (concurrent requests wait for
    /// that one), charged to the fill budget while it is made, and stored
    /// as its own variant with the identity form's freshness and purge
    /// generation. `None` (serve identity) when the budget is short, the
    /// encoder fails, or the wait is too long.
    async fn encode(
        self: &Arc<Self>,
        req: &Req,
        identity: &Arc<Entry>,
        coding: Coding,
    ) -> Option<Arc<Entry>> {
        let cz = self.compression.as_ref()?;
        let making_key = format!("{}\n{}", req.key, coding.token());
        let leader = match cz.making.join(&making_key) {
            Join::Follower(f) => {
                return match f.wait(self.collapse_wait).await {
                    Some(Outcome::Stored(e)) => Some(e),
                    _ => None,
                };
            }
            Join::Leader(l) => l,
        };
        let mut req_headers = req.parts.headers.clone();
        encoding::set_accept(&mut req_headers, coding);
        let engine = Arc::clone(self);
        let identity = Arc::clone(identity);
        let key = req.key.clone();
        // A task of its own: the encoding is finished and stored even if
        // this client goes away meanwhile.
        let task = tokio::spawn(async move {
            let entry = engine.make_encoded(&identity, coding, &req_headers).await?;
            if engine.store.insert(&key, Arc::clone(&entry), &req_headers) {
                bump(&engine.stats.stored);
                leader.finish(Outcome::Stored(Arc::clone(&entry)));
            } else {
                // Refused: a purge since the identity form was fetched
                // covers it, or that was longer ago than the store can
                // check. Either way the identity form goes too, so the
                // next request fetches afresh instead of encoding again.
                engine.store.remove(&key, &identity);
            }
            Some(entry)
        });
        task.await.ok().flatten()
    }

    /// Encodes `identity`'s body under its share of the fill budget.
    async fn make_encoded(
        &self,
        identity: &Entry,
        coding: Coding,
        req_headers: &HeaderMap,
    ) -> Option<Arc<Entry>> {
        let cz = self.compression.as_ref()?;
        let len = identity.body.len() as u64;
        // Encoders add at most a few bytes per block over the input.
        let reserve = len + len / 8 + 4096;
        if !self.fill_budget.try_reserve(reserve) {
            return None;
        }
        let body = identity.body.clone();
        let levels = cz.config.clone();
        let out = tokio::task::spawn_blocking(move || encode_body(&body, coding, &levels)).await;
        self.fill_budget.release(reserve);
        let out = match out {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, coding = coding.token(), "encoding failed");
                return None;
            }
            Err(_) => return None,
        };
        self.metrics
            .encoded(coding.token(), identity.body.len(), out.len());
        let headers = encoded_headers(&identity.headers.to_map(0), coding, out.len());
        let variant = Variant::new(&headers, req_headers);
        let body = match self.fill_budget.mapping().join([&out[..]], out.len()) {
            Some(mapped) => mapped,
            None => Bytes::from(out),
        };
        Some(Arc::new(
            Entry::new(
                identity.status,
                headers,
                body,
                identity.freshness.clone(),
                variant,
            )
            .fetched_under(identity.generation),
        ))
    }
}

/// An encoded form this node made (its tag is the one [`encoded_headers`]
/// gives), as opposed to one the upstream encoded.
fn made_here(e: &Entry) -> bool {
    let Some(coding) = e
        .headers
        .get(&header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok().and_then(Coding::parse))
    else {
        return false;
    };
    e.headers.get(&header::ETAG).is_some_and(|t| {
        let t = t.as_bytes();
        t.starts_with(b"W/\"")
            && t.strip_suffix(b"\"")
                .and_then(|t| t.strip_suffix(coding.etag_suffix().as_bytes()))
                .is_some_and(|t| t.ends_with(b"-"))
    })
}

/// The stored headers of an encoded form: the identity form's with
/// `Content-Encoding`, the encoded length, a weak coding-specific ETag,
/// `Vary: Accept-Encoding`, and no `Accept-Ranges` (ranges are served from
/// the identity form) nor digests of the identity bytes.
fn encoded_headers(identity: &HeaderMap, coding: Coding, len: usize) -> HeaderMap {
    let mut h = identity.clone();
    h.insert(header::CONTENT_ENCODING, coding.header_value());
    h.insert(header::CONTENT_LENGTH, http::HeaderValue::from(len));
    match h
        .get(header::ETAG)
        .and_then(|t| encoding::encoded_etag(t.as_bytes(), coding))
    {
        Some(tag) => {
            h.insert(header::ETAG, tag);
        }
        None => {
            h.remove(header::ETAG);
        }
    }
    h.remove(header::ACCEPT_RANGES);
    for d in &DIGESTS {
        h.remove(d);
    }
    encoding::add_vary(&mut h);
    h
}

/// Encodes `body` in `coding` at the configured level.
pub fn encode_body(body: &[u8], coding: Coding, c: &Compression) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut out = Vec::with_capacity(body.len() / 3 + 64);
    match coding {
        Coding::Br => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: i32::try_from(c.brotli_level).unwrap_or(5),
                lgwin: 22,
                size_hint: body.len(),
                ..Default::default()
            };
            brotli::BrotliCompress(&mut &body[..], &mut out, &params)?;
        }
        Coding::Zstd => {
            out = zstd::bulk::compress(body, c.zstd_level)?;
        }
        Coding::Gzip => {
            let mut e = flate2::write::GzEncoder::new(out, flate2::Compression::new(c.gzip_level));
            e.write_all(body)?;
            out = e.finish()?;
        }
        Coding::Identity => out.extend_from_slice(body),
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn defaults() -> Compression {
        CompressionSection::default()
            .validate("t.toml")
            .expect("valid")
            .expect("on by default")
    }

    #[test]
    fn every_coding_round_trips() {
        let c = defaults();
        let body: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let br = encode_body(&body, Coding::Br, &c).expect("br");
        let mut back = Vec::new();
        brotli::Decompressor::new(&br[..], 4096)
            .read_to_end(&mut back)
            .expect("br decodes");
        assert_eq!(back, body);
        let zs = encode_body(&body, Coding::Zstd, &c).expect("zstd");
        assert_eq!(zstd::decode_all(&zs[..]).expect("zstd decodes"), body);
        let gz = encode_body(&body, Coding::Gzip, &c).expect("gzip");
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .expect("gzip decodes");
        assert_eq!(back, body);
        assert!(br.len() < body.len() / 4 && gz.len() < body.len() / 3);
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            (
                CompressionSection {
                    encodings: Some(vec!["deflate".into()]),
                    ..Default::default()
                },
                "compression.encodings",
            ),
            (
                CompressionSection {
                    brotli_level: Some(12),
                    ..Default::default()
                },
                "compression.brotli-level",
            ),
            (
                CompressionSection {
                    zstd_level: Some(0),
                    ..Default::default()
                },
                "compression.zstd-level",
            ),
            (
                CompressionSection {
                    gzip_level: Some(10),
                    ..Default::default()
                },
                "compression.gzip-level",
            ),
            (
                CompressionSection {
                    types: Some(vec!["text".into()]),
                    ..Default::default()
                },
                "compression.types",
            ),
        ];
        for (section, key) in cases {
            let e = section.validate("edge.toml").expect_err(key).to_string();
            assert!(e.contains("edge.toml") && e.contains(key), "{e}");
        }
        let off = CompressionSection {
            enabled: Some(false),
            ..Default::default()
        };
        assert_eq!(off.validate("edge.toml").expect("valid"), None);
    }

    #[test]
    fn only_forms_made_here_are_told_apart() {
        let entry = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, http::HeaderValue::from_static(v));
            }
            Entry::new(
                http::StatusCode::OK,
                h,
                Bytes::new(),
                meridian_cache::Freshness::fresh_for(
                    std::time::Duration::from_secs(1),
                    SystemTime::now(),
                ),
                Variant::default(),
            )
        };
        let made = encoded_headers(&HeaderMap::new(), Coding::Br, 1);
        assert!(!made_here(&entry(&[])));
        let mut tagged = HeaderMap::new();
        tagged.insert(header::ETAG, http::HeaderValue::from_static("\"v1\""));
        let made_tagged = encoded_headers(&tagged, Coding::Gzip, 1);
        assert!(made_here(&Entry::new(
            http::StatusCode::OK,
            made_tagged,
            Bytes::new(),
            meridian_cache::Freshness::fresh_for(
                std::time::Duration::from_secs(1),
                SystemTime::now()
            ),
            Variant::default(),
        )));
        // Without a tag there is nothing to revalidate with anyway.
        assert!(!made.contains_key(header::ETAG));
        assert!(!made_here(&entry(&[
            ("content-encoding", "gzip"),
            ("etag", "\"v1\"")
        ])));
        assert!(!made_here(&entry(&[
            ("content-encoding", "gzip"),
            ("etag", "W/\"v1-br\"")
        ])));
        assert!(!made_here(&entry(&[
            ("content-encoding", "br"),
            ("etag", "W/\"v1br\"")
        ])));
    }

    #[test]
    fn encoded_headers_describe_the_encoded_bytes() {
        let mut h = HeaderMap::new();
        h.insert(header::ETAG, http::HeaderValue::from_static("\"v1\""));
        h.insert(
            header::ACCEPT_RANGES,
            http::HeaderValue::from_static("bytes"),
        );
        h.insert(
            header::CONTENT_LENGTH,
            http::HeaderValue::from_static("5000"),
        );
        h.insert("repr-digest", http::HeaderValue::from_static("sha-256=:x:"));
        let e = encoded_headers(&h, Coding::Gzip, 42);
        assert_eq!(e[header::ETAG], "W/\"v1-gz\"");
        assert_eq!(e[header::CONTENT_LENGTH], "42");
        assert_eq!(e[header::CONTENT_ENCODING], "gzip");
        assert_eq!(e[header::VARY], "Accept-Encoding");
        assert!(!e.contains_key(header::ACCEPT_RANGES));
        assert!(!e.contains_key("repr-digest"));
    }
}
