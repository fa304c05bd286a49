//! The sample site's one handler: count → method → path (health, API,
//! sitemap, asset, section redirect, 404) → preconditions → range →
//! response. As in [`crate::serve`], every failure becomes a status here
//! and nothing a client sends can make it panic.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode, Uri};
use meridian_cache::conditional::{self, Precondition};
use meridian_cache::range::{self, RangeOutcome};

use super::{Asset, Counters, SampleSite};
use crate::serve::{boundary, healthz, status_only};

struct Site {
    site: Arc<SampleSite>,
    counters: Arc<Counters>,
    /// Answers under `/api/` so far: the "dynamic" part of their JSON.
    api_calls: AtomicU64,
}

pub(crate) fn router(site: Arc<SampleSite>, counters: Arc<Counters>) -> Router {
    let state = Arc::new(Site {
        site,
        counters,
        api_calls: AtomicU64::new(0),
    });
    Router::new().fallback(handle).with_state(state)
}

async fn handle(State(st): State<Arc<Site>>, method: Method, uri: Uri, req: HeaderMap) -> Response {
    let path = uri.path();
    let get_or_head = method == Method::GET || method == Method::HEAD;
    // Health checks are the CDN's, not the site's traffic: not counted.
    if path == "/healthz" {
        return if get_or_head {
            healthz(&method)
        } else {
            not_allowed()
        };
    }
    st.counters.requests.fetch_add(1, Ordering::Relaxed);
    let resp = if !get_or_head {
        not_allowed()
    } else if path == "/api" || path.starts_with("/api/") {
        api(&st, &method, path)
    } else if path == "/sitemap.txt" {
        asset(&st.counters, st.site.sitemap(), &method, &req)
    } else if let Some(a) = st.site.get(path) {
        asset(&st.counters, a, &method, &req)
    } else {
        missing(&st, &method, path)
    };
    tracing::debug!(
        %method,
        path,
        status = resp.status().as_u16(),
        "sample origin request"
    );
    resp
}

/// One asset, as the file origin answers a file: 304 / 412 from the
/// preconditions, 206 / 416 from `Range` (GET only), else 200.
fn asset(counters: &Arc<Counters>, a: &Asset, method: &Method, req: &HeaderMap) -> Response {
    let mut headers = a.headers().clone();
    put_date(&mut headers);
    match conditional::evaluate(method, req, StatusCode::OK, &headers) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            let mut resp = status_only(StatusCode::NOT_MODIFIED);
            *resp.headers_mut() = conditional::not_modified_headers(&headers);
            return resp;
        }
        Precondition::Failed => return status_only(StatusCode::PRECONDITION_FAILED),
    }
    // RFC 9110 §14.2 defines Range for GET only; HEAD gets the 200 headers.
    let outcome = if method == Method::GET {
        range::evaluate(req, &headers, a.len)
    } else {
        RangeOutcome::Full
    };
    let (status, pieces) = match outcome {
        RangeOutcome::Unsatisfiable => {
            let mut resp = status_only(StatusCode::RANGE_NOT_SATISFIABLE);
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_RANGE,
                range::unsatisfied_content_range(a.len),
            );
            for name in [header::DATE, header::ACCEPT_RANGES] {
                if let Some(v) = headers.get(&name) {
                    h.insert(name, v.clone());
                }
            }
            return resp;
        }
        RangeOutcome::Full => (StatusCode::OK, a.slices(0..a.len)),
        RangeOutcome::Partial(ranges) => match ranges.as_slice() {
            [] => (StatusCode::OK, a.slices(0..a.len)),
            [one] => {
                headers.insert(header::CONTENT_RANGE, range::content_range(*one, a.len));
                (
                    StatusCode::PARTIAL_CONTENT,
                    a.slices(one.start..one.end.saturating_add(1)),
                )
            }
            many => {
                let ct = headers.get(header::CONTENT_TYPE).cloned();
                let framing = range::multipart(many, a.len, ct.as_ref(), &boundary());
                headers.insert(header::CONTENT_TYPE, framing.content_type);
                let mut pieces = Vec::with_capacity(framing.parts.len() * 2 + 1);
                for (head, r) in framing.parts {
                    pieces.push(head);
                    pieces.extend(a.slices(r.start..r.end.saturating_add(1)));
                }
                pieces.push(framing.epilogue);
                (StatusCode::PARTIAL_CONTENT, pieces)
            }
        },
    };
    respond(counters, status, headers, method, pieces)
}

/// `/api/...`: a fresh answer every time, that no cache may keep.
fn api(st: &Site, method: &Method, path: &str) -> Response {
    let count = st.api_calls.fetch_add(1, Ordering::Relaxed) + 1;
    let now = SystemTime::now();
    let unix_ms = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let body = serde_json::json!({
        "path": path,
        "count": count,
        "time": httpdate::fmt_http_date(now),
        "unix_ms": unix_ms,
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    put_date(&mut headers);
    let body = Bytes::from(format!("{body}\n"));
    respond(&st.counters, StatusCode::OK, headers, method, vec![body])
}

/// A section without its slash is a 301 to it, as nginx does for a
/// directory; anything else a 404 that caches may keep for 10 s.
fn missing(st: &Site, method: &Method, path: &str) -> Response {
    let dir = format!("{path}/");
    if st.site.get(&dir).is_some()
        && let Ok(location) = HeaderValue::from_str(&dir)
    {
        let mut resp = status_only(StatusCode::MOVED_PERMANENTLY);
        let h = resp.headers_mut();
        h.insert(header::LOCATION, location);
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        put_date(h);
        return resp;
    }
    const PAGE: &str = "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>Not found</title></head>\n<body><h1>Not found</h1><p><a href=\"/\">Home</a></p></body>\n</html>\n";
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=10"),
    );
    put_date(&mut headers);
    let body = vec![Bytes::from_static(PAGE.as_bytes())];
    respond(&st.counters, StatusCode::NOT_FOUND, headers, method, body)
}

/// A response with `pieces` as its body (none for HEAD, with the same
/// `Content-Length`), each piece counted as it is handed to the connection.
fn respond(
    counters: &Arc<Counters>,
    status: StatusCode,
    mut headers: HeaderMap,
    method: &Method,
    pieces: Vec<Bytes>,
) -> Response {
    let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        let counters = Arc::clone(counters);
        Body::from_stream(futures_util::stream::iter(pieces).map(move |p| {
            counters.bytes.fetch_add(p.len() as u64, Ordering::Relaxed);
            Ok::<_, Infallible>(p)
        }))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

fn not_allowed() -> Response {
    let mut resp = status_only(StatusCode::METHOD_NOT_ALLOWED);
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

fn put_date(h: &mut HeaderMap) {
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(SystemTime::now())) {
        h.insert(header::DATE, v);
    }
}
