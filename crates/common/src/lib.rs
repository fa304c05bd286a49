//! Pieces every Meridian service shares: loading a TOML config file with
//! errors that name the file, the key and the reason; human-friendly sizes
//! (`256MiB`) and durations (`2s`) for config values and flags; and the
//! shutdown signal handed to every `run` function.
//!
//! `serde_path_to_error` is used (rather than plain `toml::from_str`) because
//! it reports the full dotted path of the offending key, which is what an
//! operator needs to fix a config file.

pub mod auth;
pub mod certs;
mod config;
pub mod host;
mod shutdown;
mod units;

pub use config::{ConfigError, load_toml, parse_toml};
pub use shutdown::{Shutdown, shutdown_signal};
pub use units::{ByteSize, HumanDuration, UnitError};
