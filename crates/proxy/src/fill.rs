//! Going upstream for a cacheable request: collapsing concurrent misses,
//! streaming fills that every collapsed request reads while they arrive,
//! revalidating stale entries, and serving stale copies when the upstream
//! fails.
//!
//! ```text
//! join ─┬─ leader ── fetch ─┬─ 304 ─────────────► freshen the stored entry
//!       │                   ├─ not storable ────► pass through (one client)
//!       │                   ├─ no fill budget ──► pass through (one client)
//!       │                   └─ storable ──► Filling ── publish to followers
//!       │                                     │
//!       │                    pump task ───────┤ (upstream speed, survives
//!       │                    appends chunks   │  the client leaving)
//!       │                                     ├─ done ──► insert (if no purge
//!       │                                     │           since the fetch began)
//!       │                                     ├─ too big / out of budget ──► pass:
//!       │                                     │   stop storing, backpressure
//!       │                                     └─ failed ──► every reader cut
//!       └─ follower ── wait (bounded) for headers ─┬─ Filling ─► read it
//!                                                  ├─ Stored ──► serve it
//!                                                  └─ else ────► fetch alone
//! ```
//!
//! A fill has a total deadline, `timeouts.fill`, from the moment its
//! request leaves to its last body byte, whatever the pace of the pieces
//! between (the response timeout bounds only each wait): a trickling
//! origin cannot hold a client and everything collapsed onto it. Before
//! the head, expiry is a timeout (504); after it, the fill fails, nothing
//! is stored and every reader's body is cut off. A fill that stopped
//! storing (too large, out of budget) is no longer held to it: its pace
//! is its slowest client's, not the origin's.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use http::header;
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use meridian_balance::InFlight;
use meridian_cache::coalesce::{Follower, Leader};
use meridian_cache::status::detail;
use meridian_cache::{
    CacheStatus, Entry, FillHead, FillWriter, Filling, Fwd, Join, Lookup, NotStorable, Outcome,
    Reuse, head, policy,
};

use crate::body::{Body, FillBody};
use crate::compact;
use crate::engine::{Engine, Req};
use crate::headers;
use crate::outcome::{Served, bump};
use crate::respond::{self, Plan};
use crate::upstream::{FetchError, Fetched, Outgoing};

/// What a reader got from a fill.
enum Attached {
    Ready(Served),
    /// A range that needs the whole body (several ranges, or an unknown
    /// length): answer from the finished entry.
    AfterFill(CacheStatus),
    /// The fill takes no more readers (it stopped storing, or failed).
    Gone,
}

impl Engine {
    /// Miss or vary-miss: one fetch per key, the others read it.
    pub(crate) async fn fill(self: &Arc<Self>, req: Req, fwd: Fwd) -> Served {
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
                self.fetch_and_admit(&req, fwd, None, Some(leader)).await
            }
            Join::Follower(follower) => self.follow(&req, fwd, follower, None).await,
        }
    }

    /// A stored response that must be validated before use.
    pub(crate) async fn revalidate(
        self: &Arc<Self>,
        req: Req,
        entry: Arc<Entry>,
        fwd: Fwd,
    ) -> Served {
        match self.coalescer.join(&req.key) {
            Join::Leader(l) => self.fetch_and_admit(&req, fwd, Some(&entry), Some(l)).await,
            Join::Follower(f) => self.follow(&req, fwd, f, Some(&entry)).await,
        }
    }

    /// A collapsed request: read the leader's fill (or its stored entry);
    /// when there is none to read, go upstream alone, at once.
    async fn follow(
        self: &Arc<Self>,
        req: &Req,
        fwd: Fwd,
        follower: Follower,
        stale: Option<&Arc<Entry>>,
    ) -> Served {
        let mut cs = req.forward_status(fwd);
        cs.collapsed = true;
        match follower.wait(self.collapse_wait).await {
            Some(Outcome::Stored(e)) if self.variant_serves(&e.variant, &req.parts.headers) => {
                cs.fwd_status = Some(e.status.as_u16());
                return self.serve(req, &e, cs);
            }
            Some(Outcome::Filling(f))
                if self.variant_serves(&f.head.variant, &req.parts.headers) =>
            {
                cs.fwd_status = Some(f.head.status.as_u16());
                if let Some(served) = self.read_fill(req, &f, cs).await {
                    return served;
                }
            }
            // Not storable, failed, another variant, or waited too long.
            _ => {}
        }
        self.fetch_and_admit(req, fwd, stale, None).await
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
            purge_lag: false,
        };
        tokio::spawn(async move {
            // Nobody reads the answer; the fill it starts stores itself.
            let _response = engine
                .fetch_and_admit(&bg, Fwd::Stale, Some(&entry), Some(leader))
                .await;
        });
    }

    /// Fetches the full representation (conditionally when `stale` is
    /// given) and builds this client's response. `leader`, when given,
    /// hands the outcome to the collapsed requests (dropping it tells them
    /// to fetch on their own).
    async fn fetch_and_admit(
        self: &Arc<Self>,
        req: &Req,
        fwd: Fwd,
        stale: Option<&Arc<Entry>>,
        leader: Option<Leader>,
    ) -> Served {
        let mut cs = req.forward_status(fwd);
        // Taken before the request leaves: a purge from here on wins.
        let generation = self.store.generation();
        let deadline = Instant::now() + self.upstreams.fill_timeout();
        let mut fetched = match self.fetch(req, stale.map(|e| &**e), deadline).await {
            Ok(f) => f,
            Err(e) => return self.upstream_failed(req, fwd, stale, e, None),
        };
        if let Some(old) = stale
            && fetched.response.status() == StatusCode::NOT_MODIFIED
            && !validators_match(&old.headers, fetched.response.headers())
        {
            // RFC 9111 §4.3.4: a 304 whose validator is not the stored
            // one's updates nothing; the stored body is not the current
            // one, so fetch that, unconditionally.
            drop(fetched);
            fetched = match self.fetch(req, None, deadline).await {
                Ok(f) if f.response.status() == StatusCode::NOT_MODIFIED => {
                    let e = FetchError::Other(
                        "(revalidation)".into(),
                        "304 to an unconditional request".into(),
                    );
                    return self.upstream_failed(req, fwd, stale, e, None);
                }
                Ok(f) => f,
                Err(e) => return self.upstream_failed(req, fwd, stale, e, None),
            };
        }
        let status = fetched.response.status();
        cs.fwd_status = Some(status.as_u16());
        if let Some(old) = stale {
            if status == StatusCode::NOT_MODIFIED {
                let (served, outcome) = self.freshen(req, old, fetched, cs, generation);
                if let Some(l) = leader {
                    l.finish(outcome);
                }
                return served;
            }
            // A 5xx never replaces a copy that may still be served stale
            // (as Varnish's grace and Fastly's serve-stale): that copy is
            // served and kept. A stored error is not such a copy.
            if status.is_server_error()
                && !old.status.is_server_error()
                && !req.purge_lag
                && old.usable_on_error(SystemTime::now(), self.grace)
            {
                return self.serve_stale_on_error(req, old, cs);
            }
        }
        self.admit(req, fetched, cs, stale, leader, (generation, deadline))
            .await
    }

    /// Sends the cache fill upstream: always a GET for the whole
    /// representation; the client's own validators and Range are answered
    /// here, and a stale entry's validators are sent instead. The head is
    /// due by the fill's `deadline`.
    async fn fetch(
        &self,
        req: &Req,
        stale: Option<&Entry>,
        deadline: Instant,
    ) -> Result<Fetched, FetchError> {
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
        let out = Outgoing {
            method: Method::GET,
            path_and_query,
            headers: h,
            body: Body::Empty,
            key: &req.key,
            client_ip: Some(req.client_ip),
        };
        self.upstreams.send_by(out, Some(deadline)).await
    }

    /// Takes in an upstream response: a storable one becomes a fill that
    /// this client (and every collapsed one) reads while it arrives; any
    /// other streams through to this client alone. The last argument is the
    /// store generation when the fetch began and the fill's deadline.
    async fn admit(
        self: &Arc<Self>,
        req: &Req,
        fetched: Fetched,
        mut cs: CacheStatus,
        stale: Option<&Arc<Entry>>,
        leader: Option<Leader>,
        (generation, deadline): (u64, Instant),
    ) -> Served {
        let Fetched {
            response,
            request_time,
            guard,
        } = fetched;
        let (mut rp, body) = response.into_parts();
        headers::remove_hop_by_hop(&mut rp.headers);
        let decision = policy::storable(
            &self.policy,
            &Method::GET,
            &req.parts.headers,
            rp.status,
            &rp.headers,
            request_time,
            SystemTime::now(),
        );
        let declared = content_length(&rp.headers);
        let decision = match decision {
            Ok(_) if declared.is_some_and(|n| n > self.max_object_size) => {
                Err(NotStorable::TooLarge)
            }
            other => other,
        };
        let freshness = match decision {
            Ok(f) => f,
            Err(reason) => {
                if let Some(old) = stale
                    && !rp.status.is_server_error()
                {
                    // This URL's new answer may not be reused: drop the
                    // variant it replaces, and only that one. An unstorable
                    // 5xx says nothing about the representation: the copy
                    // stays for a later stale-if-error or max-stale.
                    self.store.remove(&req.key, old);
                }
                cs.detail = Some(reason.as_str());
                return self.pass_through(req, rp, body, guard, &cs);
            }
        };
        // A body of known length takes its whole budget up front; one of
        // unknown length is charged as it arrives.
        let reserved = declared.unwrap_or(0);
        if !self.fill_budget.try_reserve(reserved) {
            cs.detail = Some(detail::FILL_BUDGET);
            return self.pass_through(req, rp, body, guard, &cs);
        }
        let variant = self.fill_variant(&mut rp.headers, &req.parts.headers, rp.status, declared);
        let head = FillHead {
            status: rp.status,
            variant,
            headers: compact::fill_headers(&rp.headers, declared, &self.stamp.via),
            freshness,
            declared_len: declared,
            generation,
        };
        let (fill, writer) = Filling::new(head, Arc::clone(&self.fill_budget), reserved);
        if let Some(l) = &leader {
            l.publish(Outcome::Filling(Arc::clone(&fill)));
        }
        // This client attaches before the first byte is appended.
        cs.stored = true;
        let failed = CacheStatus {
            stored: false,
            detail: Some("upstream-error"),
            ..cs.clone()
        };
        let attached = self.attach(req, &fill, cs);
        tokio::spawn(Arc::clone(self).pump(
            req.key.clone(),
            req.parts.headers.clone(),
            writer,
            body,
            (guard, deadline),
            leader,
        ));
        match self.answer(req, &fill, attached).await {
            Some(served) => served,
            None => {
                let r = respond::error(
                    &self.stamp,
                    StatusCode::BAD_GATEWAY,
                    "the upstream body failed",
                    &failed,
                );
                (r, failed)
            }
        }
    }

    /// Streams an upstream response through to this client, unstored.
    fn pass_through(
        &self,
        req: &Req,
        rp: http::response::Parts,
        body: Incoming,
        guard: InFlight,
        cs: &CacheStatus,
    ) -> Served {
        let body = if req.parts.method == Method::HEAD {
            Body::Empty
        } else {
            Body::Stream {
                prefix: VecDeque::new(),
                rest: body,
                guard: Some(guard),
            }
        };
        let r = respond::passthrough(&self.stamp, rp.status, rp.headers, body, cs);
        (r, cs.clone())
    }

    /// Reads a fill for one request: at once where the head answers it,
    /// else once the whole body is in. `None` when the fill cannot serve it
    /// (it stopped storing or failed): fetch alone.
    async fn read_fill(&self, req: &Req, fill: &Arc<Filling>, cs: CacheStatus) -> Option<Served> {
        let attached = self.attach(req, fill, cs);
        self.answer(req, fill, attached).await
    }

    async fn answer(&self, req: &Req, fill: &Arc<Filling>, attached: Attached) -> Option<Served> {
        match attached {
            Attached::Ready(r) => Some(r),
            Attached::Gone => None,
            Attached::AfterFill(cs) => {
                let body = fill.finished().await.ok()?;
                let h = &fill.head;
                let headers = compact::stored_headers(&h.headers, body.len(), &self.stamp.via);
                let entry = Entry::new(
                    h.status,
                    headers,
                    body,
                    h.freshness.clone(),
                    h.variant.clone(),
                );
                Some(self.serve(req, &entry, cs))
            }
        }
    }

    /// Judges the request against the fill's head and, where it needs
    /// body bytes, attaches a reader (a single range reads only its bytes).
    fn attach(&self, req: &Req, fill: &Arc<Filling>, mut cs: CacheStatus) -> Attached {
        let head = &fill.head;
        let plan = respond::plan(
            &self.stamp,
            &req.parts.method,
            &req.parts.headers,
            head.status,
            head.headers.clone(),
            &head.freshness,
            &mut cs,
            SystemTime::now(),
            head.declared_len,
        );
        let (h, range) = match plan {
            Plan::Done(r) => return Attached::Ready((r, cs)),
            Plan::NeedsLength => return Attached::AfterFill(cs),
            Plan::Ranges(h, ranges) => match (ranges.as_slice(), head.declared_len) {
                ([one], Some(len)) => (h, Some((*one, len))),
                _ => return Attached::AfterFill(cs),
            },
            Plan::Full(h) => (h, None),
        };
        let body = if req.parts.method == Method::HEAD {
            Body::Empty
        } else {
            let (start, end, len) = match range {
                Some((r, _)) => (r.start, Some(r.end + 1), Some(r.size())),
                None => (0, None, head.declared_len),
            };
            match fill.reader(start, end) {
                Some(reader) => Body::Fill(FillBody::new(reader, len)),
                None => return Attached::Gone,
            }
        };
        let r = respond::from_fill(&self.stamp, head.status, h, body, range, &cs);
        Attached::Ready((r, cs))
    }

    /// Backpressure for a fill that stopped storing: waits until the
    /// slowest reader is within `cache.pass-window`. False (and the fill
    /// failed) when every reader left or none moved for `idle`.
    async fn wait_for_readers(&self, writer: &FillWriter, idle: Duration) -> bool {
        loop {
            let (lead, readers) = writer.lead();
            if readers == 0 {
                writer.fail("every reader left");
                return false;
            }
            if lead < self.pass_window {
                return true;
            }
            if tokio::time::timeout(idle, writer.reader_moved())
                .await
                .is_err()
            {
                writer.fail("readers stalled");
                return false;
            }
        }
    }

    /// Owns the upstream body: appends it to the fill at upstream speed
    /// (whatever the readers do) and, when it is complete, stores it unless
    /// a purge since the fetch began covers it. Once the fill stops
    /// storing, it runs at most `cache.pass-window` ahead of the slowest
    /// reader, and stops when every reader has gone. While it stores, the
    /// body must be in by `deadline` (`timeouts.fill`).
    async fn pump(
        self: Arc<Self>,
        key: String,
        req_headers: HeaderMap,
        writer: FillWriter,
        mut body: Incoming,
        (mut guard, deadline): (InFlight, Instant),
        mut leader: Option<Leader>,
    ) {
        let _in_flight = self.metrics.fill_started();
        let idle = self.upstreams.response_timeout();
        let fill = Arc::clone(writer.fill());
        let declared = fill.head.declared_len;
        let mut storing = true;
        loop {
            if !storing && !self.wait_for_readers(&writer, idle).await {
                return;
            }
            let due = Instant::now() + idle;
            let by = if storing { due.min(deadline) } else { due };
            let frame = match tokio::time::timeout_at(by, body.frame()).await {
                Err(_) if by < due => {
                    tracing::info!(
                        "fill deadline (timeouts.fill) passed with {} bytes in",
                        fill.len()
                    );
                    writer.fail("the fill deadline passed");
                    return;
                }
                Err(_) => {
                    writer.fail("timed out reading the upstream body");
                    return;
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    self.upstreams
                        .pool()
                        .report(&mut guard, meridian_balance::Outcome::Reset);
                    writer.fail(format!("upstream body: {e}"));
                    return;
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            let n = data.len() as u64;
            if storing && declared.is_none() && !writer.charge(n) {
                storing = false; // out of budget
            }
            let len = writer.append(data);
            if storing && (len > self.max_object_size || declared.is_some_and(|d| len > d)) {
                storing = false;
            }
            if !storing && writer.pass() {
                // Newcomers fetch on their own from now on.
                leader.take();
            }
        }
        drop(guard);
        if let Some(d) = declared
            && d != fill.len()
        {
            writer.fail(format!(
                "body was {} bytes, Content-Length said {d}",
                fill.len()
            ));
            return;
        }
        let Some(body) = writer.finish() else {
            return;
        };
        let head = &fill.head;
        let headers = compact::stored_headers(&head.headers, body.len(), &self.stamp.via);
        let entry = Arc::new(
            Entry::new(
                head.status,
                headers,
                body,
                head.freshness.clone(),
                head.variant.clone(),
            )
            .fetched_under(head.generation),
        );
        if self.store.insert(&key, Arc::clone(&entry), &req_headers) {
            bump(&self.stats.stored);
            if let Some(l) = leader {
                l.finish(Outcome::Stored(entry));
            }
        }
        // Refused (a purge since the fetch began covers it): the leader,
        // dropped here, tells late followers to fetch on their own.
    }

    /// RFC 9111 §4.3.4: a 304 freshens the stored response's headers.
    fn freshen(
        &self,
        req: &Req,
        old: &Arc<Entry>,
        fetched: Fetched,
        mut cs: CacheStatus,
        generation: u64,
    ) -> (Served, Outcome) {
        let Fetched {
            response,
            request_time,
            ..
        } = fetched;
        let mut updates = response.into_parts().0.headers;
        headers::remove_hop_by_hop(&mut updates);
        // §3.2: every field in the 304 replaces the stored one, except
        // Content-Length and what describes the stored body's bytes.
        let merged = head::merge_updates(&old.headers, &updates);
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
                let entry = Arc::new(
                    Entry::new(
                        old.status,
                        merged,
                        old.body.clone(),
                        freshness,
                        old.variant.clone(),
                    )
                    .fetched_under(generation),
                );
                cs.stored = self
                    .store
                    .insert(&req.key, Arc::clone(&entry), &req.parts.headers);
                (self.serve(req, &entry, cs), Outcome::Stored(entry))
            }
            Err(reason) => {
                // Only the variant that was revalidated goes.
                self.store.remove(&req.key, old);
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

    /// RFC 9111 §4.3.5: a HEAD this node forwarded upstream was answered;
    /// the stored GET it could have been served from is updated from it
    /// (same validators and length) or made stale (another representation).
    /// A request with `no-store` only makes it stale: nothing of that
    /// exchange may be stored (§5.2.1.5). `sent` is the key, the request's
    /// fields, when the HEAD was sent and the store generation then (a
    /// purge since then wins over the update).
    pub(crate) fn head_answered(
        &self,
        sent: (&str, &HeaderMap, SystemTime, u64),
        status: StatusCode,
        resp: &HeaderMap,
    ) {
        let (key, req_headers, request_time, generation) = sent;
        let Lookup::Found(old) = self.store.lookup(key, req_headers) else {
            return;
        };
        let no_store = meridian_cache::CacheControl::from_cache_control(req_headers).no_store;
        match head::head_update(status, &old.headers, old.body.len() as u64, resp) {
            head::HeadUpdate::Ignore => {}
            head::HeadUpdate::Update if no_store => {}
            head::HeadUpdate::Stale => old.invalidate(),
            head::HeadUpdate::Update => {
                let merged = head::merge_updates(&old.headers, resp);
                let merged = compact::stored_headers(&merged, old.body.len(), &self.stamp.via);
                match policy::storable(
                    &self.policy,
                    &Method::GET,
                    req_headers,
                    old.status,
                    &merged,
                    request_time,
                    SystemTime::now(),
                ) {
                    Ok(freshness) => {
                        let entry = Entry::new(
                            old.status,
                            merged,
                            old.body.clone(),
                            freshness,
                            old.variant.clone(),
                        )
                        .fetched_under(generation);
                        self.store.insert(key, Arc::new(entry), req_headers);
                    }
                    // It may no longer be stored (now `no-store`): only
                    // this variant goes.
                    Err(_) => self.store.remove(key, &old),
                }
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
    ) -> Served {
        let mut cs = req.forward_status(fwd);
        cs.fwd_status = status.map(|s| s.as_u16());
        if let Some(old) = stale
            && !req.purge_lag
            && old.usable_on_error(SystemTime::now(), self.grace)
        {
            return self.serve_stale_on_error(req, old, cs);
        }
        cs.detail = Some(e.detail());
        let r = respond::error(&self.stamp, e.status(), &e.to_string(), &cs);
        (r, cs)
    }

    fn serve_stale_on_error(&self, req: &Req, old: &Entry, mut cs: CacheStatus) -> Served {
        cs.fwd = Some(Fwd::Stale);
        cs.detail = Some(detail::STALE_IF_ERROR);
        // RFC 9111 §4.2.4 wants stale responses marked; with Warning
        // obsoleted, Cache-Status (fwd=stale; detail=stale-if-error) does it.
        self.serve(req, old, cs)
    }

    fn serve(&self, req: &Req, entry: &Entry, mut cs: CacheStatus) -> Served {
        let r = respond::from_entry(
            &self.stamp,
            &req.parts.method,
            &req.parts.headers,
            entry,
            &mut cs,
            SystemTime::now(),
        );
        (r, cs)
    }
}

/// RFC 9111 §4.3.4: whether a 304 selects the stored response it
/// answered. A strong ETag must match the stored one strongly, a weak one
/// weakly; without an ETag, a Last-Modified must equal the stored one; a
/// 304 with neither selects it (there is only one stored response here).
fn validators_match(stored: &meridian_cache::Fields, updates: &HeaderMap) -> bool {
    use meridian_cache::conditional::{etag_matches_strong, etag_matches_weak};
    if let Some(new) = updates.get(header::ETAG) {
        let Some(old) = stored.get(&header::ETAG) else {
            return false;
        };
        let (old, new) = (old.as_bytes(), new.as_bytes());
        return if new.starts_with(b"W/") {
            etag_matches_weak(old, new)
        } else {
            etag_matches_strong(old, new)
        };
    }
    match updates.get(header::LAST_MODIFIED) {
        Some(new) => stored
            .get(&header::LAST_MODIFIED)
            .is_some_and(|old| old == new),
        None => true,
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    let mut values = h.get_all(header::CONTENT_LENGTH).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v.to_str().ok()?.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::validators_match;
    use http::HeaderMap;
    use meridian_cache::Fields;

    fn fields(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn a_304_selects_the_stored_response_only_by_its_validator_rfc9111_4_3_4() {
        let lm = "Tue, 01 Dec 2026 10:00:00 GMT";
        let other_lm = "Tue, 01 Dec 2026 11:00:00 GMT";
        for (stored, update, selects) in [
            (vec![("etag", "\"a\"")], vec![("etag", "\"a\"")], true),
            (vec![("etag", "\"a\"")], vec![("etag", "\"b\"")], false),
            (vec![("etag", "W/\"a\"")], vec![("etag", "\"a\"")], false),
            (vec![("etag", "W/\"a\"")], vec![("etag", "W/\"a\"")], true),
            (vec![("etag", "\"a\"")], vec![("etag", "W/\"a\"")], true),
            (vec![], vec![("etag", "\"a\"")], false),
            (
                vec![("last-modified", lm)],
                vec![("last-modified", lm)],
                true,
            ),
            (
                vec![("last-modified", lm)],
                vec![("last-modified", other_lm)],
                false,
            ),
            (vec![("etag", "\"a\"")], vec![], true),
        ] {
            let stored = Fields::from_map(&fields(&stored));
            assert_eq!(
                validators_match(&stored, &fields(&update)),
                selects,
                "{stored:?} / {update:?}"
            );
        }
    }
}
