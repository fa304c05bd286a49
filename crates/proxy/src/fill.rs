//! Going upstream for a cacheable request: collapsing concurrent misses,
//! revalidating stale entries, storing what may be stored, and serving
//! stale copies when the upstream fails.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use meridian_cache::status::detail;
use meridian_cache::store::Selector;
use meridian_cache::{
    CacheStatus, Entry, Fwd, Join, Lookup, NotStorable, Outcome, Reuse, Variant, policy,
};

use crate::body::Body;
use crate::compact;
use crate::engine::{Engine, Req, bump};
use crate::headers;
use crate::respond;
use crate::upstream::{FetchError, Fetched, Outgoing};

/// The result of taking in an upstream response.
enum Admitted {
    Stored(Arc<Entry>),
    /// Not stored: pass it on as it is.
    Passed {
        status: StatusCode,
        headers: HeaderMap,
        body: Body,
        reason: NotStorable,
    },
    /// The body broke off while it was being buffered.
    Broken(FetchError),
}

impl Engine {
    /// Miss or vary-miss: one fetch per key, the others wait for it.
    pub(crate) async fn fill(self: Arc<Self>, req: Req, fwd: Fwd) -> Response<Body> {
        match self.coalescer.join(&req.key) {
            Join::Leader(leader) => {
                // A fetch may have finished between our lookup and join.
                if let Lookup::Found(e) = self.store.lookup(&req.key, &req.parts.headers)
                    && e.reuse(SystemTime::now(), &Default::default()) == Reuse::Fresh
                {
                    leader.finish(Outcome::Stored(Arc::clone(&e)));
                    let mut cs = CacheStatus::forward(fwd);
                    cs.collapsed = true;
                    return self.serve(&req, &e, cs);
                }
                let (response, outcome) = self.fetch_and_admit(&req, fwd, None).await;
                leader.finish(outcome);
                response
            }
            Join::Follower(follower) => match follower.wait(self.collapse_wait).await {
                Some(Outcome::Stored(e)) if e.variant.matches(&req.parts.headers) => {
                    bump(&self.stats.collapsed);
                    let mut cs = CacheStatus::forward(fwd);
                    cs.collapsed = true;
                    cs.fwd_status = Some(e.status.as_u16());
                    self.serve(&req, &e, cs)
                }
                // Not storable, failed, another variant, or waited too long:
                // go upstream alone, at once.
                _ => self.fetch_and_admit(&req, fwd, None).await.0,
            },
        }
    }

    /// A stored response that must be validated before use.
    pub(crate) async fn revalidate(
        self: Arc<Self>,
        req: Req,
        entry: Arc<Entry>,
        fwd: Fwd,
    ) -> Response<Body> {
        let leader = match self.coalescer.join(&req.key) {
            Join::Leader(l) => l,
            Join::Follower(f) => {
                if let Some(Outcome::Stored(e)) = f.wait(self.collapse_wait).await
                    && e.variant.matches(&req.parts.headers)
                {
                    bump(&self.stats.collapsed);
                    let mut cs = CacheStatus::forward(fwd);
                    cs.collapsed = true;
                    return self.serve(&req, &e, cs);
                }
                return self.fetch_and_admit(&req, fwd, Some(&entry)).await.0;
            }
        };
        let (response, outcome) = self.fetch_and_admit(&req, fwd, Some(&entry)).await;
        leader.finish(outcome);
        response
    }

    /// RFC 5861 §3: refresh in the background, once — only the caller that
    /// becomes leader for the key starts a refresh.
    pub(crate) fn spawn_refresh(self: &Arc<Self>, req: &Req, entry: &Arc<Entry>) {
        let Join::Leader(leader) = self.coalescer.join(&req.key) else {
            return;
        };
        let engine = Arc::clone(self);
        let entry = Arc::clone(entry);
        let mut parts = req.parts.clone();
        parts.method = Method::GET;
        let bg = Req {
            parts,
            key: req.key.clone(),
            client_ip: req.client_ip,
            peer: req.peer,
            authority: req.authority.clone(),
        };
        tokio::spawn(async move {
            let (_response, outcome) = engine.fetch_and_admit(&bg, Fwd::Stale, Some(&entry)).await;
            leader.finish(outcome);
        });
    }

    /// Fetches the full representation (conditionally when `stale` is
    /// given), stores it when allowed, and builds this client's response.
    async fn fetch_and_admit(
        &self,
        req: &Req,
        fwd: Fwd,
        stale: Option<&Arc<Entry>>,
    ) -> (Response<Body>, Outcome) {
        let mut cs = CacheStatus::forward(fwd);
        let fetched = match self.fetch(req, stale.map(|e| &**e)).await {
            Ok(f) => f,
            Err(e) => {
                bump(&self.stats.upstream_errors);
                return (
                    self.upstream_failed(req, fwd, stale, e, None),
                    Outcome::NotStored,
                );
            }
        };
        let status = fetched.response.status();
        cs.fwd_status = Some(status.as_u16());
        if let Some(old) = stale {
            if status == StatusCode::NOT_MODIFIED {
                bump(&self.stats.revalidated);
                return self.freshen(req, old, fetched, cs);
            }
            if status.is_server_error()
                && old.freshness.usable_on_error(SystemTime::now(), self.grace)
            {
                return (self.serve_stale_on_error(req, old, cs), Outcome::NotStored);
            }
        }
        match self.admit(req, fetched).await {
            Admitted::Stored(entry) => {
                cs.stored = true;
                let resp = self.serve(req, &entry, cs);
                (resp, Outcome::Stored(entry))
            }
            Admitted::Passed {
                status,
                headers,
                body,
                reason,
            } => {
                if stale.is_some() {
                    // The URL's new answer may not be reused: drop the old one.
                    self.store.purge(&Selector::Key(req.key.clone()), false);
                }
                cs.detail = Some(reason.as_str());
                let body = if req.parts.method == Method::HEAD {
                    Body::Empty
                } else {
                    body
                };
                (
                    respond::passthrough(&self.stamp, status, headers, body, &cs),
                    Outcome::NotStored,
                )
            }
            Admitted::Broken(e) => {
                bump(&self.stats.upstream_errors);
                (
                    self.upstream_failed(req, fwd, stale, e, Some(status)),
                    Outcome::NotStored,
                )
            }
        }
    }

    /// Sends the cache fill upstream: always a GET for the whole
    /// representation; the client's own validators and Range are answered
    /// here, and a stale entry's validators are sent instead.
    async fn fetch(&self, req: &Req, stale: Option<&Entry>) -> Result<Fetched, FetchError> {
        let mut h = self.upstream_headers(req);
        headers::strip_client_validators(&mut h);
        // The fill is a bodiless GET, whatever the client sent.
        h.remove(header::CONTENT_LENGTH);
        if let Some(e) = stale {
            if let Some(etag) = e.headers.get(&header::ETAG) {
                h.insert(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = e.headers.get(&header::LAST_MODIFIED) {
                h.insert(header::IF_MODIFIED_SINCE, lm);
            }
        }
        let path_and_query = req.parts.uri.path_and_query().map_or("/", |p| p.as_str());
        self.upstreams
            .send(Outgoing {
                method: Method::GET,
                path_and_query,
                headers: h,
                body: Body::Empty,
                key: &req.key,
                client_ip: Some(req.client_ip),
            })
            .await
    }

    /// Stores the response when RFC 9111 allows and it fits, else streams it.
    async fn admit(&self, req: &Req, fetched: Fetched) -> Admitted {
        let Fetched {
            response,
            request_time,
            guard,
        } = fetched;
        let (mut rp, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut rp.headers);
        let response_time = SystemTime::now();
        let decision = policy::storable(
            &self.policy,
            &Method::GET,
            &req.parts.headers,
            rp.status,
            &rp.headers,
            request_time,
            response_time,
        );
        let declared = rp
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let freshness = match decision {
            Ok(_) if declared.is_some_and(|n| n > self.max_object_size) => {
                Err(NotStorable::TooLarge)
            }
            other => other,
        };
        let freshness = match freshness {
            Ok(f) => f,
            Err(reason) => {
                let body = Body::Stream {
                    prefix: VecDeque::new(),
                    rest: body,
                    guard: Some(guard),
                };
                return Admitted::Passed {
                    status: rp.status,
                    headers: rp.headers,
                    body,
                    reason,
                };
            }
        };
        match buffer(
            body,
            self.max_object_size,
            declared,
            self.upstreams.response_timeout(),
        )
        .await
        {
            Buffered::Complete(bytes) => {
                drop(guard);
                let variant = Variant::new(&rp.headers, &req.parts.headers);
                let headers = compact::stored_headers(&rp.headers, bytes.len(), &self.stamp.via);
                let entry = Arc::new(Entry::new(rp.status, headers, bytes, freshness, variant));
                self.store.insert(&req.key, Arc::clone(&entry));
                bump(&self.stats.stored);
                Admitted::Stored(entry)
            }
            Buffered::TooLarge(prefix, rest) => {
                let body = Body::Stream {
                    prefix,
                    rest,
                    guard: Some(guard),
                };
                Admitted::Passed {
                    status: rp.status,
                    headers: rp.headers,
                    body,
                    reason: NotStorable::TooLarge,
                }
            }
            Buffered::Failed(why) => {
                Admitted::Broken(FetchError::Other("upstream body".into(), why))
            }
        }
    }

    /// RFC 9111 §4.3.4: a 304 freshens the stored response's headers.
    fn freshen(
        &self,
        req: &Req,
        old: &Arc<Entry>,
        fetched: Fetched,
        mut cs: CacheStatus,
    ) -> (Response<Body>, Outcome) {
        let Fetched {
            response,
            request_time,
            ..
        } = fetched;
        let mut updates = response.into_parts().0.headers;
        headers::remove_hop_by_hop(&mut updates);
        let mut merged = old.headers.to_map(0);
        // §3.2: every field in the 304 replaces the stored one, except
        // Content-Length and what describes the stored body's bytes.
        let names: Vec<HeaderName> = updates
            .keys()
            .filter(|n| {
                **n != header::CONTENT_LENGTH
                    && **n != header::CONTENT_ENCODING
                    && **n != header::CONTENT_RANGE
            })
            .cloned()
            .collect();
        for n in &names {
            merged.remove(n);
        }
        for n in names {
            for v in updates.get_all(&n) {
                merged.append(n.clone(), v.clone());
            }
        }
        let merged = compact::stored_headers(&merged, old.body.len(), &self.stamp.via);
        let now = SystemTime::now();
        match policy::storable(
            &self.policy,
            &Method::GET,
            &req.parts.headers,
            old.status,
            &merged,
            request_time,
            now,
        ) {
            Ok(freshness) => {
                let entry = Arc::new(Entry::new(
                    old.status,
                    merged,
                    old.body.clone(),
                    freshness,
                    old.variant.clone(),
                ));
                self.store.insert(&req.key, Arc::clone(&entry));
                cs.stored = true;
                (self.serve(req, &entry, cs), Outcome::Stored(entry))
            }
            Err(reason) => {
                self.store.purge(&Selector::Key(req.key.clone()), false);
                cs.detail = Some(reason.as_str());
                let freshness = policy::Freshness {
                    lifetime: Duration::ZERO,
                    ..old.freshness.clone()
                };
                let entry = Entry::new(
                    old.status,
                    merged,
                    old.body.clone(),
                    freshness,
                    old.variant.clone(),
                );
                (self.serve(req, &entry, cs), Outcome::NotStored)
            }
        }
    }

    /// The upstream failed: a stale copy if RFC 5861 / the grace allows it,
    /// else the error.
    fn upstream_failed(
        &self,
        req: &Req,
        fwd: Fwd,
        stale: Option<&Arc<Entry>>,
        e: FetchError,
        status: Option<StatusCode>,
    ) -> Response<Body> {
        let mut cs = CacheStatus::forward(fwd);
        cs.fwd_status = status.map(|s| s.as_u16());
        if let Some(old) = stale
            && old.freshness.usable_on_error(SystemTime::now(), self.grace)
        {
            return self.serve_stale_on_error(req, old, cs);
        }
        cs.detail = Some(e.detail());
        respond::error(&self.stamp, e.status(), &e.to_string(), &cs)
    }

    fn serve_stale_on_error(&self, req: &Req, old: &Entry, mut cs: CacheStatus) -> Response<Body> {
        bump(&self.stats.stale_served);
        cs.fwd = Some(Fwd::Stale);
        cs.detail = Some(detail::STALE_IF_ERROR);
        // RFC 9111 §4.2.4 wants stale responses marked; with Warning
        // obsoleted, Cache-Status (fwd=stale; detail=stale-if-error) does it.
        self.serve(req, old, cs)
    }

    fn serve(&self, req: &Req, entry: &Entry, cs: CacheStatus) -> Response<Body> {
        respond::from_entry(
            &self.stamp,
            &req.parts.method,
            &req.parts.headers,
            entry,
            cs,
            SystemTime::now(),
        )
    }
}

enum Buffered {
    Complete(Bytes),
    /// Over the object size limit: what was read so far, then the rest.
    TooLarge(VecDeque<Bytes>, Incoming),
    Failed(String),
}

/// Reads a body into memory up to `max` bytes; each chunk must arrive
/// within `idle`.
async fn buffer(mut body: Incoming, max: u64, declared: Option<u64>, idle: Duration) -> Buffered {
    let mut chunks: VecDeque<Bytes> = VecDeque::new();
    let mut total: u64 = 0;
    loop {
        match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Buffered::Failed("timed out reading the body".into()),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Buffered::Failed(e.to_string()),
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    total += data.len() as u64;
                    chunks.push_back(data);
                    if total > max {
                        return Buffered::TooLarge(chunks, body);
                    }
                }
            }
        }
    }
    if declared.is_some_and(|d| d != total) {
        return Buffered::Failed(format!(
            "body was {total} bytes, Content-Length said {declared:?}"
        ));
    }
    Buffered::Complete(match chunks.len() {
        0 => Bytes::new(),
        // A lone chunk is a slice of hyper's read buffer: copy it so the
        // entry does not pin that buffer (see `compact`).
        1 => compact::stored_body(chunks.pop_front().unwrap_or_default()),
        _ => {
            // One copy, once, on the miss path, so every hit shares one buffer.
            let mut all = BytesMut::with_capacity(total as usize);
            for c in chunks {
                all.extend_from_slice(&c);
            }
            all.freeze()
        }
    })
}
