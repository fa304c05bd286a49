//! The one test-support module of every end-to-end test binary (`tests/edge`,
//! `tests/shield.rs`, `tests/director.rs`): real axum origins that record
//! what reaches them ([`Origin`], [`StreamOrigin`], behind TLS
//! [`TlsOrigin`]), a raw-TCP origin that misbehaves on cue
//! ([`RawOrigin`]), real edges and shields started in this process
//! ([`Node`]), one HTTP [`client`] (and an HTTP/2 one with a raw frame
//! writer, [`h2c`]; a raw-TCP one that sends exact bytes, [`raw_client`]), and
//! [`eventually`] instead of sleeps. Everything listens on 127.0.0.1 with a
//! port from the OS; nothing leaves loopback.

// Each test binary compiles this module and uses a different part of it
// (the director's tests need only `client` and `eventually`), so an item
// unused by one binary is not dead: every item here is used by at least
// one of them.
#![allow(dead_code)]

mod client;
mod eventually;
pub mod h2c;
mod node;
mod origin;
pub mod raw_client;
mod raw_origin;
mod stream_origin;
pub mod tls;
mod tls_origin;

// Re-exported for the binaries that use them; unused in the others, as above.
#[allow(unused_imports)]
pub use client::{HOST, cache_status, client, get};
#[allow(unused_imports)]
pub use eventually::eventually;
#[allow(unused_imports)]
pub use node::{INTERVAL, Node, fast_health};
#[allow(unused_imports)]
pub use origin::{Origin, Reply, Seen};
#[allow(unused_imports)]
pub use raw_client::{Exchange, RawClient};
#[allow(unused_imports)]
pub use raw_origin::{RawOrigin, Request, Script, Step, response};
#[allow(unused_imports)]
pub use stream_origin::{StreamOrigin, StreamSpec};
#[allow(unused_imports)]
pub use tls::Pki;
#[allow(unused_imports)]
pub use tls_origin::{Handshake, TlsOrigin};
