//! `meridian cluster up`: a whole multi-region CDN on one machine, in one
//! process. A sample origin with a sample site, two shields (keys split
//! between them by rendezvous hashing, each the other's fallback), edges in
//! named regions with coordinates (a region may hold several edges behind
//! its own balancer), the geo director and the cluster purge log, each on
//! its own loopback port with its own admin listener.
//!
//! ```text
//!  clients ─► director ─302─► front (per edge url) ─► edge ─► link ─► shield ─► link ─► origin
//!                              (faults, regional       (rtt from the distance between
//!                               balancing)              the two nodes' regions)
//! ```
//!
//! - [`latency`]: the distance model (great-circle km → round trip),
//!   calibrated against measured inter-city pings.
//! - [`link`]: the loopback relays that carry every hop between nodes with
//!   its simulated latency, and the fronts that put faults (stop, slow,
//!   fail) and regional balancing in front of edges.
//! - [`control`]: the cluster's shape and the actions on it, shared by the
//!   dashboard and `meridian cluster stop|start|slow|fail`.
//! - [`dashboard`]: the live web page (world map, per-node numbers, purges,
//!   buttons), served from the binary.
//! - [`config`] and [`run`]: the cluster file and starting everything.

pub mod config;
pub mod control;
pub mod dashboard;
pub mod latency;
pub mod link;
pub mod run;
pub mod summary;
