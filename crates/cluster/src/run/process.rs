//! `cluster.processes`: each shield and edge as its own child process.
//!
//! The cluster writes the node's config file (`STATE-DIR/nodes/NAME.toml`,
//! the same settings the in-process node gets, with the cluster's links as
//! its upstreams), starts `meridian shield|edge --config FILE` with the
//! cluster's token in `MERIDIAN_ADMIN_TOKEN`, appends its stderr and stdout
//! to `STATE-DIR/nodes/NAME.log` and its pid to `NAME.pid`, and waits
//! (bounded) until its listeners accept. The cluster's links and fronts stay
//! in this process, in front of it, so distance and `slow`/`fail` work as
//! before; `stop` is a SIGKILL (the process gets no chance to clean up, as
//! in a crash or the OOM killer) and `start` a new process on the same
//! addresses, with an empty cache.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use meridian_common::Shutdown;
use tokio::process::{Child, Command};

use super::{Error, Inner, Role};

/// The folder of the state directory with each child's config, log and pid.
pub const NODES_DIR: &str = "nodes";

/// How long a child may take to listen (a debug build on a busy machine
/// takes a few seconds).
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a killed child may take to be reaped.
const REAP_TIMEOUT: Duration = Duration::from_secs(5);

/// Poll interval while waiting for a child's listeners.
const READY_POLL: Duration = Duration::from_millis(50);

/// The files of one child.
struct Files {
    config: PathBuf,
    log: PathBuf,
    pid: PathBuf,
}

fn files(state: &Path, name: &str) -> Files {
    let dir = state.join(NODES_DIR);
    Files {
        config: dir.join(format!("{name}.toml")),
        log: dir.join(format!("{name}.log")),
        pid: dir.join(format!("{name}.pid")),
    }
}

/// Where the pid of the running child `name` is written (removed when it
/// is reaped).
pub fn pid_file(state: &Path, name: &str) -> PathBuf {
    files(state, name).pid
}

/// Where the child `name` logs (appended to across restarts).
pub fn log_file(state: &Path, name: &str) -> PathBuf {
    files(state, name).log
}

fn text(s: impl ToString) -> toml::Value {
    toml::Value::String(s.to_string())
}

fn table(pairs: &[(&str, toml::Value)]) -> toml::Value {
    toml::Value::Table(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

fn list(items: &[String]) -> toml::Value {
    toml::Value::Array(items.iter().map(text).collect())
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Inner {
    /// The config file of slot `k`'s child: what [`Inner::edge_config`] or
    /// [`Inner::shield_config`] builds in process, as TOML.
    fn child_file(&self, k: usize) -> Result<(&'static str, toml::Table), Error> {
        let s = &self.slots[k];
        let c = &self.config;
        let mut t = toml::Table::new();
        let (kind, region, upstream_key, upstreams, health) = match s.role {
            Role::Origin => {
                return Err(Error::Node {
                    what: s.name.clone(),
                    reason: "the origin runs in the cluster's process".into(),
                });
            }
            Role::Shield(i) => (
                "shield",
                c.shields[i].place.region.clone(),
                "origin",
                vec![self.shield_origin_links[i].clone()],
                // One origin: no active checks (see `shield_config`).
                Duration::ZERO,
            ),
            Role::Edge(i) => (
                "edge",
                c.edges[i].place.region.clone(),
                "upstream",
                self.edge_links[i].clone(),
                c.upstream_health_interval,
            ),
        };
        t.insert("name".into(), text(&s.name));
        t.insert("region".into(), text(region));
        t.insert("site-host".into(), text(&c.site_host));
        t.insert("listen".into(), text(s.listen));
        if let Some(a) = s.admin {
            t.insert("admin-listen".into(), text(a));
        }
        t.insert(upstream_key.into(), list(&upstreams));
        if kind == "shield" {
            t.insert("trusted-forwarders".into(), list(&["127.0.0.1/32".into()]));
        }
        t.insert(
            "cache".into(),
            table(&[("size", text(meridian_common::ByteSize(c.cache_size)))]),
        );
        t.insert(
            "health".into(),
            table(&[("interval", text(meridian_common::HumanDuration(health)))]),
        );
        t.insert(
            "purge".into(),
            table(&[("log", text(format!("http://{}", self.director_admin)))]),
        );
        if let (Role::Edge(i), Some(tls), Some(addr)) = (s.role, &self.tls, s.tls)
            && let Some(cert) = tls.edges.get(i)
        {
            let pair = table(&[
                ("cert", text(absolute(&cert.cert).display())),
                ("key", text(absolute(&cert.key).display())),
            ]);
            t.insert(
                "tls".into(),
                table(&[
                    ("listen", text(addr)),
                    ("cert", toml::Value::Array(vec![pair])),
                ]),
            );
        }
        Ok((kind, t))
    }

    /// Starts slot `k` as a child process on its addresses (the caller
    /// has released its listeners) and answers the task that kills it when
    /// `stop` fires, or logs its death if it goes first.
    pub(super) async fn spawn_child(
        &self,
        k: usize,
        stop: Shutdown,
    ) -> Result<tokio::task::JoinHandle<()>, Error> {
        let s = &self.slots[k];
        let name = s.name.clone();
        let failed = |reason: String| Error::Node {
            what: format!("node `{name}`"),
            reason,
        };
        let state = absolute(&self.config.state_dir);
        let f = files(&state, &name);
        let dir = state.join(NODES_DIR);
        std::fs::create_dir_all(&dir).map_err(|source| Error::State {
            path: dir.clone(),
            source,
        })?;
        let (kind, file) = self.child_file(k)?;
        let body = toml::to_string(&file).map_err(|e| failed(e.to_string()))?;
        // Checked here, so a bad file is this error and not a dead child.
        let source = f.config.display().to_string();
        match kind {
            "edge" => {
                let parsed: meridian_proxy::FileConfig =
                    meridian_common::parse_toml(&f.config, &body)?;
                parsed.validate(&source)?;
            }
            _ => {
                let parsed: meridian_origin_shield::FileConfig =
                    meridian_common::parse_toml(&f.config, &body)?;
                parsed.validate(&source)?;
            }
        }
        let header = format!(
            "# Written by `meridian cluster up` (cluster.processes) for `{name}`; \
             rewritten at each start.\n"
        );
        std::fs::write(&f.config, format!("{header}{body}")).map_err(|source| Error::State {
            path: f.config.clone(),
            source,
        })?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&f.log)
            .map_err(|source| Error::State {
                path: f.log.clone(),
                source,
            })?;
        let log2 = log.try_clone().map_err(|source| Error::State {
            path: f.log.clone(),
            source,
        })?;
        let binary = match &self.config.node_binary {
            Some(b) => b.clone(),
            None => std::env::current_exe()
                .map_err(|e| failed(format!("cannot find this executable: {e}")))?,
        };
        let mut child = Command::new(&binary)
            .arg(kind)
            .arg("--config")
            .arg(&f.config)
            .env(meridian_common::auth::TOKEN_ENV, &self.token)
            .stdin(std::process::Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| failed(format!("cannot run {}: {e}", binary.display())))?;
        let pid = child.id().unwrap_or(0);
        if let Err(source) = std::fs::write(&f.pid, format!("{pid}\n")) {
            let _ = child.start_kill();
            return Err(Error::State {
                path: f.pid.clone(),
                source,
            });
        }
        let mut wait_for: Vec<SocketAddr> = vec![s.listen];
        wait_for.extend(s.admin);
        wait_for.extend(s.tls);
        if let Err(reason) = ready(&mut child, &wait_for).await {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(REAP_TIMEOUT, child.wait()).await;
            let _ = std::fs::remove_file(&f.pid);
            return Err(failed(format!("{reason} (its log: {})", f.log.display())));
        }
        tracing::info!(node = %name, pid, log = %f.log.display(), "child process listening");
        Ok(tokio::spawn(supervise(name, child, pid, f.pid, stop)))
    }
}

/// Waits until every address accepts, or the child exits, or
/// [`START_TIMEOUT`].
async fn ready(child: &mut Child, addrs: &[SocketAddr]) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    for &addr in addrs {
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("exited ({status}) before listening on {addr}"));
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!("not listening on {addr} after {START_TIMEOUT:?}"));
            }
            tokio::time::sleep(READY_POLL).await;
        }
    }
    Ok(())
}

/// Owns a running child: SIGKILLs it when `stop` fires; logs it if it dies
/// on its own. Either way the pid file goes once it is reaped.
async fn supervise(name: String, mut child: Child, pid: u32, pid_file: PathBuf, stop: Shutdown) {
    tokio::select! {
        _ = stop.wait() => {
            // `Child::start_kill` is SIGKILL on Unix.
            if let Err(e) = child.start_kill() {
                tracing::warn!(node = %name, pid, "kill: {e}");
            }
            match tokio::time::timeout(REAP_TIMEOUT, child.wait()).await {
                Ok(Ok(status)) => tracing::info!(node = %name, pid, %status, "killed (SIGKILL)"),
                Ok(Err(e)) => tracing::warn!(node = %name, pid, "wait: {e}"),
                Err(_) => tracing::warn!(node = %name, pid, "not reaped within {REAP_TIMEOUT:?}"),
            }
        }
        status = child.wait() => match status {
            Ok(status) => tracing::error!(node = %name, pid, %status, "child process exited on its own"),
            Err(e) => tracing::error!(node = %name, pid, "wait: {e}"),
        },
    }
    let _ = std::fs::remove_file(&pid_file);
}
