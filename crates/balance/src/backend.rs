//! One upstream server: where it is, how much traffic it should get, its
//! health, and the counters the admin `/stats` endpoint shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::Uri;
use serde::Serialize;

use crate::error::BalanceError;
use crate::health::{Health, HealthPolicy};
use crate::spec::BackendSpec;

/// How long a passive ejection keeps a backend out unless the pool says otherwise.
pub const DEFAULT_COOL_OFF: Duration = Duration::from_secs(10);

/// What happened to one request to a backend, for passive ejection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Any answer that is not a 5xx (a 404 is the origin working correctly).
    Ok,
    /// No usable answer: connect refused/reset, or a timeout.
    ConnectError,
    /// The backend answered 5xx.
    ServerError,
}

impl Outcome {
    /// `ServerError` for 5xx, `Ok` otherwise.
    pub fn from_status(status: http::StatusCode) -> Self {
        if status.is_server_error() {
            Outcome::ServerError
        } else {
            Outcome::Ok
        }
    }
}

/// One upstream server. Share it as `Arc<Backend>`; all state is atomic.
#[derive(Debug)]
pub struct Backend {
    spec: BackendSpec,
    health: Arc<Health>,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    /// Millis; atomic so a pool can set it on backends that are already shared.
    cool_off_ms: AtomicU64,
}

impl Backend {
    pub fn new(spec: BackendSpec, health: Arc<Health>) -> Self {
        Backend {
            spec,
            health,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            cool_off_ms: AtomicU64::new(DEFAULT_COOL_OFF.as_millis() as u64),
        }
    }

    /// Parses `URL[;weight=N]` with the default health policy.
    pub fn parse(spec: &str) -> Result<Self, BalanceError> {
        Ok(Backend::new(
            spec.parse()?,
            Arc::new(Health::new(HealthPolicy::default())),
        ))
    }

    pub fn spec(&self) -> &BackendSpec {
        &self.spec
    }

    pub fn url(&self) -> &Uri {
        self.spec.url()
    }

    /// `http://host:port[/prefix]`, no trailing slash.
    pub fn base(&self) -> &str {
        self.spec.base()
    }

    /// The upstream URL for a request path (`/a?b`): base + path.
    pub fn url_for(&self, path_and_query: &str) -> String {
        let sep = if path_and_query.starts_with('/') {
            ""
        } else {
            "/"
        };
        format!("{}{sep}{path_and_query}", self.spec.base())
    }

    pub fn weight(&self) -> u32 {
        self.spec.weight()
    }

    pub fn health(&self) -> &Arc<Health> {
        &self.health
    }

    pub fn is_up(&self) -> bool {
        self.health.is_up()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn cool_off(&self) -> Duration {
        Duration::from_millis(self.cool_off_ms.load(Ordering::Relaxed))
    }

    pub fn set_cool_off(&self, cool_off: Duration) {
        let ms = u64::try_from(cool_off.as_millis()).unwrap_or(u64::MAX);
        self.cool_off_ms.store(ms, Ordering::Relaxed);
    }

    /// Starts a request: counts it and holds an in-flight slot until the
    /// guard drops. Takes `&Arc<Self>` so the guard can move into a task.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            backend: Arc::clone(self),
            failed: false,
        }
    }

    /// Passive health: a connect error or a 5xx ejects the backend for the
    /// pool's cool-off; returns whether it did. This does not count a
    /// failure (use [`InFlight::report`], which does both).
    ///
    /// The last healthy backend is ejected too, on purpose: sending traffic
    /// to a backend that just failed only adds latency, and the shield's
    /// answer when [`crate::Pool::all_down`] is a fast 503 or a stale copy.
    /// The active checks bring it back as soon as the cool-off has passed
    /// and a check succeeds.
    pub fn report(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Ok => false,
            Outcome::ConnectError | Outcome::ServerError => {
                // Requests already in flight will report too; log only the
                // first, so one bad second does not flood the log.
                let already = self.health.is_ejected();
                self.health.eject(self.cool_off());
                if !already {
                    tracing::warn!(backend = %self.base(), ?outcome, cool_off = ?self.cool_off(), "backend ejected");
                }
                true
            }
        }
    }

    /// A snapshot for the admin `/stats` JSON.
    pub fn stats(&self) -> BackendStats {
        BackendStats {
            url: self.spec.base().to_string(),
            weight: self.weight(),
            up: self.health.is_up(),
            ejected: self.health.is_ejected(),
            in_flight: self.in_flight(),
            requests: self.requests(),
            failures: self.failures(),
            last_check_unix_ms: self.health.last_check_ms(),
        }
    }
}

/// An in-flight request to a backend; dropping it ends the request.
#[derive(Debug)]
#[must_use = "dropping the guard ends the request at once"]
pub struct InFlight {
    backend: Arc<Backend>,
    failed: bool,
}

impl InFlight {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Counts this request as failed (at most once per request).
    pub fn fail(&mut self) {
        if !self.failed {
            self.failed = true;
            self.backend.failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a failure for a connect error or 5xx and ejects the backend
    /// (see [`Backend::report`]); returns whether it ejected.
    pub fn report(&mut self, outcome: Outcome) -> bool {
        if outcome != Outcome::Ok {
            self.fail();
        }
        self.backend.report(outcome)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.backend.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What `/stats` shows for one backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackendStats {
    pub url: String,
    pub weight: u32,
    /// Up by the active checks and not ejected.
    pub up: bool,
    pub ejected: bool,
    pub in_flight: usize,
    pub requests: u64,
    pub failures: u64,
    pub last_check_unix_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_for_joins_prefix_and_path() {
        let b = Backend::parse("http://o:80/base/").expect("valid");
        assert_eq!(b.url_for("/a/b?c=d"), "http://o:80/base/a/b?c=d");
        assert_eq!(b.url_for("healthz"), "http://o:80/base/healthz");
    }

    #[test]
    fn in_flight_guard_counts_and_releases() {
        let b = Arc::new(Backend::parse("http://o:80").expect("valid"));
        let mut g1 = b.start();
        let g2 = b.start();
        assert_eq!((b.in_flight(), b.requests()), (2, 2));
        g1.fail();
        g1.fail();
        drop(g1);
        drop(g2);
        assert_eq!((b.in_flight(), b.requests(), b.failures()), (0, 2, 1));
    }

    #[test]
    fn connect_errors_and_5xx_eject_ok_does_not() {
        let cases = [
            (Outcome::Ok, false),
            (Outcome::from_status(http::StatusCode::NOT_FOUND), false),
            (Outcome::ConnectError, true),
            (Outcome::from_status(http::StatusCode::BAD_GATEWAY), true),
        ];
        for (outcome, ejects) in cases {
            let b = Arc::new(Backend::parse("http://o:80").expect("valid"));
            let mut g = b.start();
            assert_eq!(g.report(outcome), ejects, "{outcome:?}");
            assert_eq!(b.is_up(), !ejects, "{outcome:?}");
            assert_eq!(b.failures(), u64::from(ejects), "{outcome:?}");
        }
    }

    #[test]
    fn last_healthy_backend_is_still_ejected() {
        let b = Backend::parse("http://o:80").expect("valid");
        b.set_cool_off(Duration::from_secs(60));
        assert!(b.report(Outcome::ServerError));
        assert!(!b.is_up() && b.stats().ejected);
    }

    #[test]
    fn stats_serialize_for_the_admin_api() {
        let b = Backend::parse("http://o:80;weight=2").expect("valid");
        let json = serde_json::to_value(b.stats()).expect("serializes");
        assert_eq!(json["url"], "http://o:80");
        assert_eq!(json["weight"], 2);
        assert_eq!(json["up"], true);
        assert_eq!(json["last_check_unix_ms"], serde_json::Value::Null);
    }
}
