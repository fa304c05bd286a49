use std::path::PathBuf;

use meridian_common::ConfigError;

/// Everything that stops the director from starting or reloading.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A geo database that cannot be used; `reason` says why in words an
    /// operator can act on (missing file, not a MaxMind DB, unknown layout).
    #[error("geo database {}: {reason}", path.display())]
    Database { path: PathBuf, reason: String },
    #[error("cannot build the health-check client: {0}")]
    HttpClient(#[source] reqwest::Error),
    /// The purge log could not be opened, or has nowhere to serve.
    #[error("purge log: {0}")]
    PurgeLog(String),
    #[error("{what} listener failed: {source}")]
    Serve {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn database(path: &std::path::Path, reason: impl Into<String>) -> Self {
        Error::Database {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }
}
