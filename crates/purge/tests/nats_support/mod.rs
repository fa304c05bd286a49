//! A real `nats-server -js` for the purge log tests, on a port from the OS
//! with its store in a temporary directory, killed on drop. Without
//! `nats-server` the tests fail (they never skip).

// Each test crate that includes this uses a part of it.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `nats-server -js` of our own; killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    token: Option<String>,
}

fn nats_server_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("nats-server"));
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "nats-server is not installed, and the NATS purge log tests need it: \
         apt-get install nats-server (.ci/run does this)"
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

impl NatsServer {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    pub async fn start_with(token: Option<&str>) -> Self {
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store: tempfile::tempdir().expect("tempdir"),
            token: token.map(str::to_string),
        };
        server.spawn().await;
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) {
        let mut command = Command::new(nats_server_binary());
        command
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(self.store.path())
            .arg("-l")
            .arg(self.store.path().join("server.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(token) = &self.token {
            command.args(["--auth", token]);
        }
        self.child = Some(command.spawn().expect("start nats-server"));
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let url = self.url();
        let token = self.token.clone();
        eventually(
            "nats-server serves JetStream",
            Duration::from_secs(15),
            || {
                let url = url.clone();
                let token = token.clone();
                async move {
                    if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
                        return false;
                    }
                    let options = match token {
                        Some(t) => async_nats::ConnectOptions::with_token(t),
                        None => async_nats::ConnectOptions::new(),
                    };
                    let Ok(client) = options.connect(url).await else {
                        return false;
                    };
                    // The account info request answers once JetStream is up
                    // (the typed call does not parse a 2.9 server's answer).
                    match client.request("$JS.API.INFO", "".into()).await {
                        Ok(reply) => {
                            let body = String::from_utf8_lossy(&reply.payload);
                            body.contains("account_info_response") && !body.contains("\"error\"")
                        }
                        Err(_) => false,
                    }
                }
            },
        )
        .await;
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server and starts it again on the same port and store.
    pub async fn restart_after(&mut self, down: impl std::future::Future<Output = ()>) {
        self.kill();
        down.await;
        self.spawn().await;
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 20 ms until it holds, failing after `within`.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within {within:?}: {what}");
}
