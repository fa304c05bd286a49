//! Whether a response may be stored (RFC 9111 §3), how long it stays fresh
//! (§4.2.1, §4.2.2), how old it is (§4.2.3), and whether a stored response
//! may be reused for a request (§4, RFC 5861). Every function takes `now`
//! so each rule is table-tested without sleeping.

use std::time::{Duration, SystemTime};

use http::header::{
    AUTHORIZATION, DATE, ETAG, EXPIRES, HeaderName, LAST_MODIFIED, SET_COOKIE, VARY,
};
use http::{HeaderMap, Method, StatusCode};

use crate::cache_control::{CDN_CACHE_CONTROL, CacheControl, SURROGATE_CONTROL};

/// Knobs of the storage and freshness policy; defaults in brackets.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Heuristic freshness = this fraction of (Date − Last-Modified) [0.1],
    /// the value RFC 9111 §4.2.2 suggests ("no more than some fraction,
    /// typical setting 10%").
    pub heuristic_fraction: f64,
    /// Cap on heuristic freshness [1 day].
    pub heuristic_max: Duration,
    /// Store responses that carry `Set-Cookie` [false]: a shared cache would
    /// hand one user's cookie to everyone.
    pub store_set_cookie: bool,
    /// Targeted fields this cache obeys, highest precedence first
    /// [CDN-Cache-Control, Surrogate-Control] (RFC 9213 §2.2).
    pub targets: Vec<HeaderName>,
    /// Cap on the freshness (and the RFC 5861 stale windows) of a stored
    /// 5xx [10 s]: an origin that marks its errors `max-age=86400` cannot
    /// pin an outage in the cache for a day.
    pub error_max_ttl: Duration,
}

/// [`Policy::error_max_ttl`] default.
pub const DEFAULT_ERROR_MAX_TTL: Duration = Duration::from_secs(10);

impl Default for Policy {
    fn default() -> Self {
        Policy {
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(86_400),
            store_set_cookie: false,
            targets: vec![CDN_CACHE_CONTROL.clone(), SURROGATE_CONTROL.clone()],
            error_max_ttl: DEFAULT_ERROR_MAX_TTL,
        }
    }
}

/// Why a response was not stored; feeds `Cache-Status: detail=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStorable {
    Method,
    Status,
    RequestNoStore,
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryStar,
    /// Nothing says it may be stored: no explicit freshness, not public, not
    /// a heuristically cacheable status.
    NoFreshness,
    /// Fresh for zero seconds and no validator to revalidate with: it could
    /// never be reused.
    NotReusable,
    TooLarge,
}

impl NotStorable {
    pub fn as_str(self) -> &'static str {
        match self {
            NotStorable::Method => "method",
            NotStorable::Status => "status",
            NotStorable::RequestNoStore => "request-no-store",
            NotStorable::NoStore => "no-store",
            NotStorable::Private => "private",
            NotStorable::Authorization => "authorization",
            NotStorable::SetCookie => "set-cookie",
            NotStorable::VaryStar => "vary-star",
            NotStorable::NoFreshness => "no-freshness",
            NotStorable::NotReusable => "not-reusable",
            NotStorable::TooLarge => "too-large",
        }
    }
}

/// RFC 9110 §15.1: status codes that are heuristically cacheable.
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// RFC 9111 §4.2.2: heuristic freshness is allowed for a heuristically
/// cacheable status, or a response marked `public`. Meridian narrows
/// `public` to statuses below 500: a 5xx, like a status this cache does
/// not know (599), is stored only with explicit freshness, as Varnish and
/// Fastly keep errors only when told how long.
fn heuristic_allowed(status: StatusCode, cc: &CacheControl) -> bool {
    heuristically_cacheable(status) || (cc.public && status.as_u16() < 500)
}

/// The directives that govern this cache: the first targeted field present
/// (RFC 9213 §2.2), else Cache-Control. `targeted` tells that Cache-Control
/// and Expires must be ignored. A targeted field is a Structured Field
/// (RFC 9213 §2.1) except Surrogate-Control; one that does not parse, or
/// holds no directive this cache understands, is passed over.
pub fn response_directives(policy: &Policy, headers: &HeaderMap) -> (CacheControl, bool) {
    for name in &policy.targets {
        let cc = if *name == SURROGATE_CONTROL {
            CacheControl::from_headers(headers, name)
        } else {
            CacheControl::from_structured(headers, name)
        };
        if let Some(cc) = cc
            && cc != CacheControl::default()
        {
            return (cc, true);
        }
    }
    (CacheControl::from_cache_control(headers), false)
}

/// What is remembered about a stored response's freshness and age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Freshness {
    /// When the response was received (RFC 9111 §4.2.3 `response_time`).
    pub response_time: SystemTime,
    /// §4.2.3 `corrected_initial_age`.
    pub corrected_initial_age: Duration,
    /// §4.2.1 freshness_lifetime.
    pub lifetime: Duration,
    /// True when the lifetime came from §4.2.2 heuristics.
    pub heuristic: bool,
    /// RFC 5861 §3 window after expiry in which a stale copy may be served
    /// while it is refreshed.
    pub stale_while_revalidate: Duration,
    /// RFC 5861 §4 window after expiry in which a stale copy may be served
    /// when the upstream fails.
    pub stale_if_error: Duration,
    /// must-revalidate, proxy-revalidate or s-maxage (§5.2.2.2, §5.2.2.8,
    /// §5.2.2.10): never serve stale without validation.
    pub must_revalidate: bool,
    /// no-cache (§5.2.2.4): validate before every reuse.
    pub no_cache: bool,
}

/// Decides whether a response to `method` may be stored and, if so, its
/// freshness. `request_time` is when the request went upstream.
pub fn storable(
    policy: &Policy,
    method: &Method,
    req: &HeaderMap,
    status: StatusCode,
    resp: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Result<Freshness, NotStorable> {
    // §3: only GET is stored; HEAD is answered from a stored GET.
    if method != Method::GET {
        return Err(NotStorable::Method);
    }
    // §3: a final status; 206 and 304 are not complete responses. Any
    // other final status may be stored, 5xx included, when its freshness
    // allows (below).
    let code = status.as_u16();
    if code < 200 || code == 206 || code == 304 {
        return Err(NotStorable::Status);
    }
    if CacheControl::from_cache_control(req).no_store {
        return Err(NotStorable::RequestNoStore);
    }
    let (cc, targeted) = response_directives(policy, resp);
    if cc.no_store {
        return Err(NotStorable::NoStore);
    }
    if cc.private {
        return Err(NotStorable::Private);
    }
    // §3.5: a shared cache stores a response to a request with Authorization
    // only when the response explicitly allows it.
    if req.contains_key(AUTHORIZATION)
        && !(cc.must_revalidate || cc.public || cc.s_maxage.is_some())
    {
        return Err(NotStorable::Authorization);
    }
    if !policy.store_set_cookie && resp.contains_key(SET_COOKIE) {
        return Err(NotStorable::SetCookie);
    }
    // §4.1: "Vary: *" always fails to match, so storing it is useless.
    if resp.get_all(VARY).iter().any(|v| {
        v.as_bytes()
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii() == b"*")
    }) {
        return Err(NotStorable::VaryStar);
    }

    let date = header_date(resp, &DATE);
    let explicit = explicit_lifetime(&cc, targeted, resp, date.unwrap_or(response_time));
    if explicit.is_none() && !heuristic_allowed(status, &cc) {
        return Err(NotStorable::NoFreshness);
    }
    let (lifetime, heuristic) = match explicit {
        Some(l) => (l, false),
        None => (
            heuristic_lifetime(policy, resp, date.unwrap_or(response_time)),
            true,
        ),
    };
    // An error is kept briefly whatever the origin says, stale windows too.
    let cap = if status.is_server_error() {
        policy.error_max_ttl
    } else {
        Duration::MAX
    };
    let lifetime = lifetime.min(cap);
    let window = |d: Option<u64>| Duration::from_secs(d.unwrap_or(0)).min(cap);
    let has_validator = resp.contains_key(ETAG) || resp.contains_key(LAST_MODIFIED);
    // RFC 5861 windows make a stale copy usable even without a validator.
    let stale_window =
        cc.stale_while_revalidate.unwrap_or(0) > 0 || cc.stale_if_error.unwrap_or(0) > 0;
    if (lifetime.is_zero() || cc.no_cache) && !has_validator && !stale_window {
        return Err(NotStorable::NotReusable);
    }
    Ok(Freshness {
        response_time,
        corrected_initial_age: corrected_initial_age(resp, request_time, response_time),
        lifetime,
        heuristic,
        stale_while_revalidate: window(cc.stale_while_revalidate),
        stale_if_error: window(cc.stale_if_error),
        // s-maxage carries proxy-revalidate's meaning (§5.2.2.10), unless the
        // same response explicitly allows stale use with an RFC 5861 directive:
        // `s-maxage=60, stale-while-revalidate=30` means what it says.
        must_revalidate: cc.must_revalidate
            || cc.proxy_revalidate
            || (cc.s_maxage.is_some()
                && cc.stale_while_revalidate.is_none()
                && cc.stale_if_error.is_none()),
        no_cache: cc.no_cache,
    })
}

/// RFC 9111 §4.2.1 for a shared cache: s-maxage, then max-age, then
/// Expires − Date. With a targeted field, Expires is ignored (RFC 9213 §2.2).
pub fn explicit_lifetime(
    cc: &CacheControl,
    targeted: bool,
    resp: &HeaderMap,
    date: SystemTime,
) -> Option<Duration> {
    if let Some(s) = cc.s_maxage.or(cc.max_age) {
        return Some(Duration::from_secs(s));
    }
    if targeted {
        return None;
    }
    let expires = resp.get(EXPIRES)?;
    // §5.3: an invalid Expires (such as "0") means already expired.
    match expires
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
    {
        Some(t) => Some(t.duration_since(date).unwrap_or(Duration::ZERO)),
        None => Some(Duration::ZERO),
    }
}

/// RFC 9111 §4.2.2: a fraction of the time since Last-Modified, capped; zero
/// without Last-Modified.
pub fn heuristic_lifetime(policy: &Policy, resp: &HeaderMap, date: SystemTime) -> Duration {
    let Some(lm) = header_date(resp, &LAST_MODIFIED) else {
        return Duration::ZERO;
    };
    let since = date.duration_since(lm).unwrap_or(Duration::ZERO);
    since
        .mul_f64(policy.heuristic_fraction.clamp(0.0, 1.0))
        .min(policy.heuristic_max)
}

/// RFC 9111 §4.2.3: corrected_initial_age = max(apparent_age,
/// age_value + response_delay).
pub fn corrected_initial_age(
    resp: &HeaderMap,
    request_time: SystemTime,
    response_time: SystemTime,
) -> Duration {
    let date = header_date(resp, &DATE).unwrap_or(response_time);
    let apparent_age = response_time.duration_since(date).unwrap_or(Duration::ZERO);
    let response_delay = response_time
        .duration_since(request_time)
        .unwrap_or(Duration::ZERO);
    let age_value = age_value(resp);
    apparent_age.max(age_value + response_delay)
}

/// The `Age` header as seconds (§5.1): of a list (`Age: 7200, 0`, or the
/// field on several lines) the first member counts; a member that is not
/// delta-seconds (`abc`, `+5`, `-1`) is ignored, as is a missing field
/// (zero); overflow is capped at 2^31.
pub fn age_value(resp: &HeaderMap) -> Duration {
    let first = resp
        .get(http::header::AGE)
        .map(|v| v.as_bytes())
        .and_then(|v| v.split(|&b| b == b',').next())
        .map(|m| m.trim_ascii());
    Duration::from_secs(crate::cache_control::delta_seconds(first))
}

pub fn header_date(h: &HeaderMap, name: &HeaderName) -> Option<SystemTime> {
    h.get(name)?
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
}

/// How a stored response may be used for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// Serve it as it is.
    Fresh,
    /// Serve it now and refresh it in the background (RFC 5861 §3).
    StaleWhileRevalidate,
    /// Validate with the upstream before use.
    Revalidate,
}

impl Freshness {
    /// A response received at `response_time` and fresh for `lifetime`,
    /// with no stale allowances (for embedding and tests).
    pub fn fresh_for(lifetime: Duration, response_time: SystemTime) -> Self {
        Freshness {
            response_time,
            corrected_initial_age: Duration::ZERO,
            lifetime,
            heuristic: false,
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            must_revalidate: false,
            no_cache: false,
        }
    }

    /// §4.2.3 current_age = corrected_initial_age + resident_time.
    pub fn current_age(&self, now: SystemTime) -> Duration {
        self.corrected_initial_age
            + now
                .duration_since(self.response_time)
                .unwrap_or(Duration::ZERO)
    }

    /// Remaining freshness in seconds (negative once stale), for
    /// `Cache-Status: ttl`.
    pub fn ttl(&self, now: SystemTime) -> i64 {
        self.lifetime.as_secs() as i64 - self.current_age(now).as_secs() as i64
    }

    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.current_age(now) < self.lifetime
    }

    /// §4 and §5.2.1: may this stored response satisfy a request with these
    /// request directives? `invalidated` is a soft purge (treated as stale).
    pub fn reuse(&self, now: SystemTime, req: &CacheControl, invalidated: bool) -> Reuse {
        let age = self.current_age(now);
        let fresh = !invalidated && age < self.lifetime;
        if self.no_cache || req.no_cache {
            return Reuse::Revalidate;
        }
        if fresh {
            // §5.2.1.1 max-age and §5.2.1.3 min-fresh narrow what is fresh
            // enough for this client.
            let too_old = req.max_age.is_some_and(|m| age > Duration::from_secs(m));
            let not_fresh_enough = req
                .min_fresh
                .is_some_and(|m| self.lifetime.saturating_sub(age) < Duration::from_secs(m));
            return if too_old || not_fresh_enough {
                Reuse::Revalidate
            } else {
                Reuse::Fresh
            };
        }
        if self.must_revalidate {
            return Reuse::Revalidate;
        }
        let staleness = age.saturating_sub(self.lifetime);
        // §5.2.1.2 max-stale: the client accepts this much staleness.
        if !invalidated
            && req
                .max_stale
                .is_some_and(|m| staleness <= Duration::from_secs(m))
        {
            return Reuse::Fresh;
        }
        if staleness < self.stale_while_revalidate && req.max_age.is_none() {
            return Reuse::StaleWhileRevalidate;
        }
        Reuse::Revalidate
    }

    /// RFC 5861 §4 and the operator's grace (RFC 9111 §4.2.4: a cache may
    /// serve stale when it cannot reach the origin): may a stale copy be
    /// served when the upstream fails? Never under must-revalidate,
    /// proxy-revalidate or s-maxage (§5.2.2.2: a 504 is due), nor no-cache
    /// (§5.2.2.4: never reused without a successful validation).
    pub fn usable_on_error(&self, now: SystemTime, grace: Duration) -> bool {
        if self.must_revalidate || self.no_cache {
            return false;
        }
        let staleness = self.current_age(now).saturating_sub(self.lifetime);
        staleness <= self.stale_if_error.max(grace)
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "policy_proptests.rs"]
mod proptests;
