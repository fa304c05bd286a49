//! A fixed list of backends plus the algorithm that chooses among them.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use meridian_common::Shutdown;
use serde::{Deserialize, Serialize};

use crate::backend::{Backend, BackendStats};
use crate::error::BalanceError;
use crate::health::{self, Health, HealthPolicy};
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
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("balance", &self.balance)
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

    /// Sets how long a connect error or 5xx keeps a backend out (default 10s).
    pub fn with_cool_off(self, cool_off: Duration) -> Self {
        for b in &self.backends {
            b.set_cool_off(cool_off);
        }
        self
    }

    pub fn balance(&self) -> Balance {
        self.balance
    }

    /// Chooses a backend: its index (push it onto `exclude` to retry
    /// elsewhere) and the backend (call [`Backend::start`] on it).
    /// `None` when every backend is down or already tried.
    pub fn pick(&self, ctx: &Pick<'_>) -> Option<(usize, &Arc<Backend>)> {
        let i = self.selector.select(&self.backends, ctx)?;
        // `get` rather than indexing: a selector bug must not panic a request.
        self.backends.get(i).map(|b| (i, b))
    }

    pub fn backends(&self) -> &[Arc<Backend>] {
        &self.backends
    }

    pub fn stats(&self) -> Vec<BackendStats> {
        self.backends.iter().map(|b| b.stats()).collect()
    }

    /// True when no backend can take traffic: answer 503 or serve stale.
    pub fn all_down(&self) -> bool {
        !self.backends.iter().any(|b| b.is_up())
    }

    /// Starts one active health check task per backend, polling
    /// `base URL + path` every `interval` until `shutdown`. Must be called
    /// from inside a tokio runtime.
    pub fn spawn_health_checks(
        &self,
        client: reqwest::Client,
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
                runtime.spawn(health::poll(
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

    #[test]
    fn all_down_and_stats_follow_the_backends() {
        let p = pool(&["http://a:1", "http://b:1;weight=2"], Balance::RoundRobin)
            .with_cool_off(Duration::from_secs(60));
        assert!(!p.all_down());
        let (_, b) = p.pick(&Pick::default()).expect("up");
        let mut g = b.start();
        g.report(crate::Outcome::ConnectError);
        drop(g);
        let (_, other) = p.pick(&Pick::default()).expect("one left");
        other.report(crate::Outcome::ServerError);
        assert!(p.all_down());
        assert!(p.pick(&Pick::default()).is_none());
        let stats = p.stats();
        assert_eq!(stats.len(), 2);
        assert!(stats.iter().all(|s| s.ejected && !s.up));
        assert_eq!(stats.iter().map(|s| s.failures).sum::<u64>(), 1);
        assert_eq!(stats[1].weight, 2);
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
