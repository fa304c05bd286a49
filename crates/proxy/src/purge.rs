//! Applying a [`Purge`] to this node's store: URLs become cache keys exactly
//! as a request for them would (one authority, `site-host`, query
//! normalisation), prefixes become key prefixes.
//!
//! A URL or a prefix without a scheme covers both `http` and `https`: an
//! operator purges a resource, not a transport (a shield keys what edges
//! send it over plain HTTP, whatever scheme the client used at the edge).
//!
//! Every way in (the admin `POST /purge`, the `PURGE` method, the purge
//! log's follower) goes through [`Engine::purge_now`].

use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{HeaderMap, StatusCode};
use meridian_cache::store::Selector;
use meridian_cache::{CacheStatus, Fwd, KeyOptions, cache_key};
use meridian_common::auth::{Denied, Scope};
use meridian_purge::{Applied, Applier, Purge};
use serde_json::{Value, json};

use crate::authority::{Authority, Scheme};
use crate::body::Body;
use crate::engine::{Engine, Req};
use crate::metrics::PurgeKind;
use crate::outcome::Served;
use crate::respond;

/// Request fields that make a `PURGE` soft: ours, and Fastly's, so tools
/// written for Fastly work unchanged.
const SOFT_PURGE_FIELDS: [&str; 2] = ["soft-purge", "fastly-soft-purge"];

/// `Cache-Status` detail of the answer to a `PURGE` request.
const PURGE_DETAIL: &str = "purge";

impl Engine {
    /// Validates and applies `purge` to this node's store: the one entry
    /// point for the admin API, the `PURGE` method and the purge log, so
    /// each purge is checked, applied and logged the same way. An error
    /// says what is wrong (a limit, or the item that does not parse);
    /// nothing is applied then.
    pub fn purge_now(&self, purge: &Purge) -> Result<Applied, String> {
        purge.validate()?;
        let applied = self.apply(purge)?;
        let kinds: Vec<&str> = purge.kinds().iter().map(|k| k.as_str()).collect();
        tracing::info!(
            node = %self.name,
            kinds = %kinds.join(","),
            soft = purge.soft,
            entries = applied.entries,
            micros = applied.micros,
            "purge applied"
        );
        Ok(applied)
    }

    /// The answer to a purge this node applied (admin API and `PURGE`).
    pub fn purge_answer(&self, purge: &Purge, applied: &Applied) -> Value {
        json!({
            "node": self.name,
            "tier": self.tier.as_str(),
            "kinds": purge.kinds(),
            "soft": purge.soft,
            "entries": applied.entries,
            "micros": applied.micros,
        })
    }

    /// The `PURGE` method on the proxy listener: purges the request's own
    /// URL (the listener's scheme, the request's authority, its path and
    /// query, so exactly the key a GET for it uses) when it carries a
    /// token with the `purge` scope. Never forwarded upstream.
    pub(crate) fn purge_request(&self, req: &Req) -> Served {
        let mut cs = CacheStatus::forward(Fwd::Bypass);
        cs.detail = Some(PURGE_DETAIL);
        let authorization = req
            .parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if let Err(denied) = self.admin_tokens.check(authorization, Scope::Purge) {
            let (code, body, headers) = refusal(denied, Scope::Purge);
            let mut r = json_response(&self.stamp, code, &body, &cs);
            r.headers_mut().extend(headers);
            return (r, cs);
        }
        let scheme = req.authority.scheme();
        let path_and_query = req.parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let mut purge = Purge::url(format!(
            "{scheme}://{}{path_and_query}",
            req.authority.as_str()
        ));
        purge.soft = SOFT_PURGE_FIELDS.iter().any(|f| {
            req.parts
                .headers
                .get(*f)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "1")
        });
        let (code, body) = match self.purge_now(&purge) {
            Ok(applied) => (StatusCode::OK, self.purge_answer(&purge, &applied)),
            Err(why) => (StatusCode::BAD_REQUEST, json!({ "error": why })),
        };
        (json_response(&self.stamp, code, &body, &cs), cs)
    }

    /// The store selectors for `purge`, or the item that does not parse.
    pub fn selectors(&self, purge: &Purge) -> Result<Vec<Selector>, String> {
        if purge.all {
            return Ok(vec![Selector::All]);
        }
        let mut out = Vec::new();
        for url in &purge.urls {
            let (schemes, rest) = split_scheme(url)?;
            let (authority, path) = split_authority(rest);
            let path = url_target(path, url)?;
            for &scheme in schemes {
                let host = self.purge_host(authority, scheme, url)?;
                out.push(Selector::Key(cache_key(
                    scheme.as_str(),
                    &host,
                    path,
                    &self.key_opts,
                )));
            }
        }
        for prefix in &purge.prefixes {
            let (schemes, rest) = split_scheme(prefix)?;
            let (authority, path) = split_authority(rest);
            for &scheme in schemes {
                let host = self.purge_host(authority, scheme, prefix)?;
                // Byte for byte: a prefix is not a query to normalise.
                let key = cache_key(scheme.as_str(), &host, path, &KeyOptions::default());
                out.push(Selector::Prefix(key));
            }
        }
        out.extend(purge.tags.iter().map(|t| Selector::Tag(t.clone())));
        Ok(out)
    }

    /// The key host for an authority named in a purge: the site host when
    /// `site-host` is set (as for requests), else the authority itself.
    fn purge_host(&self, authority: &str, scheme: Scheme, item: &str) -> Result<String, String> {
        let a = Authority::parse(authority, scheme)
            .map_err(|e| format!("`{item}`: bad host `{authority}`: {e}"))?;
        Ok(match &self.site {
            Some(site) => site[usize::from(scheme == Scheme::Https)]
                .as_str()
                .to_owned(),
            None => a.as_str().to_owned(),
        })
    }
}

/// A refusal by the token check: its status, its JSON body, and
/// `WWW-Authenticate: Bearer` on a 401 (RFC 6750 §3).
pub fn refusal(denied: Denied, scope: Scope) -> (StatusCode, Value, HeaderMap) {
    let code = StatusCode::from_u16(denied.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut headers = HeaderMap::new();
    if code == StatusCode::UNAUTHORIZED {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    (code, json!({ "error": denied.message(scope) }), headers)
}

/// A JSON answer generated by the proxy listener itself, never stored.
fn json_response(
    stamp: &respond::Stamp,
    code: StatusCode,
    body: &Value,
    cs: &CacheStatus,
) -> http::Response<Body> {
    let text = body.to_string();
    let mut h = HeaderMap::new();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
    respond::passthrough(stamp, code, h, Body::from(text), cs)
}

const BOTH: &[Scheme] = &[Scheme::Http, Scheme::Https];

/// `http://`, `https://` or no scheme (both).
fn split_scheme(item: &str) -> Result<(&'static [Scheme], &str), String> {
    if let Some(rest) = strip_prefix_ci(item, "http://") {
        return Ok((&[Scheme::Http], rest));
    }
    if let Some(rest) = strip_prefix_ci(item, "https://") {
        return Ok((&[Scheme::Https], rest));
    }
    if item.contains("://") {
        return Err(format!(
            "`{item}`: only http:// and https:// URLs are cached"
        ));
    }
    Ok((BOTH, item))
}

/// The request target a URL's `/path?query` stands for: without a
/// fragment (never sent in a request), and only when it is one a request
/// could carry (any other could never have been stored).
fn url_target<'a>(path: &'a str, url: &str) -> Result<&'a str, String> {
    let path = path.split_once('#').map_or(path, |(p, _)| p);
    if !path.is_empty() && path.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(format!("`{url}`: not a valid URL path and query"));
    }
    Ok(path)
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `host[:port]` and the rest (`/path?query`, or "" for the whole host).
fn split_authority(rest: &str) -> (&str, &str) {
    match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    }
}

impl Applier for Engine {
    fn apply(&self, purge: &Purge) -> Result<Applied, String> {
        let started = Instant::now();
        let selectors = self.selectors(purge)?;
        // One purge request counts once per kind it contains, whatever
        // number of keys (both schemes, several URLs) it expands to.
        let mut by_kind = [None::<usize>; 4];
        for s in &selectors {
            let kind = PurgeKind::of(s);
            let n = self.store.purge(s, purge.soft);
            *by_kind[kind as usize].get_or_insert(0) += n;
        }
        let mut entries = 0u64;
        for kind in PurgeKind::ALL {
            if let Some(n) = by_kind[kind as usize] {
                self.metrics.purged(kind, purge.soft, n);
                entries += n as u64;
            }
        }
        Ok(Applied {
            entries,
            micros: u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        assert_eq!(split_scheme("HTTP://a/b").expect("test").1, "a/b");
        assert_eq!(split_scheme("a/b").expect("test").0.len(), 2);
        assert!(split_scheme("ftp://a/b").is_err());
        assert_eq!(
            split_authority("a.example:8080/x?y"),
            ("a.example:8080", "/x?y")
        );
        assert_eq!(split_authority("a.example"), ("a.example", ""));
        assert_eq!(split_authority("a.example?q"), ("a.example", "?q"));
        assert_eq!(url_target("/a?x#frag", "u"), Ok("/a?x"));
        assert_eq!(url_target("", "u"), Ok(""));
        assert!(url_target("/a b", "u").expect_err("space").contains("`u`"));
    }
}
