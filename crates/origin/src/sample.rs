//! The sample site of `meridian origin --sample-site` and `meridian cluster
//! up`: a few hundred assets generated in memory from a seed, served with
//! the headers a real site sends, so a CDN in front of it has something to
//! cache, revalidate, purge by tag and pass through. It is also the
//! workload of `meridian simulate`: [`SampleSite::assets`] lists the assets
//! most popular first (draw ranks from a Zipf distribution over it), and
//! `GET /sitemap.txt` gives the same list, one path per line.
//!
//! | section | paths | types | `Cache-Control` | why |
//! |---|---|---|---|---|
//! | `home` | `/`, `/index.html` (the same page), `/about.html`, `/contact.html` | HTML | `public, max-age=60, stale-while-revalidate=30, stale-if-error=300` | pages change; a refresh happens in the background for 30 s, and an origin outage is survivable for five minutes |
//! | `news` | `/news/`, `/news/story-NNN.html` (80) | HTML | `public, max-age=60, s-maxage=300, stale-while-revalidate=30, stale-if-error=300` | browsers a minute, the CDN five: a newsroom purges the `news` tag when it publishes |
//! | `shop` | `/shop/`, `/shop/p/NNN.html` and `/shop/p/NNN.json` (40 each) | HTML, JSON | pages as `home`; the JSON (prices, stock) `public, max-age=10, s-maxage=60, stale-if-error=300` | prices: browsers 10 s, the CDN a minute |
//! | `docs` | `/docs/`, `/docs/guide-NN.html` (40) | HTML | `public, max-age=3600, stale-while-revalidate=600, stale-if-error=86400` | rarely changes |
//! | `live` | `/live/`, `/live/scores.json`, `/live/ticker.json`, `/live/match-NN.json` (10) | HTML, JSON | `public, max-age=5, stale-if-error=60` | short enough to watch revalidation (each costs the origin a 304, not a body); no `stale-while-revalidate`, so it happens in line, where a client sees it. [`SampleSite::with_live_ttl`] changes the 5 |
//! | `static` | `/static/css/*.css` (8), `/static/js/*.js` (10) | CSS, JS | `public, max-age=86400, stale-if-error=604800` | versioned assets: a day, a week's grace |
//! | `img` | `/img/logo.svg`, `/img/icons/*.svg` (20), `/img/hero/N.png` (3, 1–3 MiB), `/img/news/NNN.png`, `/img/shop/NNN.png`, `/img/video/poster.png` | SVG, PNG | as `static` | as `static` |
//! | `video` | `/video/`, [`BIG_VIDEO`] (32 MiB), `/video/clip-N.mp4` (3) | HTML, MP4 | `public, max-age=86400, stale-if-error=86400` | large; fetched in ranges |
//!
//! Every asset has a strong `ETag` (a hash of its bytes, so it changes
//! exactly when the bytes do), a `Last-Modified` in the past, `Content-Type`,
//! `Accept-Ranges: bytes` and `Surrogate-Key: SECTION TYPE [ITEM]` (`news
//! html story-007`, `img png story-007`, `static css`), so `--tag news`
//! drops every news page, `--tag png` every PNG and `--tag product-017` a
//! product's page, JSON and picture together. Conditional requests (304,
//! 412) and ranges (206, 416) use the cache's own RFC 9110 code, as the
//! file origin does. The HTML is small and valid and links only to assets
//! that exist; CSS, JS, JSON, SVG and PNG are real files of their type; the
//! MP4s are video-like bytes only.
//!
//! Besides the assets: anything under `/api/` is dynamic JSON (a counter
//! and the time) with `Cache-Control: private, no-store`; `/sitemap.txt`
//! lists every asset; `/healthz` answers `ok` and is the only path not
//! counted in [`Counters`]; a section without its slash (`/news`) is a 301
//! to it; anything else is a 404 with `Cache-Control: public, max-age=10`,
//! and methods other than GET and HEAD a 405 with `Allow`.
//!
//! Memory: the paths are the same for every seed; sizes and bytes come
//! from it. The site holds 20–25 MiB: every body is one `Bytes` shared
//! by every response (ranges are slices), `/index.html` shares `/`'s, and
//! the 32 MiB video is one 1 MB block repeated.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use meridian_common::Shutdown;

mod catalog;
mod content;
mod respond;

pub use catalog::BIG_VIDEO;

/// A sample site: immutable once built, shared as `Arc<SampleSite>`.
#[derive(Debug)]
pub struct SampleSite {
    seed: u64,
    assets: Vec<Asset>,
    by_path: HashMap<String, usize>,
    sitemap: Asset,
    total: u64,
}

impl SampleSite {
    /// The site for `seed`: the same seed gives the same paths, bytes,
    /// ETags and order; another seed the same paths with other bytes.
    pub fn generate(seed: u64) -> SampleSite {
        SampleSite::from_assets(seed, catalog::build(seed, catalog::LIVE_TTL))
    }

    /// The same site with `max-age` of the `live` section set to `ttl`
    /// (whole seconds; 5 by default), to watch revalidation sooner.
    pub fn with_live_ttl(mut self, ttl: Duration) -> SampleSite {
        let cc = catalog::live_cache_control(ttl.as_secs());
        for a in self.assets.iter_mut().filter(|a| a.section == "live") {
            a.set_cache_control(cc.clone());
        }
        self
    }

    fn from_assets(seed: u64, assets: Vec<Asset>) -> SampleSite {
        let by_path = assets
            .iter()
            .enumerate()
            .map(|(i, a)| (a.path.clone(), i))
            .collect();
        let total = assets.iter().map(|a| a.len).sum();
        let mut list = String::with_capacity(assets.len() * 32);
        for a in &assets {
            list.push_str(&a.path);
            list.push('\n');
        }
        let sitemap = Asset::sitemap(seed, list);
        SampleSite {
            seed,
            assets,
            by_path,
            sitemap,
            total,
        }
    }

    /// Every asset, most popular first (for a Zipf workload): the page at
    /// `/` and what every page loads, then the rest in tiers of falling
    /// popularity, each tier in an order drawn from the seed.
    pub fn assets(&self) -> &[Asset] {
        &self.assets
    }

    /// The asset at `path` (exact; no query string).
    pub fn get(&self, path: &str) -> Option<&Asset> {
        self.by_path.get(path).and_then(|&i| self.assets.get(i))
    }

    /// The sum of every asset's length (what fetching each once costs).
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// The seed the site was generated from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// `/sitemap.txt`: every asset path, one per line, in [`Self::assets`] order.
    pub(crate) fn sitemap(&self) -> &Asset {
        &self.sitemap
    }
}

/// One file of the site, with everything its response headers say.
#[derive(Debug, Clone)]
pub struct Asset {
    /// The request path, e.g. `/news/story-007.html`.
    pub path: String,
    pub content_type: &'static str,
    /// The body length in bytes.
    pub len: u64,
    pub cache_control: String,
    /// `home`, `news`, `shop`, `docs`, `live`, `static`, `img` or `video`.
    pub section: &'static str,
    /// The type word of `Surrogate-Key`: `html`, `css`, `js`, `json`,
    /// `svg`, `png` or `mp4`.
    pub kind: &'static str,
    /// The `Surrogate-Key` value: section, type and item, space separated.
    pub surrogate_key: String,
    /// The strong `ETag`, quotes included.
    pub etag: String,
    pub last_modified: SystemTime,
    content: Content,
    /// The representation headers of every answer but `Date`.
    headers: HeaderMap,
}

/// A body held once and sliced per response.
#[derive(Clone)]
pub(crate) enum Content {
    Whole(Bytes),
    /// `block` repeated up to `len` bytes.
    Repeat {
        block: Bytes,
        len: u64,
    },
}

impl std::fmt::Debug for Content {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Content::Whole(b) => write!(f, "Whole({} bytes)", b.len()),
            Content::Repeat { block, len } => {
                write!(f, "Repeat({} bytes of a {}-byte block)", len, block.len())
            }
        }
    }
}

impl Content {
    fn len(&self) -> u64 {
        match self {
            Content::Whole(b) => b.len() as u64,
            Content::Repeat { len, .. } => *len,
        }
    }

    /// A digest of the bytes; for a repeat, of its block and length
    /// (which determine every byte).
    fn hash(&self) -> u64 {
        const START: u64 = 0xCBF2_9CE4_8422_2325;
        match self {
            Content::Whole(b) => content::digest(START, b),
            Content::Repeat { block, len } => {
                content::digest(content::digest(START, block), &len.to_le_bytes())
            }
        }
    }

    /// The bytes of `range` (clamped to the body) as shared slices.
    fn slices(&self, range: Range<u64>) -> Vec<Bytes> {
        let end = range.end.min(self.len());
        let mut pos = range.start.min(end);
        match self {
            Content::Whole(b) => vec![b.slice(pos as usize..end as usize)],
            Content::Repeat { block, .. } => {
                let n = block.len() as u64;
                if n == 0 {
                    return Vec::new();
                }
                // Bounded: one slice per block the range touches.
                let mut out = Vec::with_capacity(((end - pos) / n + 2) as usize);
                while pos < end {
                    let off = pos % n;
                    let take = (n - off).min(end - pos);
                    out.push(block.slice(off as usize..(off + take) as usize));
                    pos += take;
                }
                out
            }
        }
    }
}

/// Where every `Last-Modified` lies before: 2026-01-01T00:00:00Z.
const EPOCH_OF_SITE: u64 = 1_767_225_600;

impl Asset {
    fn new(
        seed: u64,
        path: String,
        section: &'static str,
        kind: catalog::Kind,
        surrogate_key: String,
        cache_control: String,
        content: Content,
    ) -> Asset {
        let etag = format!("\"{:016x}\"", content.hash());
        let mut rng = content::Rng::for_asset(seed ^ 0x1A57_0D1F, &path);
        let age = rng.range(0, 180 * 86_400);
        let last_modified = UNIX_EPOCH + Duration::from_secs(EPOCH_OF_SITE - age);
        let mut a = Asset {
            len: content.len(),
            path,
            content_type: kind.content_type(),
            cache_control,
            section,
            kind: kind.key(),
            surrogate_key,
            etag,
            last_modified,
            content,
            headers: HeaderMap::new(),
        };
        a.headers = a.build_headers();
        a
    }

    fn sitemap(seed: u64, list: String) -> Asset {
        Asset::new(
            seed,
            "/sitemap.txt".into(),
            "home",
            catalog::Kind::Txt,
            "sitemap".into(),
            catalog::SITEMAP.into(),
            Content::Whole(Bytes::from(list)),
        )
    }

    fn set_cache_control(&mut self, cc: String) {
        self.cache_control = cc;
        self.headers = self.build_headers();
    }

    fn build_headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        let mut put = |name: HeaderName, value: &str| {
            if let Ok(v) = HeaderValue::from_str(value) {
                h.insert(name, v);
            }
        };
        put(header::CONTENT_TYPE, self.content_type);
        put(header::ETAG, &self.etag);
        put(
            header::LAST_MODIFIED,
            &httpdate::fmt_http_date(self.last_modified),
        );
        put(header::CACHE_CONTROL, &self.cache_control);
        put(
            HeaderName::from_static("surrogate-key"),
            &self.surrogate_key,
        );
        put(header::ACCEPT_RANGES, "bytes");
        h
    }

    /// The bytes of `range` (clamped to the body), as slices of the one
    /// shared copy: no bytes are copied. For checking what a cache served.
    pub fn slices(&self, range: Range<u64>) -> Vec<Bytes> {
        self.content.slices(range)
    }

    /// Headers of every answer about this asset but `Date`.
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }
}

/// What the sample origin has answered: every request but `/healthz`, and
/// body bytes as they are handed to the connection (a client that hangs
/// up half way through the video is not counted for the rest).
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
}

/// The sample site as an axum `Router`, counting into `counters`.
pub fn sample_router(site: Arc<SampleSite>, counters: Arc<Counters>) -> Router {
    respond::router(site, counters)
}

/// Serves `site` on `listener` until `shutdown` fires; in-flight requests
/// are allowed to finish.
pub async fn run_sample(
    listener: tokio::net::TcpListener,
    site: Arc<SampleSite>,
    counters: Arc<Counters>,
    shutdown: Shutdown,
) -> Result<(), crate::Error> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, seed = site.seed, assets = site.assets.len(), "sample origin listening");
    }
    axum::serve(listener, sample_router(site, counters))
        .with_graceful_shutdown(shutdown.wait())
        .await
        .map_err(crate::Error::Serve)
}

#[cfg(test)]
mod tests;
