//! Loopback relays for every hop between nodes (being written).

use std::net::SocketAddr;
use std::time::Duration;

use meridian_common::Shutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::control::Fault;

/// Where a relay sends its connections, and the fault of the node there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Target {
    /// The node's real listener; `None` while it is stopped.
    pub addr: Option<SocketAddr>,
    pub fault: Fault,
}

/// A target that can change while relays run (a node stopped, restarted on
/// a new port, slowed).
pub type TargetWatch = watch::Receiver<Target>;

/// Serves a link until `shutdown`.
pub async fn serve_link(
    listener: TcpListener,
    rtt: Duration,
    target: TargetWatch,
    shutdown: Shutdown,
) {
    let _ = (listener, rtt, target, shutdown);
    todo!("link helper")
}

/// Serves a front until `shutdown`.
pub async fn serve_front(listener: TcpListener, targets: Vec<TargetWatch>, shutdown: Shutdown) {
    let _ = (listener, targets, shutdown);
    todo!("link helper")
}
