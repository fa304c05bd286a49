//! The embedded purge log, kept by the director's admin listener, over HTTP.

use std::sync::Arc;
use std::time::Duration;

use crate::{Applier, FollowConfig, LogError, NodeRef, Purge, Report, Status, SyncState};

/// Follows the log (see [`crate::follow`]).
pub async fn follow(
    config: FollowConfig,
    _applier: Arc<dyn Applier>,
    _sync: Arc<SyncState>,
    shutdown: meridian_common::Shutdown,
) {
    tracing::error!(log = %config.log, "this purge log backend is not built yet");
    shutdown.wait().await;
}

/// Appends a purge and collects confirmations (see [`crate::publish`]).
pub async fn publish(
    log: &str,
    _token: Option<&str>,
    _purge: &Purge,
    _nodes: &[NodeRef],
    _deadline: Duration,
) -> Result<Report, LogError> {
    Err(LogError::Other(format!(
        "{log}: this purge log backend is not built yet"
    )))
}

/// Every node's sync (see [`crate::status`]).
pub async fn status(
    log: &str,
    _token: Option<&str>,
    _nodes: &[NodeRef],
) -> Result<Status, LogError> {
    Err(LogError::Other(format!(
        "{log}: this purge log backend is not built yet"
    )))
}
