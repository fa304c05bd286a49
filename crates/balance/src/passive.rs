//! Passive health: what real traffic may say about a backend, and when it
//! takes one out.
//!
//! The rules, each chosen so that no client can take a tier down:
//! - Only failures of the backend itself count: a connect failure, a
//!   timeout, a reset before the response head. A 5xx is the origin's
//!   answer for *that URL* (one broken page must not eject a server that
//!   serves every other page), so it counts only when the operator opts in
//!   (`health.eject-on-5xx`, as nginx's `proxy_next_upstream http_500` or
//!   Envoy's `consecutive_5xx`). Errors caused by the client (a malformed
//!   request body) are never reported at all.
//! - A counted failure ejects the backend for the cool-off, except the last
//!   healthy one: with nothing to fail over to, ejecting it only turns one
//!   failed request into seconds of errors for everyone.
//! - When every backend is down anyway, the pool picks among all of them
//!   (Envoy's panic mode, see [`crate::Pool::pick`]) rather than refuse.

use std::time::Duration;

/// How long a passive ejection keeps a backend out unless the pool says otherwise.
pub const DEFAULT_COOL_OFF: Duration = Duration::from_secs(10);

/// What happened to one request to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An answer that is not a 5xx (a 404 is the origin working correctly).
    Ok,
    /// The TCP connect failed: refused, unreachable, or timed out.
    ConnectError,
    /// Connected, but no response head within the response timeout.
    Timeout,
    /// The connection was reset or closed before a response head came.
    Reset,
    /// The backend answered 5xx.
    ServerError,
}

impl Outcome {
    /// `ServerError` for 5xx, `Ok` otherwise.
    pub fn from_status(status: http::StatusCode) -> Self {
        if status.is_server_error() {
            Outcome::ServerError
        } else {
            Outcome::Ok
        }
    }

    /// Whether this outcome is held against the backend under `policy`.
    pub fn counts_against(self, policy: &PassivePolicy) -> bool {
        match self {
            Outcome::Ok => false,
            Outcome::ConnectError | Outcome::Timeout | Outcome::Reset => true,
            Outcome::ServerError => policy.eject_on_5xx,
        }
    }
}

/// The operator's passive-health settings for one pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassivePolicy {
    /// How long a counted failure keeps a backend out (default 10s).
    pub cool_off: Duration,
    /// Whether a 5xx answer counts as a failure (default false).
    pub eject_on_5xx: bool,
}

impl Default for PassivePolicy {
    fn default() -> Self {
        PassivePolicy {
            cool_off: DEFAULT_COOL_OFF,
            eject_on_5xx: false,
        }
    }
}

/// What [`crate::Pool::report`] did with an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not held against the backend (a success, or a 5xx not configured to count).
    NotCounted,
    /// Counted as a failure, but the backend stays in: it is the last healthy one.
    Spared,
    /// Counted and the backend is out for the cool-off.
    Ejected,
}

/// The ejection rule on its own: a counted failure ejects unless no other
/// backend is up.
pub(crate) fn verdict(counts: bool, others_up: bool) -> Verdict {
    match (counts, others_up) {
        (false, _) => Verdict::NotCounted,
        (true, false) => Verdict::Spared,
        (true, true) => Verdict::Ejected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn only_backend_failures_count_and_5xx_only_when_configured() {
        let default = PassivePolicy::default();
        let strict = PassivePolicy {
            eject_on_5xx: true,
            ..default
        };
        let cases = [
            (Outcome::Ok, false, false),
            (Outcome::from_status(StatusCode::NOT_FOUND), false, false),
            (
                Outcome::from_status(StatusCode::TOO_MANY_REQUESTS),
                false,
                false,
            ),
            (Outcome::ConnectError, true, true),
            (Outcome::Timeout, true, true),
            (Outcome::Reset, true, true),
            (
                Outcome::from_status(StatusCode::INTERNAL_SERVER_ERROR),
                false,
                true,
            ),
            (Outcome::from_status(StatusCode::BAD_GATEWAY), false, true),
        ];
        for (outcome, by_default, when_configured) in cases {
            assert_eq!(outcome.counts_against(&default), by_default, "{outcome:?}");
            assert_eq!(
                outcome.counts_against(&strict),
                when_configured,
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn last_healthy_backend_is_never_ejected() {
        let cases = [
            (false, false, Verdict::NotCounted),
            (false, true, Verdict::NotCounted),
            (true, false, Verdict::Spared),
            (true, true, Verdict::Ejected),
        ];
        for (counts, others_up, want) in cases {
            assert_eq!(verdict(counts, others_up), want, "{counts} {others_up}");
        }
    }
}
