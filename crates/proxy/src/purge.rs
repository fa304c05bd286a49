//! Applying a [`Purge`] to this node's store: URLs become cache keys exactly
//! as a request for them would (one authority, `site-host`, query
//! normalisation), prefixes become key prefixes.
//!
//! A URL or a prefix without a scheme covers both `http` and `https`: an
//! operator purges a resource, not a transport (a shield keys what edges
//! send it over plain HTTP, whatever scheme the client used at the edge).

use std::time::Instant;

use meridian_cache::store::Selector;
use meridian_cache::{KeyOptions, cache_key};
use meridian_purge::{Applied, Applier, Purge};

use crate::authority::{Authority, Scheme};
use crate::engine::Engine;
use crate::metrics::PurgeKind;

impl Engine {
    /// The store selectors for `purge`, or the item that does not parse.
    pub fn selectors(&self, purge: &Purge) -> Result<Vec<Selector>, String> {
        if purge.all {
            return Ok(vec![Selector::All]);
        }
        let mut out = Vec::new();
        for url in &purge.urls {
            let (schemes, rest) = split_scheme(url)?;
            let (authority, path) = split_authority(rest);
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
    }
}
