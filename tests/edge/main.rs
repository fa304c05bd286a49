//! End-to-end tests of the edge: a real axum origin that counts what it
//! sees, a real edge, a real HTTP client, all on 127.0.0.1 with ports from
//! the OS. Each module checks one group of the numbered behaviours of the
//! foundation issue from the client's side.

#[path = "../support/mod.rs"]
mod support;

mod admin;
mod authority;
mod collapsing;
mod compression;
mod conditional_range;
mod failures;
mod forwarding;
mod health;
mod hostile_client;
mod hostile_origin;
mod http2;
mod http2_flood;
mod keys_vary;
mod metrics;
mod purge;
mod purge_lag;
mod revalidation;
mod rfc_gaps;
mod sample_site;
mod storage;
mod streaming;
mod tls;
mod upstream_tls;
mod zero_copy;
