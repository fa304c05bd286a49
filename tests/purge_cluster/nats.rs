//! A real `nats-server -js` process for the cluster purge test: its port
//! chosen by the server itself (`-p -1`, read from its log, so no race for
//! a free port), its store in a temporary directory, killed on drop. It can
//! be killed and started again on the same port and store, as an operator
//! restarts it. Without `nats-server` the test fails (it never skips).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use super::Proc;

/// A `nats-server -js` of our own.
pub struct NatsServer {
    proc: Option<Proc>,
    port: u16,
    store: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let dirs = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    dirs.into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nats-server is not installed, and the NATS cluster purge test needs it: \
                 apt-get install nats-server (.ci/run does this)"
            )
        })
}

impl NatsServer {
    /// Starts a server on a port of its choosing; returns once it serves
    /// JetStream.
    pub async fn start() -> NatsServer {
        let store = tempfile::tempdir().expect("tempdir");
        let proc = spawn(&store, None);
        let port = listening_port(&proc).await;
        ready(&proc).await;
        NatsServer {
            proc: Some(proc),
            port,
            store,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: nothing is flushed on the way out).
    pub fn kill(&mut self) {
        drop(self.proc.take());
    }

    /// Starts it again on the same port and store; returns once it serves.
    pub async fn start_again(&mut self) {
        self.kill();
        let proc = spawn(&self.store, Some(self.port));
        ready(&proc).await;
        self.proc = Some(proc);
    }
}

fn spawn(store: &tempfile::TempDir, port: Option<u16>) -> Proc {
    let port = port.map_or_else(|| "-1".to_owned(), |p| p.to_string());
    let mut command = Command::new(binary());
    command
        .args(["-js", "-a", "127.0.0.1", "-p", &port, "-sd"])
        .arg(store.path());
    Proc::spawn("nats-server", command)
}

async fn listening_port(proc: &Proc) -> u16 {
    let line = proc.line("Listening for client connections on").await;
    line.rsplit(':')
        .next()
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port in `{line}`"))
}

/// `Server is ready` is logged once JetStream has started.
async fn ready(proc: &Proc) {
    proc.line("Server is ready").await;
}

/// One node's durable consumer, as the server sees it right now.
pub struct Consumer {
    /// Entries not yet delivered, or delivered and not acknowledged.
    pub behind: u64,
    /// Pull requests the server holds for it (a stopped node's expire).
    pub waiting: usize,
}

impl NatsServer {
    async fn stream(&self) -> Option<async_nats::jetstream::stream::Stream> {
        let client = async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(1))
            .connect(self.url())
            .await
            .ok()?;
        async_nats::jetstream::new(client)
            .get_stream(meridian_purge::nats_log::STREAM)
            .await
            .ok()
    }

    /// The stream's last sequence (the log's head), if the server answers;
    /// faster than the full status, which listens for heartbeats.
    pub async fn head(&self) -> Option<u64> {
        Some(self.stream().await?.info().await.ok()?.state.last_sequence)
    }

    /// `node`'s consumer, if the server answers.
    pub async fn consumer(&self, node: &str) -> Option<Consumer> {
        let name = meridian_purge::nats_log::consumer_name(node);
        let info = self.stream().await?.consumer_info(name).await.ok()?;
        Some(Consumer {
            behind: info
                .num_pending
                .saturating_add(u64::try_from(info.num_ack_pending).unwrap_or(u64::MAX)),
            waiting: info.num_waiting,
        })
    }
}
