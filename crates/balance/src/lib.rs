//! Upstream selection and health for Meridian: which origin (from a shield)
//! or which shield (from an edge) gets a request.

pub mod health;

pub use health::{Health, HealthPolicy, Transition};
