//! The caching proxy engine shared by the edge and the origin shield: the
//! request flow read top to bottom —
//!
//! ```text
//! entry: one authority (absolute-form target, else the one Host; site-host;
//!        accept-hosts → 421; bad/missing/duplicate Host → 400), client fields
//!        sanitised once (hop-by-hop, forwarding fields of untrusted peers)
//!   │
//! key ─► lookup ─┬─ fresh ─────────────────────────► serve (hit)
//!                ├─ stale, in stale-while-revalidate ► serve + refresh once in background
//!                ├─ stale / no-cache ──► revalidate (collapsed) ─┬─ 304 ► update headers, serve
//!                │                                                ├─ 200 ► store, serve
//!                │                                                └─ error ► stale-if-error or 5xx
//!                └─ miss / vary-miss ─► collapse ─┬─ leader: fetch ► store? ► serve
//!                                                 └─ follower: wait ► serve leader's entry,
//!                                                                     or fetch alone
//! unsafe method ─► forward ─► on success invalidate URI, Location, Content-Location
//! PURGE (with a token) ─► purge the URL here, never forwarded
//! other methods ─► forward (bypass)
//! ```

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use ipnet::IpNet;
use meridian_balance::Pool;
use meridian_cache::store::Selector;
use meridian_cache::{
    CacheControl, CacheStatus, Coalescer, FillBudget, Fwd, KeyOptions, Lookup, MemoryStore, Policy,
    Reuse, Storage, cache_key,
};
use tracing::Instrument;

use meridian_common::auth::Tokens;
use meridian_purge::{SyncState, Tier};

use crate::authority::{Authority, HostPattern, Scheme};
use crate::body::Body;
use crate::compress::Looked;
use crate::config::Config;
use crate::headers;
use crate::metrics::Metrics;
use crate::outcome::Served;
pub use crate::outcome::Stats;
use crate::respond::{self, Stamp};
use crate::upstream::{Outgoing, Upstreams};

/// Answered by every Meridian proxy listener itself (never forwarded), so a
/// tier below can health-check this node on the address it sends traffic to.
pub const PROXY_HEALTH_PATH: &str = "/.well-known/meridian/health";

/// Everything a request needs; shared by all connections as `Arc<Engine>`.
pub struct Engine {
    pub(crate) name: String,
    pub(crate) region: String,
    pub(crate) stamp: Stamp,
    pub(crate) store: Arc<dyn Storage>,
    pub(crate) coalescer: Coalescer,
    pub(crate) upstreams: Upstreams,
    pub(crate) policy: Policy,
    pub(crate) key_opts: KeyOptions,
    pub(crate) grace: Duration,
    pub(crate) collapse_wait: Duration,
    pub(crate) max_object_size: u64,
    /// Bytes held by fills in flight, node-wide.
    pub(crate) fill_budget: Arc<FillBudget>,
    /// How far a fill that stopped storing may run ahead of its slowest reader.
    pub(crate) pass_window: u64,
    pub(crate) trusted_forwarders: Vec<IpNet>,
    /// `site-host` as an authority for plain and for TLS listeners.
    pub(crate) site: Option<[Authority; 2]>,
    pub(crate) accept_hosts: Option<Vec<HostPattern>>,
    /// The purge log this node follows, if any (started by `serve_all`).
    pub(crate) follow: Option<meridian_purge::FollowConfig>,
    /// How current this node is with the purge log (the max-lag guarantee).
    pub(crate) sync: Arc<SyncState>,
    /// Tokens for the admin listener and `PURGE`.
    pub(crate) admin_tokens: Arc<Tokens>,
    /// This node's tier, as purge answers name it.
    pub(crate) tier: Tier,
    /// `admin.hosts`: `Host` values the admin listener answers besides
    /// its own address and loopback.
    pub(crate) admin_hosts: Vec<HostPattern>,
    /// `[http2]`: the limits the listeners give HTTP/2 connections.
    pub(crate) http2: crate::config::Http2Settings,
    pub stats: Stats,
    /// Prometheus metrics not derived from outcomes: purges, fills.
    pub(crate) metrics: Metrics,
    /// `[compression]`; `None` when off.
    pub(crate) compression: Option<crate::compress::Compressor>,
    /// `[limits]` on client connections and requests, for every listener.
    pub(crate) guard: Arc<crate::guard::Guard>,
}

impl Engine {
    /// Builds the engine over `pool` with an in-memory store of
    /// `config.cache_size` bytes.
    pub fn new(config: &Config, pool: Arc<Pool>) -> Self {
        let site = config.site_host.as_deref().and_then(|s| {
            Some([
                Authority::parse(s, Scheme::Http).ok()?,
                Authority::parse(s, Scheme::Https).ok()?,
            ])
        });
        Engine {
            name: config.name.clone(),
            region: config.region.clone(),
            stamp: Stamp::new(&config.name),
            store: Arc::new(
                MemoryStore::new(config.cache_size).with_max_variants(config.max_variants),
            ),
            coalescer: Coalescer::new(),
            upstreams: Upstreams::new(pool, config),
            policy: config.policy.clone(),
            key_opts: config.key.clone(),
            grace: config.stale_if_error_grace,
            collapse_wait: config.collapse_wait,
            max_object_size: config.max_object_size,
            fill_budget: Arc::new(
                FillBudget::new(config.fill_budget).with_mapping(
                    meridian_sendfile::Mapping::new(
                        usize::try_from(config.zero_copy_min_size).unwrap_or(usize::MAX),
                        config.zero_copy_max_bodies,
                    )
                    .large_pages(config.zero_copy_large_pages),
                ),
            ),
            pass_window: config.pass_window,
            trusted_forwarders: config.trusted_forwarders.clone(),
            site,
            accept_hosts: config.accept_hosts.clone(),
            follow: config
                .purge_log
                .as_ref()
                .map(|log| meridian_purge::FollowConfig {
                    log: log.clone(),
                    node: config.name.clone(),
                    tier: config.tier,
                    token: config.purge_token.clone(),
                }),
            sync: Arc::new(match config.purge_log {
                Some(_) => SyncState::following(config.purge_max_lag),
                None => SyncState::unfollowed(),
            }),
            admin_tokens: Arc::clone(&config.admin_tokens),
            tier: config.tier,
            admin_hosts: config
                .admin_hosts
                .iter()
                .filter_map(|h| HostPattern::parse(h).ok())
                .collect(),
            http2: config.http2.clone(),
            stats: Stats::default(),
            metrics: Metrics::default(),
            compression: config
                .compression
                .clone()
                .map(crate::compress::Compressor::new),
            guard: Arc::new(crate::guard::Guard::new(config)),
        }
    }

    pub fn store(&self) -> &Arc<dyn Storage> {
        &self.store
    }

    pub fn pool(&self) -> &Arc<Pool> {
        self.upstreams.pool()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// This node's sync state with the purge log.
    pub fn sync(&self) -> &Arc<SyncState> {
        &self.sync
    }

    /// How this node follows the purge log (`None`: it follows none).
    pub fn follow_config(&self) -> Option<&meridian_purge::FollowConfig> {
        self.follow.as_ref()
    }

    /// The tokens the admin listener and `PURGE` accept.
    pub fn admin_tokens(&self) -> &Arc<Tokens> {
        &self.admin_tokens
    }

    /// This node's tier (edge or shield).
    pub fn tier(&self) -> Tier {
        self.tier
    }

    /// Where purges and other node events are counted for `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Client connections open now on this node's proxy listeners.
    pub fn open_connections(&self) -> usize {
        self.guard.open_connections()
    }

    /// Handles one request from `peer` on a listener for `scheme`, inside
    /// a `request` span (method, host, path, node, region) that ends with
    /// one event giving the status and `Cache-Status`, when debug logging
    /// is on (`RUST_LOG=debug`); otherwise no span is made at all.
    ///
    /// A hit (or a refusal) is answered here, before this returns: the
    /// future is then a ready response. Everything that waits (a fill, a
    /// revalidation, a forwarded request, an encoding) is boxed, so the
    /// future a hit hands to hyper is the size of a response, not the
    /// kilobytes of every miss path's state. hyper moves a request's
    /// future into a task of its own per HTTP/2 stream (and into its slot
    /// per HTTP/1 request), copying all of it each time: a 5.7 KB future
    /// made that copying a sixth of an HTTP/2 hit's CPU.
    pub fn handle(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        scheme: Scheme,
    ) -> Handled {
        // A tier below polling this node's health is not traffic: it is
        // answered here and counted nowhere (`/stats`, `/metrics`), so an
        // idle shield polled by many edges shows no requests.
        if req.uri().path() == PROXY_HEALTH_PATH {
            return Handled::ready(self.health_answer().0);
        }
        if !tracing::enabled!(tracing::Level::DEBUG) {
            // The hit path pays nothing for logging it does not do.
            return match self.handle_inner(req, peer, scheme) {
                Step::Done((response, outcome)) => {
                    self.stats.record(&outcome, &response);
                    Handled::ready(response)
                }
                Step::Later(later) => {
                    let this = Arc::clone(self);
                    Handled::later(async move {
                        let (response, outcome) = later.await;
                        this.stats.record(&outcome, &response);
                        response
                    })
                }
            };
        }
        let span = tracing::debug_span!(
            "request",
            method = %req.method(),
            host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or(""),
            path = req.uri().path(),
            node = %self.name,
            region = %self.region,
        );
        let step = span.in_scope(|| self.handle_inner(req, peer, scheme));
        let this = Arc::clone(self);
        Handled::later(async move {
            let (response, outcome) = match step {
                Step::Done(served) => served,
                Step::Later(later) => later.instrument(span.clone()).await,
            };
            this.stats.record(&outcome, &response);
            let mut cache_status = String::new();
            outcome.render(&this.stamp.name, &mut cache_status);
            tracing::debug!(
                parent: &span,
                status = response.status().as_u16(),
                cache_status,
                "request done"
            );
            response
        })
    }

    /// A request up to its answer, or up to the first thing it must wait
    /// for ([`Step::Later`]).
    fn handle_inner(
        self: &Arc<Self>,
        req: Request<Incoming>,
        peer: SocketAddr,
        scheme: Scheme,
    ) -> Step {
        let (mut parts, body) = req.into_parts();
        // A reverse proxy does not open tunnels.
        if parts.method == Method::CONNECT {
            let (mut r, cs) = self.refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is not supported by a reverse proxy",
            );
            r.headers_mut().insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS"),
            );
            return Step::Done((r, cs));
        }
        let requested = match requested_authority(&parts, scheme) {
            Ok(Some(a)) => Some(a),
            // HTTP/1.0 without Host: only a configured site can serve it.
            Ok(None) if self.site.is_some() => None,
            Ok(None) => return Step::Done(self.refuse(StatusCode::BAD_REQUEST, "missing Host")),
            Err(why) => return Step::Done(self.refuse(StatusCode::BAD_REQUEST, why)),
        };
        let Some(authority) = self.site_authority(requested, scheme) else {
            return Step::Done(self.refuse(
                StatusCode::MISDIRECTED_REQUEST,
                "this node does not serve that host",
            ));
        };
        let trusted = self.is_trusted(peer.ip());
        let client_ip = self.client_ip(&parts, peer, trusted);
        // Once, here: the lookup, the stored Variant and the upstream
        // request all see these fields.
        headers::sanitize(&mut parts.headers, &authority, trusted);
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let key = cache_key(
            scheme.as_str(),
            authority.as_str(),
            path_and_query,
            &self.key_opts,
        );
        let req = Req {
            parts,
            key,
            client_ip,
            peer,
            authority,
            purge_lag: false,
        };
        match req.parts.method {
            // Taken out here, with a token; never forwarded upstream.
            ref m if m.as_str() == "PURGE" => Step::Done(self.purge_request(&req)),
            // A GET with a body is not cacheable: the body is not in the key.
            Method::GET | Method::HEAD if http_body::Body::is_end_stream(&body) => {
                self.cacheable(req)
            }
            ref m if !is_safe(m) => {
                Step::later(
                    self,
                    |this| async move { this.unsafe_method(req, body).await },
                )
            }
            _ => Step::later(self, |this| async move {
                let body = request_body(body);
                this.forward(req, body, Fwd::Bypass).await
            }),
        }
    }

    /// A request refused before the cache: 400, 405, 421.
    fn refuse(&self, code: StatusCode, why: &str) -> Served {
        let cs = CacheStatus::forward(Fwd::Bypass);
        (respond::error(&self.stamp, code, why, &cs), cs)
    }

    fn health_answer(&self) -> Served {
        let body = serde_json::json!({"name": self.name, "region": self.region, "status": "ok"})
            .to_string();
        let mut r = Response::new(Body::from(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        (r, CacheStatus::forward(Fwd::Bypass))
    }

    /// The site a request is served as: `site-host` when set, else the
    /// requested authority; `None` (421) when `accept-hosts` does not list
    /// the requested one.
    fn site_authority(&self, requested: Option<Authority>, scheme: Scheme) -> Option<Authority> {
        let site = self
            .site
            .as_ref()
            .map(|s| &s[usize::from(scheme == Scheme::Https)]);
        if let Some(accept) = &self.accept_hosts {
            let listed = requested.as_ref().is_some_and(|a| {
                site.is_some_and(|s| s.host() == a.host()) || accept.iter().any(|p| p.matches(a))
            });
            if !listed {
                return None;
            }
        }
        match site {
            Some(s) => Some(s.clone()),
            None => requested,
        }
    }

    /// Whether `peer` is one of `trusted-forwarders`.
    pub(crate) fn is_trusted(&self, peer: IpAddr) -> bool {
        self.trusted_forwarders.iter().any(|n| n.contains(&peer))
    }

    /// The headers of the upstream request for `req`: the one function
    /// that builds them, for forwarded requests and cache fills alike.
    pub(crate) fn upstream_headers(&self, req: &Req) -> http::HeaderMap {
        headers::upstream_request(
            &req.parts.headers,
            &headers::Forwarding {
                authority: &req.authority,
                peer: req.peer.ip(),
                trusted: self.is_trusted(req.peer.ip()),
                via: match req.parts.version {
                    Version::HTTP_2 => &self.stamp.via_h2,
                    _ => &self.stamp.via,
                },
            },
        )
    }

    /// The client address used by `ip-hash`: the peer, or the last
    /// `X-Forwarded-For` hop when the peer is a trusted forwarder (an edge).
    pub(crate) fn client_ip(&self, parts: &Parts, peer: SocketAddr, trusted: bool) -> IpAddr {
        let peer_ip = peer.ip();
        if trusted {
            let last = parts
                .headers
                .get_all(&headers::X_FORWARDED_FOR)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .next_back();
            if let Some(ip) = last {
                return ip;
            }
        }
        peer_ip
    }

    /// GET and HEAD: the cache path.
    fn cacheable(self: &Arc<Self>, mut req: Req) -> Step {
        let req_cc = CacheControl::from_cache_control(&req.parts.headers);
        if req_cc.no_store {
            // RFC 9111 §5.2.1.5: store nothing of this exchange.
            return Step::later(self, |this| async move {
                this.forward(req, Body::Empty, Fwd::Request).await
            });
        }
        let now = SystemTime::now();
        match self.lookup_encoded(&mut req, &req_cc, now) {
            Looked::Lookup(lookup) => self.serve_lookup(req, &req_cc, now, lookup),
            Looked::Encode(identity, coding) => Step::later(self, |this| async move {
                match this.serve_encoded(&req, &identity, coding, now).await {
                    Some(served) => served,
                    None => {
                        let found = Lookup::Found(identity);
                        match this.serve_lookup(req, &req_cc, now, found) {
                            Step::Done(served) => served,
                            Step::Later(later) => later.await,
                        }
                    }
                }
            }),
        }
    }

    /// What the cache lookup found, answered: a hit here, anything else
    /// (revalidation, fill) as [`Step::Later`].
    fn serve_lookup(
        self: &Arc<Self>,
        req: Req,
        req_cc: &CacheControl,
        now: SystemTime,
        lookup: Lookup,
    ) -> Step {
        match lookup {
            // Lagging the purge log: what was fetched before `max-lag` ago
            // may have been purged since, unheard; ask upstream first.
            Lookup::Found(entry)
                if self
                    .sync
                    .revalidate_before(now)
                    .is_some_and(|t| entry.freshness.response_time < t) =>
            {
                if req_cc.only_if_cached {
                    return Step::Done(self.only_if_cached_miss());
                }
                let mut req = req;
                req.purge_lag = true;
                Step::later(self, |this| async move {
                    this.revalidate(req, entry, Fwd::Stale).await
                })
            }
            Lookup::Found(entry) => match entry.reuse(now, req_cc) {
                reuse @ (Reuse::Fresh | Reuse::StaleWhileRevalidate) => {
                    let mut cs = CacheStatus::hit(entry.freshness.ttl(now));
                    if reuse == Reuse::StaleWhileRevalidate {
                        self.spawn_refresh(&req, &entry);
                        cs.detail = Some(meridian_cache::status::detail::STALE_WHILE_REVALIDATE);
                    }
                    let r = respond::from_entry(
                        &self.stamp,
                        &req.parts.method,
                        &req.parts.headers,
                        &entry,
                        &mut cs,
                        now,
                    );
                    Step::Done((r, cs))
                }
                Reuse::Revalidate => {
                    if req_cc.only_if_cached {
                        return Step::Done(self.only_if_cached_miss());
                    }
                    // Fresh for the cache but not for this client: the
                    // request's own directives sent it forward.
                    let fwd = if entry.freshness.is_fresh(now)
                        && !entry.freshness.no_cache
                        && !entry.is_invalidated()
                    {
                        Fwd::Request
                    } else {
                        Fwd::Stale
                    };
                    Step::later(self, |this| async move {
                        this.revalidate(req, entry, fwd).await
                    })
                }
            },
            lookup => {
                if req_cc.only_if_cached {
                    return Step::Done(self.only_if_cached_miss());
                }
                let fwd = if matches!(lookup, Lookup::VaryMiss) {
                    Fwd::VaryMiss
                } else {
                    Fwd::Miss
                };
                Step::later(self, |this| async move { this.fill(req, fwd).await })
            }
        }
    }

    /// RFC 9111 §5.2.1.7: only-if-cached with nothing usable is a 504.
    fn only_if_cached_miss(&self) -> Served {
        let mut cs = CacheStatus::forward(Fwd::Miss);
        cs.detail = Some("only-if-cached");
        let r = respond::error(
            &self.stamp,
            StatusCode::GATEWAY_TIMEOUT,
            "only-if-cached and not in cache",
            &cs,
        );
        (r, cs)
    }

    /// POST, PUT, DELETE, PATCH...: forward, and when the upstream answers
    /// with a non-error status invalidate the target URI and the
    /// `Location` / `Content-Location` on the same host (RFC 9111 §4.4).
    async fn unsafe_method(self: &Arc<Self>, req: Req, body: Incoming) -> Served {
        let key = req.key.clone();
        let authority = req.authority.clone();
        let (response, cs) = self.forward(req, request_body(body), Fwd::Bypass).await;
        let status = response.status();
        if status.is_success() || status.is_redirection() {
            self.store.purge(&Selector::Key(key), false);
            for name in [header::LOCATION, header::CONTENT_LOCATION] {
                if let Some(target) = response.headers().get(&name).and_then(|v| v.to_str().ok())
                    && let Some(k) = same_host_key(target, &authority, &self.key_opts)
                {
                    self.store.purge(&Selector::Key(k), false);
                }
            }
        }
        (response, cs)
    }

    /// Sends the request upstream as it is (with the node's own
    /// forwarding fields) and passes the answer back; nothing is stored.
    pub(crate) async fn forward(&self, req: Req, body: Body, fwd: Fwd) -> Served {
        let h = self.upstream_headers(&req);
        // Before the HEAD leaves: a purge from here on wins over its update.
        let generation = self.store.generation();
        let Req {
            parts,
            key,
            client_ip,
            ..
        } = req;
        let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let out = Outgoing {
            method: parts.method.clone(),
            path_and_query,
            headers: h,
            body,
            key: &key,
            client_ip: Some(client_ip),
        };
        let mut cs = CacheStatus::forward(fwd);
        match self.upstreams.send(out).await {
            Ok(f) => {
                let (mut rp, rb) = f.response.into_parts();
                headers::remove_hop_by_hop(&mut rp.headers);
                cs.fwd_status = Some(rp.status.as_u16());
                let body = if parts.method == Method::HEAD {
                    // RFC 9111 §4.3.5: it tells about the stored GET.
                    let sent = (key.as_str(), &parts.headers, f.request_time, generation);
                    self.head_answered(sent, rp.status, &rp.headers);
                    Body::Empty
                } else {
                    Body::Stream {
                        prefix: Default::default(),
                        rest: rb,
                        guard: Some(f.guard),
                    }
                };
                let r = respond::passthrough(&self.stamp, rp.status, rp.headers, body, &cs);
                (r, cs)
            }
            Err(e) => {
                cs.detail = Some(e.detail());
                let r = respond::error(&self.stamp, e.status(), &e.to_string(), &cs);
                (r, cs)
            }
        }
    }
}

/// A request on its way through the engine. `parts.headers` went through
/// [`headers::sanitize`] at entry.
pub(crate) struct Req {
    pub parts: Parts,
    pub key: String,
    pub client_ip: IpAddr,
    pub peer: SocketAddr,
    /// The one authority the request is for: the key's host and the
    /// upstream `Host`; its scheme is the listener's.
    pub authority: Authority,
    /// The stored copy is being revalidated because the node lags the
    /// purge log: said in `Cache-Status`, and no stale-if-error for it.
    pub purge_lag: bool,
}

impl Req {
    /// A forward `Cache-Status` for this request.
    pub(crate) fn forward_status(&self, fwd: Fwd) -> CacheStatus {
        let mut cs = CacheStatus::forward(fwd);
        if self.purge_lag {
            cs.detail = Some(meridian_cache::status::detail::PURGE_LAG);
        }
        cs
    }
}

/// RFC 9110 §9.2.1 safe methods.
fn is_safe(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// A request body to send on; an empty one becomes `Body::Empty` so the
/// request stays retryable.
fn request_body(b: Incoming) -> Body {
    if http_body::Body::is_end_stream(&b) {
        Body::Empty
    } else {
        Body::stream(b)
    }
}

/// The authority the client asked for (RFC 9112 §3.2): the absolute-form
/// target's when there is one (§3.2.2, `Host` is then ignored), else
/// `Host`. More than one `Host` line, an invalid one, or none on HTTP/1.1
/// is an error (400). On HTTP/2 the target carries `:authority`. `Ok(None)`:
/// an HTTP/1.0 request without `Host`, servable only as the configured
/// `site-host`.
fn requested_authority(parts: &Parts, scheme: Scheme) -> Result<Option<Authority>, &'static str> {
    let mut lines = parts.headers.get_all(header::HOST).iter();
    let host = lines.next();
    if lines.next().is_some() {
        return Err("more than one Host header");
    }
    let host = match host {
        Some(v) => {
            let s = v.to_str().map_err(|_| "invalid Host")?;
            Some(Authority::parse(s, scheme).map_err(|_| "invalid Host")?)
        }
        // HTTP/2 carries the authority in `:authority` (the target's),
        // and `Host` is optional there (RFC 9113 §8.3.1).
        None if parts.version == Version::HTTP_11 && parts.uri.authority().is_none() => {
            return Err("missing Host");
        }
        None => None,
    };
    match parts.uri.authority() {
        Some(target) => {
            // RFC 9113 §8.3.1: a Host that names another entity than
            // `:authority` makes the request malformed (as nginx answers
            // 400), rather than one of the two silently winning.
            if parts.version == Version::HTTP_2
                && host.as_ref().is_some_and(|h| {
                    Authority::parse(target.as_str(), scheme).ok().as_ref() != Some(h)
                })
            {
                return Err("Host differs from :authority");
            }
            if !parts
                .uri
                .scheme_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
            {
                return Err("absolute-form target must be http or https");
            }
            Authority::parse(target.as_str(), scheme)
                .map(Some)
                .map_err(|_| "invalid target authority")
        }
        None => Ok(host),
    }
}

/// The cache key of a `Location`-style target when it is on the same
/// origin as `authority` (RFC 9111 §4.4: only same-origin URIs may be
/// invalidated).
fn same_host_key(target: &str, authority: &Authority, opts: &KeyOptions) -> Option<String> {
    let scheme = authority.scheme().as_str();
    if target.starts_with('/') && !target.starts_with("//") {
        return Some(cache_key(scheme, authority.as_str(), target, opts));
    }
    let uri: http::Uri = target.parse().ok()?;
    if !uri.scheme_str()?.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let other = Authority::parse(uri.authority()?.as_str(), authority.scheme()).ok()?;
    (other == *authority).then(|| {
        cache_key(
            scheme,
            authority.as_str(),
            uri.path_and_query().map_or("/", |p| p.as_str()),
            opts,
        )
    })
}

/// How far [`Engine::handle_inner`] got without waiting: the answer, or
/// the rest of the work, boxed (it owns what it needs, the engine too).
// The answer is the hit path: returned and taken apart at once, never
// stored, so boxing it would only add an allocation per hit.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Step {
    Done(Served),
    Later(Pin<Box<dyn Future<Output = Served> + Send>>),
}

impl Step {
    /// The rest of the work, given its own handle on the engine (taken
    /// only here, so a hit clones no `Arc`).
    fn later<F>(engine: &Arc<Engine>, f: impl FnOnce(Arc<Engine>) -> F) -> Step
    where
        F: Future<Output = Served> + Send + 'static,
    {
        Step::Later(Box::pin(f(Arc::clone(engine))))
    }
}

/// The future of [`Engine::handle`]: a response ready at once (a hit, a
/// refusal), or the boxed work still to do. Either way a few hundred
/// bytes, which is what hyper moves around per request.
pub struct Handled(HandledInner);

enum HandledInner {
    Ready(std::future::Ready<Response<Body>>),
    Later(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl Handled {
    /// A response that is already there.
    pub fn ready(response: Response<Body>) -> Handled {
        Handled(HandledInner::Ready(std::future::ready(response)))
    }

    fn later(f: impl Future<Output = Response<Body>> + Send + 'static) -> Handled {
        Handled(HandledInner::Later(Box::pin(f)))
    }
}

impl Future for Handled {
    type Output = Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response<Body>> {
        match &mut self.get_mut().0 {
            HandledInner::Ready(r) => Pin::new(r).poll(cx),
            HandledInner::Later(f) => f.as_mut().poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalidation_targets_same_host_only_rfc9111_4_4() {
        let o = KeyOptions::default();
        let h = Authority::parse("h.test", Scheme::Http).expect("valid");
        assert_eq!(
            same_host_key("/a/b", &h, &o).as_deref(),
            Some("http://h.test/a/b")
        );
        assert_eq!(
            same_host_key("http://H.test:80/x", &h, &o).as_deref(),
            Some("http://h.test/x")
        );
        assert_eq!(same_host_key("http://other.test/x", &h, &o), None);
        assert_eq!(same_host_key("https://h.test/x", &h, &o), None);
        assert_eq!(same_host_key("//other.test/x", &h, &o), None);
    }

    fn parts(raw: &[(&str, &str)], target: &str, version: Version) -> Parts {
        let mut b = Request::builder().uri(target).version(version);
        for (k, v) in raw {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn one_authority_per_request_rfc9112_3_2() {
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a str,
            Version,
            Result<Option<&'a str>, ()>,
        );
        let v11 = Version::HTTP_11;
        let v2 = Version::HTTP_2;
        let cases: [Case; 13] = [
            (
                &[("host", "A.Example:80")],
                "/p",
                v11,
                Ok(Some("a.example")),
            ),
            (
                &[("host", "attacker.example")],
                "http://victim.example/p",
                v11,
                Ok(Some("victim.example")),
            ),
            (
                &[("host", "a.example"), ("host", "b.example")],
                "/p",
                v11,
                Err(()),
            ),
            (
                &[("host", "a.example"), ("host", "a.example")],
                "/p",
                v11,
                Err(()),
            ),
            (&[], "/p", v11, Err(())),
            (&[], "/p", Version::HTTP_10, Ok(None)),
            (&[("host", "a b")], "/p", v11, Err(())),
            (
                &[("host", "ok.example")],
                "http://bad@victim.example/p",
                v11,
                Err(()),
            ),
            (
                &[("host", "ok.example")],
                "ftp://victim.example/p",
                v11,
                Err(()),
            ),
            // HTTP/2 (RFC 9113 §8.3.1): `:authority`, and a Host naming
            // anything else is malformed.
            (&[], "http://a.example/p", v2, Ok(Some("a.example"))),
            (
                &[("host", "A.example:80")],
                "http://a.example/p",
                v2,
                Ok(Some("a.example")),
            ),
            (
                &[("host", "attacker.example")],
                "http://victim.example/p",
                v2,
                Err(()),
            ),
            (&[("host", "b.example")], "/p", v2, Ok(Some("b.example"))),
        ];
        for (headers, target, version, want) in cases {
            let got = requested_authority(&parts(headers, target, version), Scheme::Http)
                .map(|a| a.map(|a| a.as_str().to_owned()))
                .map_err(|_| ());
            assert_eq!(
                got,
                want.map(|a| a.map(str::to_owned)),
                "{headers:?} {target}"
            );
        }
    }
}
