//! Upstream selection and health for Meridian: which origin (from a shield)
//! or which shield (from an edge) gets a request.
//!
//! A [`Pool`] holds a fixed list of [`Backend`]s (each `http://host:port`
//! with a weight, a [`Health`] state and request counters) and one
//! [`Selector`], chosen by [`Balance`]. Every algorithm picks among the
//! backends that are up and not yet tried for this request
//! ([`Pick::exclude`]). When every backend left is marked down, the pool
//! picks among all of them as if they were up (Envoy's panic mode): a
//! health verdict can be wrong, and trying costs one request where
//! refusing costs all of them. [`Pool::pick`] returns `None` only once
//! every backend has been tried.
//!
//! | `--balance` | how it picks | use it when |
//! |---|---|---|
//! | `round-robin` | each healthy backend in turn | equal servers, similar requests |
//! | `weighted-round-robin` | nginx's smooth WRR: 3:1 gives `a a b a`, exact over a cycle | servers of different sizes |
//! | `least-connections` | fewest requests in flight; ties by weight, then in turn | request cost varies a lot (large files, slow origins) |
//! | `ip-hash` | hash of the whole client address; rehash if that backend is down | an origin keeps per-client state |
//! | `consistent-hash` | ketama ring, 160 points per weight unit, on the cache key | spread a big keyspace over origin caches; one change moves ~1/N of keys |
//! | `two-choices` | two random healthy backends, the one with fewer in flight | many pickers (several shields) share the same origins |
//! | `rendezvous` | highest `hash(key, backend)` wins, weighted | edge → shield: every edge maps a key to the same shield, next shield is well defined |
//!
//! Hashing uses FNV-1a with a MurmurHash3 finalizer ([`stable_hash`]),
//! never `RandomState`: edges in different processes, and builds with
//! different Rust versions, must map a key to the same shield.
//! Two-choices draws its randomness from SplitMix64 on one atomic instead
//! of depending on `fastrand`: five lines, lock-free, seedable for tests.
//!
//! Backends start up (presumed healthy until shown otherwise).
//!
//! Passive health ([`Pool::report`]) holds only the backend's own failures
//! against it: a connect failure, a timeout, a reset. A 5xx is that URL's
//! answer, not the server's state, and counts only with
//! [`Pool::with_eject_on_5xx`]; errors caused by the client are not
//! reported at all. A counted failure ejects the backend for the pool's
//! cool-off (default 10s), except the last healthy one, which is never
//! ejected: so no client, by asking for a broken URL or sending a broken
//! body, can take a tier down. Active checks
//! ([`Pool::spawn_health_checks`], the first one interval after the
//! start) take a backend out after `fall` failed checks and bring it back
//! after `rise` good ones.

pub mod backend;
mod error;
mod hash;
pub mod health;
pub mod passive;
pub mod pool;
pub mod selector;
pub mod spec;

pub use backend::{Backend, BackendStats, InFlight};
pub use error::BalanceError;
pub use hash::stable_hash;
pub use health::{Health, HealthPolicy, Probe, Transition};
pub use passive::{DEFAULT_COOL_OFF, Outcome, PassivePolicy, Verdict};
pub use pool::{Balance, Pool};
pub use selector::{
    ConsistentHash, IpHash, LeastConnections, Pick, Rendezvous, RoundRobin, Selector, TwoChoices,
    WeightedRoundRobin, rendezvous_order,
};
pub use spec::{BackendSpec, MAX_WEIGHT, TlsOptions};
