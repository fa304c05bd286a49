//! End-to-end: the real origin on 127.0.0.1:0, driven with reqwest (and a
//! raw socket where reqwest would normalise the path for us).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::Path;
use std::time::{Duration, Instant};

use meridian_common::Shutdown;
use meridian_origin::{HeaderValue, OriginConfig};
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap};

struct Origin {
    addr: SocketAddr,
    shutdown: Shutdown,
    _dir: tempfile::TempDir,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

impl Origin {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A root with `hello.txt` (10 bytes), `big.bin` (3 MiB, streamed),
/// `sub/index.html`, and a `secret.txt` beside the root plus a symlink to it.
async fn start(delay: Duration) -> Origin {
    start_paced(delay, None).await
}

/// [`start`] with every response body sent at `rate` bytes per second.
async fn start_paced(delay: Duration, rate: Option<NonZeroU64>) -> Origin {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("www");
    std::fs::create_dir_all(root.join("sub")).expect("mkdir");
    std::fs::write(root.join("hello.txt"), b"0123456789").expect("write");
    std::fs::write(root.join("big.bin"), big()).expect("write");
    std::fs::write(root.join("sub/index.html"), b"<p>index</p>").expect("write");
    std::fs::write(dir.path().join("secret.txt"), b"top secret").expect("write");
    #[cfg(unix)]
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("escape.txt"))
        .expect("symlink");
    start_at(&root, delay, rate, dir).await
}

async fn start_at(
    root: &Path,
    delay: Duration,
    rate: Option<NonZeroU64>,
    dir: tempfile::TempDir,
) -> Origin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = Shutdown::new();
    let config = OriginConfig {
        root: root.to_path_buf(),
        cache_control: Some(HeaderValue::from_static("public, max-age=3600")),
        delay,
        rate,
        surrogate_key_by_dir: false,
    };
    let s = shutdown.clone();
    tokio::spawn(async move { meridian_origin::run(listener, config, s).await });
    Origin {
        addr,
        shutdown,
        _dir: dir,
    }
}

fn big() -> Vec<u8> {
    (0..3u32 << 20).map(|i| (i % 251) as u8).collect()
}

async fn get(url: &str, headers: &[(&'static str, &str)]) -> reqwest::Response {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        map.insert(*k, v.parse().expect("header value"));
    }
    reqwest::Client::new()
        .get(url)
        .headers(map)
        .send()
        .await
        .expect("request")
}

fn header<'a>(resp: &'a reqwest::Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn get_returns_file_with_validators() {
    let o = start(Duration::ZERO).await;
    let resp = get(&o.url("/hello.txt"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let etag = header(&resp, "etag");
    assert!(etag.starts_with("\"a-") && etag.ends_with('"'), "{etag}");
    assert!(httpdate::parse_http_date(header(&resp, "last-modified")).is_ok());
    assert!(httpdate::parse_http_date(header(&resp, "date")).is_ok());
    assert_eq!(header(&resp, "content-type"), "text/plain");
    assert_eq!(header(&resp, "content-length"), "10");
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(header(&resp, "cache-control"), "public, max-age=3600");
    assert_eq!(resp.bytes().await.expect("body"), "0123456789");

    let resp = get(&o.url("/sub/"), &[]).await;
    assert_eq!(header(&resp, "content-type"), "text/html");
    assert_eq!(resp.text().await.expect("body"), "<p>index</p>");

    let resp = get(&o.url("/big.bin"), &[]).await;
    assert_eq!(header(&resp, "content-type"), "application/octet-stream");
    assert_eq!(resp.bytes().await.expect("body"), big());
}

#[tokio::test]
async fn conditional_get_gives_304() {
    let o = start(Duration::ZERO).await;
    let first = get(&o.url("/hello.txt"), &[]).await;
    let (etag, lm) = (
        header(&first, "etag").to_owned(),
        header(&first, "last-modified").to_owned(),
    );

    let resp = get(&o.url("/hello.txt"), &[("if-none-match", &etag)]).await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(header(&resp, "etag"), etag);
    assert_eq!(header(&resp, "cache-control"), "public, max-age=3600");
    assert!(resp.headers().get(header::CONTENT_TYPE).is_none());
    assert!(resp.bytes().await.expect("body").is_empty());

    let resp = get(&o.url("/hello.txt"), &[("if-modified-since", &lm)]).await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);

    let old = "Sun, 06 Nov 1994 08:49:37 GMT";
    let resp = get(&o.url("/hello.txt"), &[("if-modified-since", old)]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = get(&o.url("/hello.txt"), &[("if-none-match", "\"other\"")]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = get(&o.url("/hello.txt"), &[("if-match", "\"other\"")]).await;
    assert_eq!(resp.status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn single_range_gives_206() {
    let o = start(Duration::ZERO).await;
    let resp = get(&o.url("/hello.txt"), &[("range", "bytes=2-4")]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&resp, "content-range"), "bytes 2-4/10");
    assert_eq!(header(&resp, "content-length"), "3");
    assert_eq!(resp.bytes().await.expect("body"), "234");

    // Streamed file: seek, read only the range.
    let resp = get(&o.url("/big.bin"), &[("range", "bytes=-5")]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    let len = 3u64 << 20;
    assert_eq!(
        header(&resp, "content-range"),
        format!("bytes {}-{}/{len}", len - 5, len - 1)
    );
    assert_eq!(
        resp.bytes().await.expect("body").as_ref(),
        &big()[(len - 5) as usize..]
    );

    // If-Range that no longer matches: the whole file.
    let resp = get(
        &o.url("/hello.txt"),
        &[("range", "bytes=2-4"), ("if-range", "\"stale\"")],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn multiple_ranges_give_multipart() {
    let o = start(Duration::ZERO).await;
    for (path, total) in [("/hello.txt", 10u64), ("/big.bin", 3 << 20)] {
        let resp = get(&o.url(path), &[("range", "bytes=0-1, 5-6")]).await;
        assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT, "{path}");
        let ct = header(&resp, "content-type").to_owned();
        let boundary = ct
            .strip_prefix("multipart/byteranges; boundary=")
            .expect("multipart type");
        let declared: usize = header(&resp, "content-length").parse().expect("length");
        let body = resp.bytes().await.expect("body");
        assert_eq!(body.len(), declared, "{path}");
        let text = String::from_utf8_lossy(&body);
        assert!(text.starts_with(&format!("--{boundary}\r\n")), "{text}");
        assert!(
            text.contains(&format!("Content-Range: bytes 0-1/{total}\r\n\r\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("Content-Range: bytes 5-6/{total}\r\n\r\n")),
            "{text}"
        );
        assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")), "{text}");
    }
}

#[tokio::test]
async fn unsatisfiable_range_gives_416() {
    let o = start(Duration::ZERO).await;
    let resp = get(&o.url("/hello.txt"), &[("range", "bytes=10-")]).await;
    assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&resp, "content-range"), "bytes */10");
}

#[tokio::test]
async fn head_has_headers_but_no_body() {
    let o = start(Duration::ZERO).await;
    let resp = reqwest::Client::new()
        .head(o.url("/hello.txt"))
        .send()
        .await
        .expect("head");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), "10");
    assert!(resp.headers().contains_key(header::ETAG));
    assert!(resp.bytes().await.expect("body").is_empty());
}

#[tokio::test]
async fn other_methods_get_405_with_allow() {
    let o = start(Duration::ZERO).await;
    let resp = reqwest::Client::new()
        .post(o.url("/hello.txt"))
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&resp, "allow"), "GET, HEAD");
}

#[tokio::test]
async fn missing_file_is_404_and_healthz_is_ok() {
    let o = start(Duration::ZERO).await;
    assert_eq!(
        get(&o.url("/nope.txt"), &[]).await.status(),
        StatusCode::NOT_FOUND
    );
    let resp = get(&o.url("/healthz"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.text().await.expect("body"), "ok");
}

/// Sends a request line verbatim, since HTTP clients resolve `..` first.
fn raw_status(addr: SocketAddr, target: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or("").to_owned()
}

#[tokio::test]
async fn path_traversal_is_refused() {
    let o = start(Duration::ZERO).await;
    let addr = o.addr;
    let lines = tokio::task::spawn_blocking(move || {
        [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/sub/..%2f..%2fsecret.txt",
            "/hello.txt",
        ]
        .map(|t| raw_status(addr, t))
    })
    .await
    .expect("join");
    for line in &lines[..3] {
        assert!(line.contains(" 400 ") || line.contains(" 404 "), "{line}");
    }
    assert!(
        lines[3].contains(" 200 "),
        "control request must succeed: {}",
        lines[3]
    );
    #[cfg(unix)]
    assert_eq!(
        get(&o.url("/escape.txt"), &[]).await.status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn delay_is_applied() {
    let delay = Duration::from_millis(200);
    let o = start(delay).await;
    let started = Instant::now();
    assert_eq!(
        get(&o.url("/hello.txt"), &[]).await.status(),
        StatusCode::OK
    );
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
}

#[tokio::test]
async fn rate_paces_the_body_and_sends_the_first_bytes_at_once() {
    // 3 MiB at 4 MiB/s: the first slice leaves at once, the rest is due
    // over about three quarters of a second. Only lower bounds on time are
    // asserted (pacing guarantees them); a busy machine can only be slower.
    let rate = 4u64 << 20;
    let o = start_paced(Duration::ZERO, NonZeroU64::new(rate)).await;
    let started = Instant::now();
    let mut resp = get(&o.url("/big.bin"), &[]).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "content-length"), (3u64 << 20).to_string());
    let mut body = Vec::new();
    let mut first = None;
    while let Some(chunk) = resp.chunk().await.expect("body chunk") {
        first.get_or_insert_with(|| started.elapsed());
        body.extend_from_slice(&chunk);
    }
    let total = started.elapsed();
    assert!(body == big(), "paced body differs from the file");
    let slice = rate / 100;
    let at_least = Duration::from_secs_f64(((3u64 << 20) - slice) as f64 / rate as f64);
    assert!(total >= at_least, "{total:?} < {at_least:?}: not paced");
    let first = first.expect("a first chunk");
    assert!(
        first < total / 2,
        "first bytes after {first:?} of {total:?}: held back, not streamed"
    );

    // Ranges and small files are paced too, and stay byte-exact.
    let resp = get(&o.url("/big.bin"), &[("range", "bytes=1000-1999")]).await;
    assert_eq!(resp.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        resp.bytes().await.expect("body").as_ref(),
        &big()[1000..2000]
    );
    let resp = get(&o.url("/hello.txt"), &[]).await;
    assert_eq!(resp.bytes().await.expect("body"), "0123456789");
}

#[tokio::test]
async fn root_must_be_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("f");
    std::fs::write(&file, b"x").expect("write");
    let cfg = |root| OriginConfig {
        root,
        cache_control: None,
        delay: Duration::ZERO,
        rate: None,
        surrogate_key_by_dir: false,
    };
    let err = meridian_origin::router(cfg(file))
        .await
        .expect_err("must fail");
    assert!(
        matches!(err, meridian_origin::Error::NotADirectory { .. }),
        "{err}"
    );
    let err = meridian_origin::router(cfg(dir.path().join("missing")))
        .await
        .expect_err("must fail");
    assert!(matches!(err, meridian_origin::Error::Root { .. }), "{err}");
}
