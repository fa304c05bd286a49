//! Prometheus metrics, served as `GET /metrics` on the admin listener.
//!
//! Every metric name is a constant in [`names`]. Every label value comes
//! from a fixed set: an enum here ([`CacheLabel`], [`Class`],
//! [`UpstreamResult`], [`PurgeKind`]) or an upstream's configured URL (a
//! list fixed when the node starts). Nothing a client sends — path, host,
//! header — ever becomes a label, so the number of series is bounded by the
//! config, whatever the traffic.
//!
//! # What a request pays
//!
//! A `prometheus-client` [`Family`] lookup takes a read lock and hashes the
//! label set. So no request path looks anything up: every label combination
//! is resolved once, when the engine is built, into plain [`Counter`]
//! handles kept in arrays indexed by the label enums. A `Counter` is an
//! `Arc<AtomicU64>` that the family shares, so the family encodes the very
//! atomics the requests bump. A hit therefore adds two or three relaxed
//! atomic adds to the ones `Stats::record` already makes:
//! no lock, no allocation, no hash. Its bytes are counted from the
//! response body's exact size (the entry's length), not by wrapping the
//! body in a counting stream.
//!
//! The upstream latency histogram is `prometheus-client`'s, which takes a
//! short uncontended mutex per observation; it is observed once per
//! upstream request, never on a hit, beside a request that costs a round
//! trip. What the engine already keeps — store entries, bytes and
//! evictions, the fill budget, upstream health — is read at scrape time and
//! costs requests nothing.
//!
//! # Formats
//!
//! OpenMetrics text when the scraper's `Accept` asks for
//! `application/openmetrics-text` (Prometheus does by default), else the
//! Prometheus text format 0.0.4 (what `curl` gets).

use std::fmt;
use std::time::Duration;

use http::{HeaderMap, HeaderValue, StatusCode, header};
use meridian_balance::Backend;
use meridian_cache::CacheStatus;
use meridian_cache::Fwd;
use meridian_cache::store::Selector;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::engine::Engine;
use crate::outcome::{stale_served, upstream_failed};
use crate::upstream::FetchError;

/// Every metric name, as a scraper sees it. Counters end in `_total`, the
/// suffix the encoders add themselves (registered without it).
pub mod names {
    pub const REQUESTS_TOTAL: &str = "meridian_requests_total";
    pub const RESPONSE_BYTES_TOTAL: &str = "meridian_response_bytes_total";
    pub const COLLAPSED_TOTAL: &str = "meridian_collapsed_total";
    pub const UPSTREAM_REQUEST_DURATION_SECONDS: &str =
        "meridian_upstream_request_duration_seconds";
    pub const UPSTREAM_ERRORS_TOTAL: &str = "meridian_upstream_errors_total";
    pub const UPSTREAM_UP: &str = "meridian_upstream_up";
    pub const CACHE_ENTRIES: &str = "meridian_cache_entries";
    pub const CACHE_BYTES: &str = "meridian_cache_bytes";
    pub const CACHE_CAPACITY_BYTES: &str = "meridian_cache_capacity_bytes";
    pub const CACHE_EVICTIONS_TOTAL: &str = "meridian_cache_evictions_total";
    pub const PURGES_TOTAL: &str = "meridian_purges_total";
    pub const PURGED_ENTRIES_TOTAL: &str = "meridian_purged_entries_total";
    pub const FILLS_IN_FLIGHT: &str = "meridian_fills_in_flight";
    pub const FILL_BUDGET_BYTES: &str = "meridian_fill_budget_bytes";
    pub const FILL_BUDGET_CAPACITY_BYTES: &str = "meridian_fill_budget_capacity_bytes";
    pub const ZERO_COPY_BODIES: &str = "meridian_zero_copy_bodies";
    pub const ZERO_COPY_BODY_BYTES: &str = "meridian_zero_copy_body_bytes";
    pub const ZERO_COPY_SENT_BYTES_TOTAL: &str = "meridian_zero_copy_sent_bytes_total";
    pub const ZERO_COPY_LARGE_PAGES: &str = "meridian_zero_copy_large_pages";
    pub const ENCODINGS_TOTAL: &str = "meridian_encodings_total";
    pub const ENCODING_BYTES_TOTAL: &str = "meridian_encoding_bytes_total";
    pub const BUILD_INFO: &str = "meridian_build_info";

    /// All of them, for tests and docs.
    pub const ALL: [&str; 22] = [
        REQUESTS_TOTAL,
        RESPONSE_BYTES_TOTAL,
        COLLAPSED_TOTAL,
        UPSTREAM_REQUEST_DURATION_SECONDS,
        UPSTREAM_ERRORS_TOTAL,
        UPSTREAM_UP,
        CACHE_ENTRIES,
        CACHE_BYTES,
        CACHE_CAPACITY_BYTES,
        CACHE_EVICTIONS_TOTAL,
        PURGES_TOTAL,
        PURGED_ENTRIES_TOTAL,
        FILLS_IN_FLIGHT,
        FILL_BUDGET_BYTES,
        FILL_BUDGET_CAPACITY_BYTES,
        ZERO_COPY_BODIES,
        ZERO_COPY_BODY_BYTES,
        ZERO_COPY_SENT_BYTES_TOTAL,
        ZERO_COPY_LARGE_PAGES,
        ENCODINGS_TOTAL,
        ENCODING_BYTES_TOTAL,
        BUILD_INFO,
    ];
}

/// Upper bounds (seconds) of the upstream latency buckets: loopback and
/// same-region origins resolve in the first few, a slow or distant one in
/// the last; the default response timeout ends the range.
const LATENCY_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The name to register a metric under: counters without `_total`.
fn base(name: &'static str) -> &'static str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// Label enums encode as their `as_str`.
macro_rules! label_value {
    ($($t:ty),*) => {$(
        impl EncodeLabelValue for $t {
            fn encode(&self, e: &mut LabelValueEncoder) -> Result<(), fmt::Error> {
                fmt::Write::write_str(e, self.as_str())
            }
        }
    )*};
}

/// How the cache handled a request: one value per request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CacheLabel {
    /// Served fresh from the cache.
    Hit,
    /// Went upstream for the full response (miss, vary-miss, a stale or
    /// client-forced refetch answered 200).
    Miss,
    /// A stale copy served (stale-while-revalidate, stale-if-error).
    Stale,
    /// A stored response validated by a 304.
    Revalidated,
    /// Answered from another request's fetch.
    Collapsed,
    /// Not handled by the cache (other methods, refused requests).
    Bypass,
    /// Answered with an error because the upstream failed.
    Error,
}

impl CacheLabel {
    pub const ALL: [CacheLabel; 7] = [
        CacheLabel::Hit,
        CacheLabel::Miss,
        CacheLabel::Stale,
        CacheLabel::Revalidated,
        CacheLabel::Collapsed,
        CacheLabel::Bypass,
        CacheLabel::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheLabel::Hit => "hit",
            CacheLabel::Miss => "miss",
            CacheLabel::Stale => "stale",
            CacheLabel::Revalidated => "revalidated",
            CacheLabel::Collapsed => "collapsed",
            CacheLabel::Bypass => "bypass",
            CacheLabel::Error => "error",
        }
    }

    /// The label of a finished request, from the outcome that also makes
    /// its `Cache-Status` (and with the `/stats` rules for stale, upstream
    /// error and revalidated). An error or a stale copy first, then how the
    /// cache was used.
    pub fn of(cs: &CacheStatus) -> Self {
        if let Some(d) = cs.detail {
            if stale_served(d) {
                return CacheLabel::Stale;
            }
            if upstream_failed(d) {
                return CacheLabel::Error;
            }
        }
        match cs.fwd {
            None => CacheLabel::Hit,
            Some(Fwd::Bypass) => CacheLabel::Bypass,
            Some(_) if cs.collapsed => CacheLabel::Collapsed,
            Some(Fwd::Stale | Fwd::Request) if cs.fwd_status == Some(304) => {
                CacheLabel::Revalidated
            }
            Some(_) => CacheLabel::Miss,
        }
    }
}

/// The status class of a response (RFC 9110 §15).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    Informational,
    Success,
    Redirection,
    ClientError,
    ServerError,
}

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Informational,
        Class::Success,
        Class::Redirection,
        Class::ClientError,
        Class::ServerError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Informational => "1xx",
            Class::Success => "2xx",
            Class::Redirection => "3xx",
            Class::ClientError => "4xx",
            Class::ServerError => "5xx",
        }
    }

    /// A status past 599 (an upstream may send one; RFC 9110 defines no
    /// class for it) counts as a server error.
    pub fn of(status: StatusCode) -> Self {
        match status.as_u16() {
            ..200 => Class::Informational,
            200..300 => Class::Success,
            300..400 => Class::Redirection,
            400..500 => Class::ClientError,
            _ => Class::ServerError,
        }
    }
}

/// How one upstream request ended, for the latency histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamResult {
    /// A response head arrived (any status).
    Response,
    ConnectError,
    Timeout,
    /// Reset, closed, or an answer that is not HTTP.
    Error,
}

impl UpstreamResult {
    pub const ALL: [UpstreamResult; 4] = [
        UpstreamResult::Response,
        UpstreamResult::ConnectError,
        UpstreamResult::Timeout,
        UpstreamResult::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamResult::Response => "response",
            UpstreamResult::ConnectError => "connect_error",
            UpstreamResult::Timeout => "timeout",
            UpstreamResult::Error => "error",
        }
    }

    /// `None` for failures that are not the upstream's: the client's body
    /// failed, or there was no upstream to ask.
    pub fn of(result: Result<(), &FetchError>) -> Option<Self> {
        match result {
            Ok(()) => Some(UpstreamResult::Response),
            Err(FetchError::Connect(_)) => Some(UpstreamResult::ConnectError),
            Err(FetchError::Timeout(_)) => Some(UpstreamResult::Timeout),
            Err(FetchError::Other(..)) => Some(UpstreamResult::Error),
            Err(FetchError::Client(_) | FetchError::NoUpstream) => None,
        }
    }
}

/// What a purge selected by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PurgeKind {
    Url,
    Prefix,
    Tag,
    All,
}

impl PurgeKind {
    pub const ALL: [PurgeKind; 4] = [
        PurgeKind::Url,
        PurgeKind::Prefix,
        PurgeKind::Tag,
        PurgeKind::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PurgeKind::Url => "url",
            PurgeKind::Prefix => "prefix",
            PurgeKind::Tag => "tag",
            PurgeKind::All => "all",
        }
    }

    pub fn of(selector: &Selector) -> Self {
        match selector {
            Selector::Key(_) => PurgeKind::Url,
            Selector::Prefix(_) => PurgeKind::Prefix,
            Selector::Tag(_) => PurgeKind::Tag,
            Selector::All => PurgeKind::All,
        }
    }
}

label_value!(CacheLabel, Class, UpstreamResult, PurgeKind);

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    cache: CacheLabel,
    class: Class,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
    result: UpstreamResult,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct UpstreamLabel {
    upstream: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct PurgeLabels {
    kind: PurgeKind,
    soft: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodingLabels {
    coding: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodingBytesLabels {
    coding: &'static str,
    /// `in`: identity bytes read; `out`: encoded bytes stored.
    side: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// The per-request counters, kept in [`crate::outcome::Stats`]: every
/// label combination resolved at construction.
#[derive(Clone, Debug)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    by_label: [[Counter; Class::ALL.len()]; CacheLabel::ALL.len()],
    bytes: Counter,
    collapsed: Counter,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let by_label = CacheLabel::ALL.map(|cache| {
            Class::ALL.map(|class| {
                requests
                    .get_or_create(&RequestLabels { cache, class })
                    .clone()
            })
        });
        RequestMetrics {
            requests,
            by_label,
            bytes: Counter::default(),
            collapsed: Counter::default(),
        }
    }
}

impl RequestMetrics {
    /// Counts one finished request: atomics only (see the module docs).
    pub(crate) fn record(&self, cs: &CacheStatus, status: StatusCode, body_bytes: u64) {
        // In bounds: the arrays are sized by the enums' `ALL`.
        self.by_label[CacheLabel::of(cs) as usize][Class::of(status) as usize].inc();
        if body_bytes > 0 {
            self.bytes.inc_by(body_bytes);
        }
        if cs.collapsed {
            self.collapsed.inc();
        }
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            base(names::REQUESTS_TOTAL),
            "Requests served, by how the cache handled them and status class",
            self.requests.clone(),
        );
        r.register(
            base(names::RESPONSE_BYTES_TOTAL),
            "Response body bytes served, by the length each response declared",
            self.bytes.clone(),
        );
        r.register(
            base(names::COLLAPSED_TOTAL),
            "Requests answered from another request's upstream fetch",
            self.collapsed.clone(),
        );
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// One upstream's handles: a histogram per result, an error counter per
/// failing result.
#[derive(Clone, Debug)]
struct UpstreamHandles {
    duration: [Histogram; UpstreamResult::ALL.len()],
    errors: [Option<Counter>; UpstreamResult::ALL.len()],
}

/// Upstream request metrics, kept by [`crate::upstream::Upstreams`]: one
/// set of handles per configured upstream, by its index in the pool.
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    duration: Family<UpstreamLabels, Histogram, fn() -> Histogram>,
    errors: Family<UpstreamLabels, Counter>,
    by_index: Vec<UpstreamHandles>,
}

impl UpstreamMetrics {
    pub fn new(backends: &[std::sync::Arc<Backend>]) -> Self {
        let duration = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        let errors = Family::<UpstreamLabels, Counter>::default();
        let by_index = backends
            .iter()
            .map(|b| {
                let labels = |result| UpstreamLabels {
                    upstream: b.base().to_owned(),
                    result,
                };
                UpstreamHandles {
                    duration: UpstreamResult::ALL
                        .map(|r| duration.get_or_create(&labels(r)).clone()),
                    errors: UpstreamResult::ALL.map(|r| {
                        (r != UpstreamResult::Response)
                            .then(|| errors.get_or_create(&labels(r)).clone())
                    }),
                }
            })
            .collect();
        UpstreamMetrics {
            duration,
            errors,
            by_index,
        }
    }

    /// One upstream request to the pool's upstream `index` took `elapsed`
    /// to its response head (or its failure).
    pub(crate) fn observe(&self, index: usize, elapsed: Duration, result: Result<(), &FetchError>) {
        let (Some(h), Some(result)) = (self.by_index.get(index), UpstreamResult::of(result)) else {
            return;
        };
        let i = result as usize;
        if let Some(d) = h.duration.get(i) {
            d.observe(elapsed.as_secs_f64());
        }
        if let Some(Some(c)) = h.errors.get(i) {
            c.inc();
        }
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            names::UPSTREAM_REQUEST_DURATION_SECONDS,
            "Time from sending an upstream request to its response head, by upstream and result",
            self.duration.clone(),
        );
        r.register(
            base(names::UPSTREAM_ERRORS_TOTAL),
            "Upstream requests that failed before a response head, by upstream and cause",
            self.errors.clone(),
        );
    }
}

/// The node's own metrics, kept by the [`Engine`]: purges and fills.
#[derive(Debug)]
pub struct Metrics {
    purges: Family<PurgeLabels, Counter>,
    purged_entries: Family<PurgeLabels, Counter>,
    /// `[kind][soft]`: (purges, entries).
    by_purge: [[(Counter, Counter); 2]; PurgeKind::ALL.len()],
    fills: Gauge,
    encodings: Family<CodingLabels, Counter>,
    encoding_bytes: Family<CodingBytesLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let purges = Family::<PurgeLabels, Counter>::default();
        let purged_entries = Family::<PurgeLabels, Counter>::default();
        let by_purge = PurgeKind::ALL.map(|kind| {
            [false, true].map(|soft| {
                let l = PurgeLabels { kind, soft };
                (
                    purges.get_or_create(&l).clone(),
                    purged_entries.get_or_create(&l).clone(),
                )
            })
        });
        Metrics {
            purges,
            purged_entries,
            by_purge,
            fills: Gauge::default(),
            encodings: Family::default(),
            encoding_bytes: Family::default(),
        }
    }
}

impl Metrics {
    /// Counts one purge of `kind` (soft: marked stale rather than removed)
    /// that selected `entries` stored URLs.
    pub fn purged(&self, kind: PurgeKind, soft: bool, entries: usize) {
        let (purges, purged) = &self.by_purge[kind as usize][usize::from(soft)];
        purges.inc();
        purged.inc_by(u64::try_from(entries).unwrap_or(u64::MAX));
    }

    /// Counts one encoded form made from `input` identity bytes
    /// into `output` bytes. Once per URL and coding, never per hit, so the
    /// label lookup is no cost worth caching.
    pub(crate) fn encoded(&self, coding: &'static str, input: usize, output: usize) {
        self.encodings.get_or_create(&CodingLabels { coding }).inc();
        for (side, n) in [("in", input), ("out", output)] {
            self.encoding_bytes
                .get_or_create(&CodingBytesLabels { coding, side })
                .inc_by(u64::try_from(n).unwrap_or(u64::MAX));
        }
    }

    /// Marks a fill in flight until the returned guard drops.
    pub(crate) fn fill_started(&self) -> FillInFlight {
        self.fills.inc();
        FillInFlight(self.fills.clone())
    }

    fn register(&self, r: &mut Registry) {
        r.register(
            base(names::PURGES_TOTAL),
            "Purge requests, by what they selected by and whether soft",
            self.purges.clone(),
        );
        r.register(
            base(names::PURGED_ENTRIES_TOTAL),
            "Stored URLs removed or marked stale by purges",
            self.purged_entries.clone(),
        );
        r.register(
            base(names::ENCODINGS_TOTAL),
            "Encoded forms (br, zstd, gzip) made from stored identity responses, by coding",
            self.encodings.clone(),
        );
        r.register(
            base(names::ENCODING_BYTES_TOTAL),
            "Bytes into (side=in, identity) and out of (side=out) the encoders, by coding",
            self.encoding_bytes.clone(),
        );
        r.register(
            names::FILLS_IN_FLIGHT,
            "Upstream bodies being streamed into the cache now",
            self.fills.clone(),
        );
    }
}

/// A fill in flight; dropping it ends it (see `Metrics::fill_started`).
#[derive(Debug)]
pub(crate) struct FillInFlight(Gauge);

impl Drop for FillInFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The exposition format of a scrape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    OpenMetrics,
    /// Prometheus text format 0.0.4.
    Prometheus,
}

impl Format {
    /// OpenMetrics when `Accept` lists it, else Prometheus text.
    pub fn from_accept(accept: Option<&HeaderValue>) -> Self {
        let wants = accept.and_then(|v| v.to_str().ok()).is_some_and(|a| {
            a.to_ascii_lowercase()
                .contains("application/openmetrics-text")
        });
        if wants {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Prometheus => prometheus_text::CONTENT_TYPE,
        }
    }
}

/// The scrape: every metric of `engine` in `format`.
pub fn encode(engine: &Engine, format: Format) -> Result<String, fmt::Error> {
    let mut r = Registry::default();
    engine.stats.metrics.register(&mut r);
    engine.upstreams.metrics().register(&mut r);
    engine.metrics.register(&mut r);
    register_state(&mut r, engine);
    let mut out = String::with_capacity(16 * 1024);
    match format {
        Format::OpenMetrics => text::encode(&mut out, &r)?,
        Format::Prometheus => prometheus_text::encode(&mut out, &r)?,
    }
    Ok(out)
}

/// The `/metrics` response for a request with `headers`.
pub fn scrape(engine: &Engine, headers: &HeaderMap) -> http::Response<axum::body::Body> {
    let format = Format::from_accept(headers.get(header::ACCEPT));
    let (status, content_type, body) = match encode(engine, format) {
        Ok(body) => (StatusCode::OK, format.content_type(), body),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain; charset=utf-8",
            "metrics could not be encoded\n".to_owned(),
        ),
    };
    let mut r = http::Response::new(axum::body::Body::from(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// What the engine already keeps, read now.
fn register_state(r: &mut Registry, engine: &Engine) {
    let store = engine.store().stats();
    r.register(
        names::CACHE_ENTRIES,
        "URLs stored (each may hold several variants)",
        ConstGauge::new(store.entries),
    );
    r.register(
        names::CACHE_BYTES,
        "Bytes the store charges: bodies, headers and bookkeeping",
        ConstGauge::new(store.bytes),
    );
    r.register(
        names::CACHE_CAPACITY_BYTES,
        "The store's capacity (cache.size)",
        ConstGauge::new(store.capacity),
    );
    r.register(
        base(names::CACHE_EVICTIONS_TOTAL),
        "Stored URLs pushed out to make room",
        ConstCounter::new(store.evictions),
    );
    r.register(
        names::FILL_BUDGET_BYTES,
        "Bytes held by fills in flight",
        ConstGauge::new(engine.fill_budget.used()),
    );
    r.register(
        names::FILL_BUDGET_CAPACITY_BYTES,
        "The fill budget (cache.fill-budget)",
        ConstGauge::new(engine.fill_budget.limit()),
    );
    let (mapped, mapped_bytes) = meridian_sendfile::live();
    r.register(
        names::ZERO_COPY_BODIES,
        "Stored bodies in memory files, sent with sendfile (process-wide)",
        ConstGauge::new(mapped as u64),
    );
    r.register(
        names::ZERO_COPY_BODY_BYTES,
        "Bytes of the stored bodies in memory files (process-wide)",
        ConstGauge::new(mapped_bytes),
    );
    r.register(
        base(names::ZERO_COPY_SENT_BYTES_TOTAL),
        "Body bytes sent from memory files without a copy (process-wide)",
        ConstCounter::new(meridian_sendfile::sent_from_files()),
    );
    r.register(
        names::ZERO_COPY_LARGE_PAGES,
        "1 when those files are on the node's private large-page tmpfs, 0 for memory files with 4 KiB pages",
        ConstGauge::new(u64::from(meridian_sendfile::large_pages_in_use())),
    );
    let up = Family::<UpstreamLabel, Gauge>::default();
    for b in engine.pool().backends() {
        let l = UpstreamLabel {
            upstream: b.base().to_owned(),
        };
        up.get_or_create(&l).set(i64::from(b.is_up()));
    }
    r.register(
        names::UPSTREAM_UP,
        "Whether the upstream is up (health checks and passive ejection)",
        up,
    );
    let build = Family::<BuildLabels, Gauge>::default();
    build
        .get_or_create(&BuildLabels {
            version: env!("CARGO_PKG_VERSION"),
        })
        .set(1);
    r.register(names::BUILD_INFO, "The Meridian version running", build);
}

#[cfg(test)]
mod tests {
    use meridian_cache::status::detail;

    use super::*;

    fn forward(fwd: Fwd) -> CacheStatus {
        CacheStatus::forward(fwd)
    }

    #[test]
    fn one_cache_label_per_outcome() {
        let with = |mut cs: CacheStatus, f: &dyn Fn(&mut CacheStatus)| {
            f(&mut cs);
            cs
        };
        let cases = [
            (CacheStatus::hit(60), CacheLabel::Hit),
            (
                with(CacheStatus::hit(-1), &|c| {
                    c.detail = Some(detail::STALE_WHILE_REVALIDATE)
                }),
                CacheLabel::Stale,
            ),
            (
                with(forward(Fwd::Stale), &|c| {
                    c.detail = Some(detail::STALE_IF_ERROR)
                }),
                CacheLabel::Stale,
            ),
            (forward(Fwd::Miss), CacheLabel::Miss),
            (forward(Fwd::VaryMiss), CacheLabel::Miss),
            (
                with(forward(Fwd::Stale), &|c| c.fwd_status = Some(200)),
                CacheLabel::Miss,
            ),
            (
                with(forward(Fwd::Stale), &|c| c.fwd_status = Some(304)),
                CacheLabel::Revalidated,
            ),
            (
                with(forward(Fwd::Request), &|c| c.fwd_status = Some(304)),
                CacheLabel::Revalidated,
            ),
            (
                with(forward(Fwd::Miss), &|c| c.collapsed = true),
                CacheLabel::Collapsed,
            ),
            (forward(Fwd::Bypass), CacheLabel::Bypass),
            (
                with(forward(Fwd::Miss), &|c| {
                    c.detail = Some(detail::UPSTREAM_CONNECT)
                }),
                CacheLabel::Error,
            ),
            (
                with(forward(Fwd::Bypass), &|c| c.detail = Some("no-upstream")),
                CacheLabel::Error,
            ),
        ];
        for (cs, want) in cases {
            assert_eq!(CacheLabel::of(&cs), want, "{cs:?}");
        }
    }

    #[test]
    fn status_classes_rfc9110_15() {
        let cases = [
            (100, "1xx"),
            (204, "2xx"),
            (304, "3xx"),
            (404, "4xx"),
            (503, "5xx"),
            (599, "5xx"),
            (799, "5xx"),
        ];
        for (code, want) in cases {
            let s = StatusCode::from_u16(code).expect("valid status");
            assert_eq!(Class::of(s).as_str(), want, "{code}");
        }
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        let prom =
            "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3";
        let cases = [
            (None, Format::Prometheus),
            (Some("*/*"), Format::Prometheus),
            (Some("text/plain"), Format::Prometheus),
            (Some(prom), Format::OpenMetrics),
            (Some("Application/OpenMetrics-Text"), Format::OpenMetrics),
        ];
        for (accept, want) in cases {
            let v = accept.map(HeaderValue::from_static);
            assert_eq!(Format::from_accept(v.as_ref()), want, "{accept:?}");
        }
    }

    /// The encoded sample of `name` with exactly `labels`, if present.
    fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
        let want = if labels.is_empty() {
            name.to_owned()
        } else {
            format!("{name}{{{labels}}}")
        };
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(&want)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_reach_the_encoded_families_through_the_resolved_handles() {
        let requests = RequestMetrics::default();
        let node = Metrics::default();
        let ok = StatusCode::OK;
        requests.record(&CacheStatus::hit(60), ok, 100);
        requests.record(&CacheStatus::hit(60), ok, 50);
        let mut collapsed = forward(Fwd::Miss);
        collapsed.collapsed = true;
        requests.record(&collapsed, StatusCode::NOT_FOUND, 0);
        node.purged(PurgeKind::Tag, true, 3);
        let fill = node.fill_started();
        let mut r = Registry::default();
        requests.register(&mut r);
        node.register(&mut r);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &r).expect("encodes");
        let requests_total = names::REQUESTS_TOTAL;
        assert_eq!(
            sample(&out, requests_total, r#"cache="hit",class="2xx""#),
            Some(2.0)
        );
        assert_eq!(
            sample(&out, requests_total, r#"cache="collapsed",class="4xx""#),
            Some(1.0)
        );
        // Every combination exists from the start, at zero.
        assert_eq!(
            sample(&out, requests_total, r#"cache="error",class="5xx""#),
            Some(0.0)
        );
        assert_eq!(sample(&out, names::RESPONSE_BYTES_TOTAL, ""), Some(150.0));
        assert_eq!(sample(&out, names::COLLAPSED_TOTAL, ""), Some(1.0));
        assert_eq!(
            sample(&out, names::PURGES_TOTAL, r#"kind="tag",soft="true""#),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &out,
                names::PURGED_ENTRIES_TOTAL,
                r#"kind="tag",soft="true""#
            ),
            Some(3.0)
        );
        assert_eq!(sample(&out, names::FILLS_IN_FLIGHT, ""), Some(1.0));
        drop(fill);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &r).expect("encodes");
        assert_eq!(sample(&out, names::FILLS_IN_FLIGHT, ""), Some(0.0));
    }

    #[test]
    fn upstream_observations_by_configured_upstream() {
        let b = std::sync::Arc::new(Backend::parse("http://u.test:8080").expect("backend"));
        let m = UpstreamMetrics::new(&[b]);
        m.observe(0, Duration::from_millis(3), Ok(()));
        let timeout = FetchError::Timeout("u".into());
        m.observe(0, Duration::from_secs(1), Err(&timeout));
        // Not the upstream's fault, and an index the pool never gives.
        m.observe(0, Duration::ZERO, Err(&FetchError::Client("cut".into())));
        m.observe(7, Duration::ZERO, Ok(()));
        let mut r = Registry::default();
        m.register(&mut r);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &r).expect("encodes");
        let count = format!("{}_count", names::UPSTREAM_REQUEST_DURATION_SECONDS);
        let u = r#"upstream="http://u.test:8080""#;
        assert_eq!(
            sample(&out, &count, &format!(r#"{u},result="response""#)),
            Some(1.0)
        );
        assert_eq!(
            sample(&out, &count, &format!(r#"{u},result="timeout""#)),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &out,
                names::UPSTREAM_ERRORS_TOTAL,
                &format!(r#"{u},result="timeout""#)
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(
                &out,
                names::UPSTREAM_ERRORS_TOTAL,
                &format!(r#"{u},result="response""#)
            ),
            None
        );
    }
}
