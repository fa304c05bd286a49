//! One upstream server: where it is, how much traffic it should get, its
//! health, and the counters the admin `/stats` endpoint shows.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use http::Uri;
use serde::Serialize;

use crate::error::BalanceError;
use crate::health::{Health, HealthPolicy};
pub use crate::passive::{DEFAULT_COOL_OFF, Outcome};
use crate::spec::BackendSpec;

/// One upstream server. Share it as `Arc<Backend>`; all state is atomic.
#[derive(Debug)]
pub struct Backend {
    spec: BackendSpec,
    health: Arc<Health>,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    server_errors: AtomicU64,
}

impl Backend {
    pub fn new(spec: BackendSpec, health: Arc<Health>) -> Self {
        Backend {
            spec,
            health,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            server_errors: AtomicU64::new(0),
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

    /// Requests this backend answered with a 5xx (held against it only
    /// when the pool is configured to eject on 5xx).
    pub fn server_errors(&self) -> u64 {
        self.server_errors.load(Ordering::Relaxed)
    }

    /// Starts a request: counts it and holds an in-flight slot until the
    /// guard drops. Takes `&Arc<Self>` so the guard can move into a task.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            backend: Arc::clone(self),
            failed: false,
            server_error: false,
        }
    }

    /// Takes the backend out for `cool_off`; returns whether it was in.
    /// Only the pool decides to call this ([`crate::Pool::report`]), since
    /// only it knows whether this is the last healthy backend.
    pub(crate) fn eject(&self, cool_off: Duration) -> bool {
        let already = self.health.is_ejected();
        self.health.eject(cool_off);
        !already
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
            server_errors: self.server_errors(),
            last_check_unix_ms: self.health.last_check_ms(),
            tls_insecure_skip_verify: self.spec.tls().is_some_and(|t| t.insecure_skip_verify),
        }
    }
}

/// An in-flight request to a backend; dropping it ends the request.
#[derive(Debug)]
#[must_use = "dropping the guard ends the request at once"]
pub struct InFlight {
    backend: Arc<Backend>,
    failed: bool,
    server_error: bool,
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

    /// Counts this request as answered with a 5xx (at most once).
    pub(crate) fn server_error(&mut self) {
        if !self.server_error {
            self.server_error = true;
            self.backend.server_errors.fetch_add(1, Ordering::Relaxed);
        }
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
    /// Requests that failed in a way held against the backend.
    pub failures: u64,
    /// Requests answered with a 5xx.
    pub server_errors: u64,
    pub last_check_unix_ms: Option<u64>,
    /// The backend's certificate is not checked (`;insecure-skip-verify`);
    /// shown only when true.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_insecure_skip_verify: bool,
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
    fn stats_serialize_for_the_admin_api() {
        let b = Backend::parse("http://o:80;weight=2").expect("valid");
        let json = serde_json::to_value(b.stats()).expect("serializes");
        assert_eq!(json["url"], "http://o:80");
        assert_eq!(json["weight"], 2);
        assert_eq!(json["up"], true);
        assert_eq!(json["last_check_unix_ms"], serde_json::Value::Null);
    }
}
