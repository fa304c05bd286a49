//! Admin tokens: `Authorization: Bearer <token>` checked in constant time
//! against tokens from `MERIDIAN_ADMIN_TOKEN` (every scope) and the config
//! (`[[admin.token]]`: a name, a `secret-file`, scopes).
//!
//! `subtle` does the comparison: it is the RustCrypto project's
//! constant-time primitive, and both sides are hashed to a fixed length
//! first, so neither the content nor the length of a configured secret
//! leaks through timing.

use std::path::Path;

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::ConfigError;

/// The environment variable holding a token with every scope.
pub const TOKEN_ENV: &str = "MERIDIAN_ADMIN_TOKEN";

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Take content out: `POST /purge`, `PURGE`, `POST /v1/purge`.
    Purge,
    /// Read state that is not public (`/stats`, purge status).
    Read,
    /// Follow the purge log and confirm entries (nodes, to the log keeper).
    Follow,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Purge => "purge",
            Scope::Read => "read",
            Scope::Follow => "follow",
        }
    }
}

/// One `[[admin.token]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TokenConfig {
    /// Shown in logs and purge answers (never the secret).
    pub name: String,
    /// File whose first line is the secret (relative to the config file).
    pub secret_file: std::path::PathBuf,
    /// What the token may do (default: every scope).
    pub scopes: Option<Vec<Scope>>,
}

struct Token {
    name: String,
    digest: [u8; 32],
    scopes: Vec<Scope>,
}

/// The tokens a listener accepts.
#[derive(Default)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.tokens.iter().map(|t| t.name.as_str()).collect();
        f.debug_struct("Tokens").field("names", &names).finish()
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token is configured at all: 403, with how to configure one.
    NotConfigured,
    /// No `Authorization: Bearer`: 401.
    Missing,
    /// A token that is not one of ours: 401.
    Wrong,
    /// A valid token without the scope: 403.
    Scope,
}

impl Denied {
    /// The HTTP status for this refusal.
    pub fn status(self) -> u16 {
        match self {
            Denied::Missing | Denied::Wrong => 401,
            Denied::NotConfigured | Denied::Scope => 403,
        }
    }

    /// A message for the answer body.
    pub fn message(self, scope: Scope) -> String {
        match self {
            Denied::NotConfigured => format!(
                "no admin token is configured: set {TOKEN_ENV}, or add an [[admin.token]] \
                 table (name, secret-file, scopes = [\"{}\"]) to the config",
                scope.as_str()
            ),
            Denied::Missing => "missing Authorization: Bearer <token>".to_string(),
            Denied::Wrong => "invalid token".to_string(),
            Denied::Scope => format!("token lacks the `{}` scope", scope.as_str()),
        }
    }
}

fn digest(secret: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(secret).into()
}

impl Tokens {
    /// No tokens: every protected route answers 403.
    pub fn none() -> Self {
        Tokens::default()
    }

    /// One token with every scope (tests, `cluster up`).
    pub fn single(name: &str, secret: &str) -> Self {
        let mut t = Tokens::none();
        t.add(name, secret, vec![Scope::Purge, Scope::Read, Scope::Follow]);
        t
    }

    /// Adds a token; an empty secret is ignored.
    pub fn add(&mut self, name: &str, secret: &str, scopes: Vec<Scope>) {
        let secret = secret.trim();
        if secret.is_empty() {
            return;
        }
        self.tokens.push(Token {
            name: name.to_string(),
            digest: digest(secret.as_bytes()),
            scopes,
        });
    }

    /// Tokens from `MERIDIAN_ADMIN_TOKEN` (named "env", every scope) and
    /// from `tables`, whose `secret-file`s are read relative to `base`
    /// (the config file's directory). `source` names the config file in
    /// errors.
    pub fn load(tables: &[TokenConfig], base: &Path, source: &str) -> Result<Self, ConfigError> {
        let mut t = Tokens::none();
        if let Ok(secret) = std::env::var(TOKEN_ENV) {
            t.add(
                "env",
                &secret,
                vec![Scope::Purge, Scope::Read, Scope::Follow],
            );
        }
        for (i, table) in tables.iter().enumerate() {
            let key = format!("admin.token[{i}].secret-file");
            let path = base.join(&table.secret_file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                ConfigError::invalid(source, &key, format!("{}: {e}", path.display()))
            })?;
            let secret = text.lines().next().unwrap_or("").trim();
            if secret.len() < 16 {
                return Err(ConfigError::invalid(
                    source,
                    &key,
                    format!(
                        "{}: the secret must be at least 16 characters",
                        path.display()
                    ),
                ));
            }
            let scopes = table
                .scopes
                .clone()
                .unwrap_or_else(|| vec![Scope::Purge, Scope::Read, Scope::Follow]);
            t.add(&table.name, secret, scopes);
        }
        Ok(t)
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks an `Authorization` header value for `scope`; on success the
    /// token's name. Every configured token is compared (no early exit), in
    /// constant time.
    pub fn check(&self, authorization: Option<&str>, scope: Scope) -> Result<&str, Denied> {
        if self.tokens.is_empty() {
            return Err(Denied::NotConfigured);
        }
        let Some(given) = authorization.and_then(bearer) else {
            return Err(Denied::Missing);
        };
        let given = digest(given.as_bytes());
        let mut found: Option<&Token> = None;
        for t in &self.tokens {
            if bool::from(t.digest.ct_eq(&given)) {
                found = Some(t);
            }
        }
        match found {
            None => Err(Denied::Wrong),
            Some(t) if !t.scopes.contains(&scope) => Err(Denied::Scope),
            Some(t) => Ok(&t.name),
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive, RFC 9110 §11.1).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals() {
        let none = Tokens::none();
        assert_eq!(
            none.check(Some("Bearer x"), Scope::Purge),
            Err(Denied::NotConfigured)
        );
        let mut t = Tokens::none();
        t.add("reader", "read-secret-0123456789", vec![Scope::Read]);
        t.add("ops", "purge-secret-0123456789", vec![Scope::Purge]);
        assert_eq!(t.check(None, Scope::Purge), Err(Denied::Missing));
        assert_eq!(
            t.check(Some("Basic abc"), Scope::Purge),
            Err(Denied::Missing)
        );
        assert_eq!(
            t.check(Some("Bearer nope"), Scope::Purge),
            Err(Denied::Wrong)
        );
        assert_eq!(
            t.check(Some("Bearer read-secret-0123456789"), Scope::Purge),
            Err(Denied::Scope)
        );
        assert_eq!(
            t.check(Some("bearer  purge-secret-0123456789 "), Scope::Purge),
            Ok("ops")
        );
        assert_eq!(Denied::Scope.status(), 403);
        assert_eq!(Denied::Wrong.status(), 401);
    }

    #[test]
    fn secret_files() {
        let dir = std::env::temp_dir().join(format!("meridian-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("test");
        std::fs::write(dir.join("short"), "abc\n").expect("test");
        std::fs::write(dir.join("ok"), "0123456789abcdef-xyz\nignored\n").expect("test");
        let table = |f: &str| TokenConfig {
            name: "t".into(),
            secret_file: f.into(),
            scopes: Some(vec![Scope::Read]),
        };
        let err = Tokens::load(&[table("short")], &dir, "x.toml").expect_err("test");
        assert!(
            err.to_string().contains("admin.token[0].secret-file"),
            "{err}"
        );
        let err = Tokens::load(&[table("missing")], &dir, "x.toml").expect_err("test");
        assert!(err.to_string().contains("x.toml"), "{err}");
        let t = Tokens::load(&[table("ok")], &dir, "x.toml").expect("test");
        assert_eq!(
            t.check(Some("Bearer 0123456789abcdef-xyz"), Scope::Read),
            Ok("t")
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
