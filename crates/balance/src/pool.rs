//! A fixed list of backends plus the algorithm that chooses among them.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_common::Shutdown;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendStats, InFlight};
use crate::error::BalanceError;
use crate::health::{self, Health, HealthPolicy};
use crate::passive::{self, Outcome, PassivePolicy, Verdict};
use crate::selector::{
    ConsistentHash, IpHash, LeastConnections, Pick, Rendezvous, RoundRobin, Selector, TwoChoices,
    WeightedRoundRobin,
};
use crate::spec::BackendSpec;

/// The balancing algorithm, as named in config files and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    #[default]
    RoundRobin,
    WeightedRoundRobin,
    LeastConnections,
    IpHash,
    ConsistentHash,
    TwoChoices,
    Rendezvous,
}

impl Balance {
    pub const ALL: [Balance; 7] = [
        Balance::RoundRobin,
        Balance::WeightedRoundRobin,
        Balance::LeastConnections,
        Balance::IpHash,
        Balance::ConsistentHash,
        Balance::TwoChoices,
        Balance::Rendezvous,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Balance::RoundRobin => "round-robin",
            Balance::WeightedRoundRobin => "weighted-round-robin",
            Balance::LeastConnections => "least-connections",
            Balance::IpHash => "ip-hash",
            Balance::ConsistentHash => "consistent-hash",
            Balance::TwoChoices => "two-choices",
            Balance::Rendezvous => "rendezvous",
        }
    }

    /// The concrete selector for this backend list (the ring is built here).
    pub fn selector(self, backends: &[Arc<Backend>]) -> Box<dyn Selector> {
        match self {
            Balance::RoundRobin => Box::new(RoundRobin::new()),
            Balance::WeightedRoundRobin => Box::new(WeightedRoundRobin::new()),
            Balance::LeastConnections => Box::new(LeastConnections::new()),
            Balance::IpHash => Box::new(IpHash::new()),
            Balance::ConsistentHash => Box::new(ConsistentHash::new(backends)),
            Balance::TwoChoices => Box::new(TwoChoices::new()),
            Balance::Rendezvous => Box::new(Rendezvous::new()),
        }
    }
}

impl FromStr for Balance {
    type Err = BalanceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim();
        Balance::ALL
            .into_iter()
            .find(|b| b.name() == name)
            .ok_or_else(|| BalanceError::UnknownBalance {
                name: name.to_string(),
                valid: Balance::ALL.map(Balance::name).join(", "),
            })
    }
}

impl fmt::Display for Balance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The upstreams of one service and how to choose among them. Build it
/// once at startup; picks are lock-free (weighted round robin takes a
/// short lock) and can be made from any task.
pub struct Pool {
    backends: Vec<Arc<Backend>>,
    selector: Box<dyn Selector>,
    balance: Balance,
    passive: PassivePolicy,
    /// Held while deciding an ejection, so two backends failing at once
    /// cannot both see the other up and leave none.
    ejecting: Mutex<()>,
    /// Whether the last pick was made in panic mode (for logging the change).
    panicking: AtomicBool,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("balance", &self.balance)
            .field("passive", &self.passive)
            .field("backends", &self.backends)
            .finish()
    }
}

impl Pool {
    /// A pool over `backends`, in the given order (indices in [`Pick::exclude`]
    /// refer to it). Fails on an empty list or a URL listed twice: two
    /// entries for one server would collide on the hash ring and double its
    /// share silently (use `;weight=2` instead).
    pub fn new(backends: Vec<Backend>, balance: Balance) -> Result<Self, BalanceError> {
        if backends.is_empty() {
            return Err(BalanceError::NoBackends);
        }
        for (i, b) in backends.iter().enumerate() {
            if backends[..i].iter().any(|a| a.base() == b.base()) {
                return Err(BalanceError::DuplicateBackend {
                    url: b.base().to_string(),
                });
            }
        }
        let backends: Vec<Arc<Backend>> = backends.into_iter().map(Arc::new).collect();
        let selector = balance.selector(&backends);
        Ok(Pool {
            backends,
            selector,
            balance,
            passive: PassivePolicy::default(),
            ejecting: Mutex::new(()),
            panicking: AtomicBool::new(false),
        })
    }

    /// A pool from parsed specs, each backend with its own health state.
    pub fn from_specs(
        specs: Vec<BackendSpec>,
        balance: Balance,
        policy: HealthPolicy,
    ) -> Result<Self, BalanceError> {
        let backends = specs
            .into_iter()
            .map(|s| Backend::new(s, Arc::new(Health::new(policy))))
            .collect();
        Pool::new(backends, balance)
    }

    /// Sets how long a counted failure keeps a backend out (default 10s).
    pub fn with_cool_off(mut self, cool_off: Duration) -> Self {
        self.passive.cool_off = cool_off;
        self
    }

    /// Sets whether a 5xx answer counts as a failure (default false).
    pub fn with_eject_on_5xx(mut self, eject: bool) -> Self {
        self.passive.eject_on_5xx = eject;
        self
    }

    pub fn passive(&self) -> PassivePolicy {
        self.passive
    }

    pub fn balance(&self) -> Balance {
        self.balance
    }

    /// Chooses a backend: its index (push it onto `exclude` to retry
    /// elsewhere) and the backend (call [`Backend::start`] on it).
    ///
    /// Only backends that are up are picked, unless every backend not yet
    /// tried is down: then the pick is made among all of them, as if they
    /// were up (Envoy's panic mode). Health checks and ejections can be
    /// wrong (a check path that broke, a failure that was a fluke), and
    /// trying a backend marked down costs one request at worst, while
    /// refusing costs every request. `None` only when every backend has
    /// been tried.
    pub fn pick(&self, ctx: &Pick<'_>) -> Option<(usize, &Arc<Backend>)> {
        let i = match self.selector.select(&self.backends, ctx) {
            Some(i) => {
                if self.panicking.load(Ordering::Relaxed)
                    && self.panicking.swap(false, Ordering::Relaxed)
                {
                    tracing::info!("a backend is up again: panic mode over");
                }
                i
            }
            None => {
                let i = self.selector.select(
                    &self.backends,
                    &Pick {
                        panic: true,
                        ..*ctx
                    },
                )?;
                if !self.panicking.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "every backend left to try is marked down: trying them anyway (panic mode)"
                    );
                }
                i
            }
        };
        // `get` rather than indexing: a selector bug must not panic a request.
        self.backends.get(i).map(|b| (i, b))
    }

    /// Passive health: feeds what happened to one request. A failure that
    /// counts (see [`Outcome::counts_against`]) is added to the backend's
    /// failures and ejects it for the cool-off, unless no other backend is
    /// up: the last healthy backend is never ejected.
    pub fn report(&self, request: &mut InFlight, outcome: Outcome) -> Verdict {
        if outcome == Outcome::ServerError {
            request.server_error();
        }
        let counts = outcome.counts_against(&self.passive);
        if !counts {
            return Verdict::NotCounted;
        }
        request.fail();
        let backend = Arc::clone(request.backend());
        // A poisoned lock only means another report panicked; the unit
        // guarded is `()`, so carry on.
        let _deciding = self.ejecting.lock().unwrap_or_else(|e| e.into_inner());
        let others_up = self
            .backends
            .iter()
            .any(|b| !Arc::ptr_eq(b, &backend) && b.is_up());
        let verdict = passive::verdict(counts, others_up);
        match verdict {
            Verdict::Ejected => {
                // Requests already in flight report too; log only the first.
                if backend.eject(self.passive.cool_off) {
                    tracing::warn!(backend = %backend.base(), ?outcome, cool_off = ?self.passive.cool_off, "backend ejected");
                }
            }
            Verdict::Spared => {
                tracing::debug!(backend = %backend.base(), ?outcome, "failure counted; the last healthy backend stays in");
            }
            Verdict::NotCounted => {}
        }
        verdict
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    pub fn stats(&self) -> Vec<BackendStats> {
        self.backends.iter().map(|b| b.stats()).collect()
    }

    /// True when no backend is up: picks are then made in panic mode.
    pub fn all_down(&self) -> bool {
        !self.backends.iter().any(|b| b.is_up())
    }

    /// Starts one active health check task per backend, polling
    /// `base URL + path` every `interval` until `shutdown`. Must be called
    /// from inside a tokio runtime.
    ///
    /// The first check runs one interval after the start, not at once: a
    /// node starts with its backends presumed up, and a node started at
    /// the same moment as its origins (a deploy, a demo script) must not
    /// mark them down because it asked a millisecond before they listened.
    pub fn spawn_health_checks(
        &self,
        client: impl health::Probe,
        path: &str,
        interval: Duration,
        timeout: Duration,
        shutdown: Shutdown,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, BalanceError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BalanceError::NoRuntime)?;
        // tokio's interval panics on zero; a zero from config means "as often as sensible".
        let interval = interval.max(Duration::from_millis(1));
        Ok(self
            .backends
            .iter()
            .map(|b| {
                runtime.spawn(health::poll_after(
                    interval,
                    client.clone(),
                    b.url_for(path),
                    interval,
                    timeout,
                    Arc::clone(b.health()),
                    shutdown.clone(),
                ))
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(specs: &[&str], balance: Balance) -> Pool {
        let backends = specs.iter().map(|s| Backend::parse(s).expect(s)).collect();
        Pool::new(backends, balance).expect("valid pool")
    }

    #[test]
    fn balance_names_parse_and_round_trip() {
        for b in Balance::ALL {
            assert_eq!(b.name().parse::<Balance>().ok(), Some(b));
            assert_eq!(b.to_string(), b.name());
            let json = format!("\"{}\"", b.name());
            assert_eq!(serde_json::from_str::<Balance>(&json).expect(&json), b);
            let sel = b.selector(&[]);
            assert_eq!(sel.name(), b.name());
        }
    }

    #[test]
    fn unknown_balance_name_lists_valid_ones() {
        let err = "fastest"
            .parse::<Balance>()
            .expect_err("unknown")
            .to_string();
        assert!(err.contains("`fastest`"), "{err}");
        for b in Balance::ALL {
            assert!(err.contains(b.name()), "{err}");
        }
    }

    #[test]
    fn pool_rejects_empty_and_duplicate_lists() {
        assert_eq!(
            Pool::new(vec![], Balance::RoundRobin).expect_err("empty"),
            BalanceError::NoBackends
        );
        let dup = vec![
            Backend::parse("http://a:1/").expect("valid"),
            Backend::parse("http://a:1;weight=2").expect("valid"),
        ];
        let err = Pool::new(dup, Balance::RoundRobin).expect_err("duplicate");
        assert!(err.to_string().contains("http://a:1"), "{err}");
    }

    #[test]
    fn retry_loop_tries_each_backend_once() {
        let p = pool(
            &["http://a:1", "http://b:1", "http://c:1"],
            Balance::ConsistentHash,
        );
        let mut tried = Vec::new();
        while let Some((i, _)) = p.pick(&Pick::new("/x", None).excluding(&tried)) {
            tried.push(i);
        }
        tried.sort_unstable();
        assert_eq!(tried, [0, 1, 2]);
    }

    fn report(p: &Pool, i: usize, outcome: Outcome) -> Verdict {
        let mut g = p.backends()[i].start();
        p.report(&mut g, outcome)
    }

    #[test]
    fn last_healthy_backend_is_never_ejected() {
        let p = pool(
            &["http://a:1", "http://b:1", "http://c:1"],
            Balance::RoundRobin,
        )
        .with_cool_off(Duration::from_secs(60));
        let steps = [
            (0, Outcome::ConnectError, Verdict::Ejected),
            (0, Outcome::Timeout, Verdict::Ejected),
            (1, Outcome::Reset, Verdict::Ejected),
            (2, Outcome::ConnectError, Verdict::Spared),
            (2, Outcome::Timeout, Verdict::Spared),
        ];
        for (i, outcome, want) in steps {
            assert_eq!(report(&p, i, outcome), want, "backend {i} {outcome:?}");
        }
        let stats = p.stats();
        let states: Vec<(bool, bool, u64)> = stats
            .iter()
            .map(|s| (s.up, s.ejected, s.failures))
            .collect();
        assert_eq!(
            states,
            [(false, true, 2), (false, true, 1), (true, false, 2)]
        );
        assert!(!p.all_down());
    }

    #[test]
    fn five_hundreds_count_only_when_configured() {
        let cases = [
            (false, Verdict::NotCounted, true, 0),
            (true, Verdict::Ejected, false, 4),
        ];
        for (eject_on_5xx, want, up, failures) in cases {
            let p = pool(&["http://a:1", "http://b:1"], Balance::RoundRobin)
                .with_cool_off(Duration::from_secs(60))
                .with_eject_on_5xx(eject_on_5xx);
            let status = http::StatusCode::INTERNAL_SERVER_ERROR;
            for _ in 0..4 {
                assert_eq!(report(&p, 0, Outcome::from_status(status)), want);
            }
            let s = &p.stats()[0];
            assert_eq!(
                (s.up, s.server_errors, s.failures),
                (up, 4, failures),
                "eject-on-5xx = {eject_on_5xx}"
            );
            assert_eq!(report(&p, 1, Outcome::Ok), Verdict::NotCounted);
        }
    }

    #[test]
    fn a_request_counts_as_failed_once() {
        let p = pool(&["http://a:1", "http://b:1"], Balance::RoundRobin);
        let mut g = p.backends()[0].start();
        p.report(&mut g, Outcome::Reset);
        p.report(&mut g, Outcome::Timeout);
        drop(g);
        assert_eq!(p.stats()[0].failures, 1);
    }

    #[test]
    fn all_down_backends_are_picked_anyway_in_panic_mode() {
        for balance in Balance::ALL {
            let p = pool(&["http://a:1", "http://b:1", "http://c:1"], balance);
            for b in p.backends() {
                b.health().record(false);
            }
            assert!(p.all_down());
            let mut tried = Vec::new();
            while let Some((i, _)) = p.pick(&Pick::new("/x", None).excluding(&tried)) {
                assert!(!tried.contains(&i), "{balance}: {i} twice");
                tried.push(i);
            }
            tried.sort_unstable();
            assert_eq!(tried, [0, 1, 2], "{balance}: each still tried once");
        }
    }

    #[test]
    fn panic_mode_is_only_for_when_none_is_up() {
        let p = pool(&["http://a:1", "http://b:1"], Balance::RoundRobin);
        p.backends()[1].health().record(false);
        for _ in 0..10 {
            let (i, _) = p.pick(&Pick::default()).expect("a is up");
            assert_eq!(i, 0);
        }
        let tried = [0];
        let (i, _) = p
            .pick(&Pick::default().excluding(&tried))
            .expect("b is down but the only one left to retry on");
        assert_eq!(i, 1);
    }

    #[test]
    fn health_checks_need_a_runtime() {
        let p = pool(&["http://a:1"], Balance::RoundRobin);
        let client = reqwest::Client::new();
        let err = p.spawn_health_checks(
            client,
            "/healthz",
            Duration::from_secs(1),
            Duration::from_secs(1),
            Shutdown::new(),
        );
        assert_eq!(err.expect_err("no runtime"), BalanceError::NoRuntime);
    }
}
