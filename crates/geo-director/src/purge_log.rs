//! The cluster purge log in the director: the cluster file's `[[shield]]`
//! tables and `[purge-log]` settings, and the keeper
//! ([`meridian_purge::Keeper`]) whose routes join the admin listener when a
//! state directory is configured.
//!
//! ```toml
//! purge-log = "nats://127.0.0.1:4222"   # the short form: only where the log is
//!
//! [purge-log]                           # or the table
//! url = "http://127.0.0.1:9000"         # default: http://<director.admin-listen>
//! state-dir = "/var/lib/meridian/purge-log"   # the director keeps the log
//! max-lag = "5s"
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use meridian_common::auth::{TokenConfig, Tokens};
use meridian_common::{ConfigError, HumanDuration};
use meridian_purge::keeper::{
    DEFAULT_CONFIRM_TIMEOUT, DEFAULT_MAX_BATCH, DEFAULT_POLL_WAIT, DEFAULT_RETAIN,
    DEFAULT_RETAIN_BYTES, MAX_CONFIRM_TIMEOUT,
};
use meridian_purge::{Keeper, KeeperConfig, NodeRef, Tier};
use serde::Deserialize;

use crate::config::Config;

/// One `[[shield]]` table: a shield the purge log must reach.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ShieldConfig {
    /// The shield's `name` (unique among edges and shields).
    pub name: String,
    /// Its proxy listener, where edges connect.
    pub url: String,
    /// Its admin listener.
    pub admin: String,
    /// Where it is, for `meridian cluster up`'s simulated distance (the
    /// director and the purge log do not use these).
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub latitude: Option<f64>,
    #[serde(default)]
    pub longitude: Option<f64>,
}

/// `purge-log = "URL"` or a `[purge-log]` table.
#[derive(Debug)]
pub(crate) enum PurgeLogFile {
    Url(String),
    Table(PurgeLogTable),
}

impl<'de> Deserialize<'de> for PurgeLogFile {
    // By hand rather than `untagged`, so a wrong key in the table is
    // reported by name.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = PurgeLogFile;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a URL or a [purge-log] table")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PurgeLogFile::Url(v.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                PurgeLogTable::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(PurgeLogFile::Table)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The `[purge-log]` table; every key optional (defaults in brackets).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct PurgeLogTable {
    url: Option<String>,
    state_dir: Option<PathBuf>,
    max_lag: Option<HumanDuration>,
    confirm_timeout: Option<HumanDuration>,
    retain: Option<usize>,
    retain_bytes: Option<meridian_common::ByteSize>,
    poll_wait: Option<HumanDuration>,
    max_batch: Option<usize>,
    #[serde(default)]
    token: Vec<TokenConfig>,
}

/// The validated `[purge-log]` settings.
#[derive(Debug, Clone)]
pub struct PurgeLogSettings {
    /// Where the log is (`http://...` or `nats://...`); `None`: the
    /// director's own admin listener.
    pub url: Option<String>,
    /// Where the director keeps the log; `None`: it keeps none.
    pub state_dir: Option<PathBuf>,
    pub max_lag: Duration,
    pub confirm_timeout: Duration,
    pub retain: usize,
    pub retain_bytes: u64,
    pub poll_wait: Duration,
    pub max_batch: usize,
    /// `[[purge-log.token]]` tables (on top of `MERIDIAN_ADMIN_TOKEN`).
    pub tokens: Vec<TokenConfig>,
}

impl Default for PurgeLogSettings {
    fn default() -> Self {
        PurgeLogSettings {
            url: None,
            state_dir: None,
            max_lag: meridian_purge::DEFAULT_MAX_LAG,
            confirm_timeout: DEFAULT_CONFIRM_TIMEOUT,
            retain: DEFAULT_RETAIN,
            retain_bytes: DEFAULT_RETAIN_BYTES,
            poll_wait: DEFAULT_POLL_WAIT,
            max_batch: DEFAULT_MAX_BATCH,
            tokens: Vec::new(),
        }
    }
}

impl PurgeLogSettings {
    pub(crate) fn from_file(f: Option<PurgeLogFile>) -> Self {
        let d = PurgeLogSettings::default();
        let t = match f {
            None => return d,
            Some(PurgeLogFile::Url(url)) => {
                return PurgeLogSettings {
                    url: Some(url),
                    ..d
                };
            }
            Some(PurgeLogFile::Table(t)) => t,
        };
        PurgeLogSettings {
            url: t.url,
            state_dir: t.state_dir,
            max_lag: t.max_lag.map_or(d.max_lag, HumanDuration::get),
            confirm_timeout: t
                .confirm_timeout
                .map_or(d.confirm_timeout, HumanDuration::get),
            retain: t.retain.unwrap_or(d.retain),
            retain_bytes: t.retain_bytes.map_or(d.retain_bytes, |b| b.bytes()),
            poll_wait: t.poll_wait.map_or(d.poll_wait, HumanDuration::get),
            max_batch: t.max_batch.unwrap_or(d.max_batch),
            tokens: t.token,
        }
    }
}

/// Checks the `[[shield]]` tables and `[purge-log]`.
pub(crate) fn validate(c: &Config) -> Result<(), ConfigError> {
    let bad = |key: String, reason: String| Err(ConfigError::invalid(&c.source, key, reason));
    for (i, s) in c.shields.iter().enumerate() {
        let key = |k: &str| format!("shield[{i}].{k}");
        let taken = c.edges.iter().any(|e| e.name == s.name)
            || c.shields[..i].iter().any(|o| o.name == s.name);
        if s.name.trim().is_empty() || taken {
            return bad(
                key("name"),
                format!("`{}` is empty or used by another edge or shield", s.name),
            );
        }
        for (k, url) in [("url", &s.url), ("admin", &s.admin)] {
            if let Err(reason) = crate::config::check_base_url(url) {
                return bad(key(k), reason);
            }
        }
    }
    let p = &c.purge_log;
    if let Some(url) = &p.url {
        let nats = url.starts_with("nats://");
        if !(nats || url.starts_with("http://") || url.starts_with("https://")) {
            return bad(
                "purge-log.url".into(),
                format!("`{url}`: use http://DIRECTOR-ADMIN or nats://HOST:PORT"),
            );
        }
        if nats && p.state_dir.is_some() {
            return bad(
                "purge-log.state-dir".into(),
                "a nats:// log keeps its state in JetStream; state-dir is for the director's own log"
                    .into(),
            );
        }
    }
    if p.max_lag.is_zero() {
        return bad("purge-log.max-lag".into(), "must be more than 0s".into());
    }
    if p.poll_wait.is_zero() || p.poll_wait >= p.max_lag {
        return bad(
            "purge-log.poll-wait".into(),
            format!(
                "{:?} must be above 0 and below max-lag ({:?}), or idle nodes would lag",
                p.poll_wait, p.max_lag
            ),
        );
    }
    if p.confirm_timeout > MAX_CONFIRM_TIMEOUT {
        return bad(
            "purge-log.confirm-timeout".into(),
            format!("at most {MAX_CONFIRM_TIMEOUT:?}"),
        );
    }
    if p.retain == 0 || p.max_batch == 0 || p.retain_bytes == 0 {
        return bad(
            "purge-log.retain".into(),
            "retain, retain-bytes and max-batch must be more than 0".into(),
        );
    }
    Ok(())
}

/// The nodes a purge must reach: shields first, then edges.
pub fn nodes(c: &Config) -> Vec<NodeRef> {
    let shields = c.shields.iter().map(|s| NodeRef {
        name: s.name.clone(),
        tier: Tier::Shield,
    });
    let edges = c.edges.iter().map(|e| NodeRef {
        name: e.name.clone(),
        tier: Tier::Edge,
    });
    shields.chain(edges).collect()
}

/// The keeper, when a state directory is configured. Tokens come from
/// `MERIDIAN_ADMIN_TOKEN` and `[[purge-log.token]]` (secret files relative
/// to the config file).
pub(crate) fn keeper(c: &Config) -> Result<Option<Keeper>, crate::Error> {
    let p = &c.purge_log;
    let Some(dir) = &p.state_dir else {
        return Ok(None);
    };
    let base = Path::new(&c.source).parent().unwrap_or(Path::new("."));
    let tokens = Tokens::load(&p.tokens, base, &c.source)?;
    if tokens.is_empty() {
        tracing::warn!(
            "the purge log has no token: set MERIDIAN_ADMIN_TOKEN or add [[purge-log.token]] \
             tables, or no node can follow it and no purge can be sent"
        );
    }
    let config = KeeperConfig {
        max_lag: p.max_lag,
        confirm_timeout: p.confirm_timeout,
        retain: p.retain,
        retain_bytes: p.retain_bytes,
        poll_wait: p.poll_wait,
        max_batch: p.max_batch,
        ..KeeperConfig::new(dir.clone(), nodes(c), Arc::new(tokens))
    };
    Ok(Some(
        Keeper::open(config).map_err(|e| crate::Error::PurgeLog(e.to_string()))?,
    ))
}
