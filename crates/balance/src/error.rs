/// Everything that can go wrong building a pool. Messages name the input
/// that was wrong so an operator can fix the flag or config key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BalanceError {
    #[error("backend URL `{url}`: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("backend `{spec}`: weight {reason}")]
    InvalidWeight { spec: String, reason: String },
    #[error(
        "backend `{spec}`: unknown option `{key}` (options: `weight`, `id`; for https also `ca`, `sni`, `insecure-skip-verify`)"
    )]
    UnknownOption { spec: String, key: String },
    #[error("unknown balance algorithm `{name}` (valid: {valid})")]
    UnknownBalance { name: String, valid: String },
    #[error("a pool needs at least one backend")]
    NoBackends,
    #[error("backend `{url}` is listed twice")]
    DuplicateBackend { url: String },
    #[error("health checks need a running tokio runtime")]
    NoRuntime,
}
