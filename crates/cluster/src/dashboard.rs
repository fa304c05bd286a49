//! The live dashboard (being written).

use std::sync::Arc;

use meridian_common::Shutdown;

use crate::control::Control;

/// The dashboard's routes (the page, its assets, `/api/...`). `own` is the
/// listener's address (for the Host guard).
pub fn router(
    control: Arc<dyn Control>,
    own: std::net::SocketAddr,
    shutdown: Shutdown,
) -> axum::Router {
    let _ = (control, own, shutdown);
    todo!("dashboard helper")
}
