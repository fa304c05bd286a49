//! The tests' HTTP client and the small helpers for reading its answers.

use std::time::Duration;

/// A client for loopback servers: no proxy from the environment, no
/// redirects followed (a redirect is an answer under test), and a bound on
/// every request so a hung server fails the test instead of stalling it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// The response's `Cache-Status`, or "" without one.
pub fn cache_status(r: &reqwest::Response) -> String {
    r.headers()
        .get("cache-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The site the shield tests request. The cache key includes the host, and
/// real clients send the site's name to whichever edge they reach, not the
/// edge's address; so do the tests, or each edge would have its own keys.
pub const HOST: &str = "cdn.test";

/// GETs `url` for [`HOST`] and returns (status, x-origin, cache-status, body).
pub async fn get(c: &reqwest::Client, url: &str) -> (u16, String, String, String) {
    let r = c
        .get(url)
        .header("host", HOST)
        .send()
        .await
        .expect("request");
    let origin = r
        .headers()
        .get("x-origin")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let (status, cs) = (r.status().as_u16(), cache_status(&r));
    (status, origin, cs, r.text().await.expect("body"))
}
