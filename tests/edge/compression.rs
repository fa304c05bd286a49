//! Compression at the edge (issue 12, item 5), seen from the client: the
//! negotiation matrix, encoded forms made once per URL and coding from one
//! origin fetch, distinct ETags with a 304 per variant, bodies the origin
//! encoded passed untouched, `no-transform`, small and incompressible
//! types left alone, ranges answered from the identity form, and a purge
//! of the URL taking every encoding.

use std::io::Read;

use meridian_common::auth::Scope;
use serde_json::json;

use crate::purge::{OPS, purge};
use crate::support::{Node, Origin, Reply, cache_status, client};

/// A page worth compressing: 8 KiB of text that differs line by line.
fn page() -> Vec<u8> {
    (0..400u32)
        .flat_map(|i| format!("<p>line {i:05} of the page</p>\n").into_bytes())
        .take(8192)
        .collect()
}

/// Decodes `body` as `Content-Encoding` says.
fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        None => out.extend_from_slice(body),
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("br decodes");
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("gzip decodes");
        }
        Some("zstd") => out = zstd::decode_all(body).expect("zstd decodes"),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

/// One answer as the client saw it.
struct Got {
    status: u16,
    encoding: Option<String>,
    etag: Option<String>,
    vary: String,
    cache_status: String,
    length: Option<usize>,
    body: Vec<u8>,
}

async fn get(c: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Got {
    let mut rq = c.get(url);
    for (k, v) in headers {
        rq = rq.header(*k, *v);
    }
    let r = rq.send().await.expect("request");
    let h = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (encoding, etag, length) = (
        h("content-encoding"),
        h("etag"),
        h("content-length").and_then(|l| l.parse().ok()),
    );
    let vary = r
        .headers()
        .get_all("vary")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    let (status, cs) = (r.status().as_u16(), cache_status(&r));
    let body = r.bytes().await.expect("body").to_vec();
    Got {
        status,
        encoding,
        etag,
        vary,
        cache_status: cs,
        length,
        body,
    }
}

fn ae(v: &str) -> [(&str, &str); 1] {
    [("accept-encoding", v)]
}

/// An origin serving `page()` as cacheable HTML with `ETag: "v1"` on
/// every path, plus the special paths of the tests below.
async fn site() -> Origin {
    Origin::start(|s| {
        let path = s.path.split('?').next().unwrap_or_default();
        let base = |r: Reply| {
            r.header("cache-control", "public, max-age=60")
                .header("etag", "\"v1\"")
        };
        match path {
            "/pre-gzipped" => base(Reply::ok(gzip(&page())))
                .header("content-type", "text/html")
                .header("content-encoding", "gzip")
                .header("vary", "Accept-Encoding"),
            "/no-transform" => base(Reply::ok(page()))
                .header("content-type", "text/html")
                .header("cache-control", "public, max-age=60, no-transform"),
            "/small" => base(Reply::ok(page()[..200].to_vec())).header("content-type", "text/html"),
            "/image" => base(Reply::ok(page())).header("content-type", "image/png"),
            "/font" => base(Reply::ok(page())).header("content-type", "font/woff2"),
            _ => base(Reply::ok(page())).header("content-type", "text/html; charset=utf-8"),
        }
    })
    .await
}

fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(body).expect("gzip");
    e.finish().expect("gzip")
}

#[tokio::test]
async fn negotiation_matrix_one_origin_fetch_per_url() {
    let origin = site().await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let url = edge.url("/page");
    // The miss streams the identity form (read-while-write) to its client.
    let miss = get(&c, &url, &ae("br")).await;
    assert_eq!(miss.status, 200);
    assert_eq!(decode(miss.encoding.as_deref(), &miss.body), page());
    assert!(
        miss.vary.to_ascii_lowercase().contains("accept-encoding"),
        "{}",
        miss.vary
    );
    // The upstream was asked for the negotiated coding, one token.
    assert_eq!(origin.last().header("accept-encoding"), Some("br"));
    let matrix: &[(Option<&str>, Option<&str>)] = &[
        (Some("br"), Some("br")),
        (Some("gzip, deflate, br"), Some("br")),
        (Some("BR, GZIP"), Some("br")),
        (Some("gzip"), Some("gzip")),
        (Some("x-gzip"), Some("gzip")),
        (Some("zstd"), Some("zstd")),
        (Some("gzip, zstd"), Some("zstd")),
        (Some("br;q=0.5, gzip;q=0.8"), Some("gzip")),
        (Some("br;q=0, *"), Some("zstd")),
        (Some("*"), Some("br")),
        (Some("br;q=abc, gzip"), Some("gzip")),
        (Some("br;q=2, zstd;q=0.1"), Some("zstd")),
        (Some("identity;q=0, gzip;q=0.2"), Some("gzip")),
        (Some("gzip;q=0.5, identity"), None),
        (Some("identity"), None),
        (Some("deflate"), None),
        (Some(""), None),
        (None, None),
        // Nothing acceptable, identity refused: identity all the same.
        (Some("identity;q=0"), None),
        (Some("*;q=0"), None),
    ];
    for round in 0..2 {
        for (accept, want) in matrix {
            let headers: Vec<(&str, &str)> =
                accept.iter().map(|a| ("accept-encoding", *a)).collect();
            let g = get(&c, &url, &headers).await;
            let what = format!("round {round}, Accept-Encoding {accept:?}");
            assert_eq!(g.status, 200, "{what}");
            assert_eq!(g.encoding.as_deref(), *want, "{what}");
            assert_eq!(
                g.length,
                Some(g.body.len()),
                "{what}: Content-Length is the encoded length"
            );
            assert_eq!(decode(g.encoding.as_deref(), &g.body), page(), "{what}");
            assert!(
                g.cache_status.contains("; hit"),
                "{what}: {}",
                g.cache_status
            );
            assert!(
                g.vary.to_ascii_lowercase().contains("accept-encoding"),
                "{what}"
            );
            if want.is_some() {
                assert!(g.body.len() < page().len() / 2, "{what}: compressed");
            }
        }
    }
    assert_eq!(
        origin.count_path("/page"),
        1,
        "one origin fetch for every encoding"
    );
    // Three encoded forms and the identity one: stored once each.
    let stats = edge.stats(&c).await;
    assert_eq!(stats["stored"], 4, "{stats}");
}

#[tokio::test]
async fn encoded_forms_have_their_own_etags_and_304s() {
    let origin = site().await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let url = edge.url("/etag");
    get(&c, &url, &[]).await;
    let mut tags = Vec::new();
    for (accept, tag) in [
        ("br", "W/\"v1-br\""),
        ("gzip", "W/\"v1-gz\""),
        ("zstd", "W/\"v1-zstd\""),
        ("identity", "\"v1\""),
    ] {
        let g = get(&c, &url, &ae(accept)).await;
        assert_eq!(g.etag.as_deref(), Some(tag), "{accept}");
        tags.push(tag);
        // Its own tag: 304, and the headers of that variant.
        let nm = get(
            &c,
            &url,
            &[("accept-encoding", accept), ("if-none-match", tag)],
        )
        .await;
        assert_eq!(nm.status, 304, "{accept} with its own tag");
        assert_eq!(nm.etag.as_deref(), Some(tag));
        assert!(nm.body.is_empty());
    }
    // Another variant's tag does not validate this one.
    let other = get(
        &c,
        &url,
        &[
            ("accept-encoding", "gzip"),
            ("if-none-match", "W/\"v1-br\""),
        ],
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.encoding.as_deref(), Some("gzip"));
    let identity = get(&c, &url, &[("if-none-match", "W/\"v1-gz\"")]).await;
    assert_eq!(identity.status, 200);
    assert_eq!(identity.encoding, None);
    tags.dedup();
    assert_eq!(tags.len(), 4);
    assert_eq!(
        origin.count_path("/etag"),
        1,
        "304s are answered by the edge"
    );
}

#[tokio::test]
async fn what_must_not_be_encoded_is_passed_untouched() {
    let origin = site().await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    for round in 0..2 {
        // The origin's own gzip: passed as it came, never encoded again.
        let g = get(&c, &edge.url("/pre-gzipped"), &ae("br, gzip")).await;
        assert_eq!(g.encoding.as_deref(), Some("gzip"), "round {round}");
        assert_eq!(g.body, gzip(&page()), "round {round}: the origin's bytes");
        assert_eq!(g.etag.as_deref(), Some("\"v1\""));
        for path in ["/no-transform", "/small", "/image", "/font"] {
            let g = get(&c, &edge.url(path), &ae("br, gzip, zstd")).await;
            assert_eq!(g.status, 200, "{path}");
            assert_eq!(g.encoding, None, "round {round}: {path} is not encoded");
            let want = if path == "/small" {
                page()[..200].to_vec()
            } else {
                page()
            };
            assert_eq!(g.body, want, "{path}");
            assert_eq!(g.etag.as_deref(), Some("\"v1\""), "{path}");
        }
    }
    // A client's own no-transform (RFC 9111 §5.2.1.6) gets identity.
    get(&c, &edge.url("/page"), &ae("br")).await;
    let g = get(
        &c,
        &edge.url("/page"),
        &[("accept-encoding", "br"), ("cache-control", "no-transform")],
    )
    .await;
    assert_eq!(g.encoding, None);
    assert_eq!(g.body, page());
}

#[tokio::test]
async fn ranges_are_served_from_the_identity_form() {
    let origin = site().await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let url = edge.url("/ranged");
    for round in 0..2 {
        let g = get(
            &c,
            &url,
            &[("accept-encoding", "br, gzip"), ("range", "bytes=10-29")],
        )
        .await;
        assert_eq!(g.status, 206, "round {round}");
        assert_eq!(
            g.encoding, None,
            "round {round}: a range of the identity bytes"
        );
        assert_eq!(g.body, page()[10..30].to_vec(), "round {round}");
    }
    // The encoded form offers no ranges of its own bytes.
    let br = get(&c, &url, &ae("br")).await;
    assert_eq!(br.encoding.as_deref(), Some("br"));
    let identity = get(&c, &url, &[]).await;
    assert_eq!(identity.encoding, None);
    // If-Range with the (weak) encoded tag never selects a range.
    let g = get(
        &c,
        &url,
        &[
            ("accept-encoding", "br"),
            ("range", "bytes=0-9"),
            ("if-range", "W/\"v1-br\""),
        ],
    )
    .await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body, page());
    assert_eq!(origin.count_path("/ranged"), 1);
}

#[tokio::test]
async fn a_url_purge_takes_every_encoding() {
    let origin = site().await;
    let edge = Node::edge(&[origin.url()])
        .admin_token("ops", OPS, &[Scope::Purge])
        .await;
    let c = client();
    let url = edge.url("/purged");
    let accepts = ["br", "gzip", "zstd", "identity"];
    for accept in accepts {
        get(&c, &url, &ae(accept)).await;
    }
    for accept in accepts {
        let g = get(&c, &url, &ae(accept)).await;
        assert!(
            g.cache_status.contains("; hit"),
            "{accept}: {}",
            g.cache_status
        );
    }
    let host = edge.addr.to_string();
    let answer = purge(
        &c,
        &edge,
        json!({"urls": [format!("http://{host}/purged")]}),
    )
    .await;
    assert_eq!(
        answer["entries"], 4,
        "identity and three encodings: {answer}"
    );
    for (i, accept) in accepts.iter().enumerate() {
        let g = get(&c, &url, &ae(accept)).await;
        assert_eq!(
            g.cache_status.contains("; hit"),
            i > 0,
            "{accept}: {}",
            g.cache_status
        );
        assert_eq!(decode(g.encoding.as_deref(), &g.body), page(), "{accept}");
    }
    assert_eq!(
        origin.count_path("/purged"),
        2,
        "one refill after the purge"
    );
}

#[tokio::test]
async fn concurrent_misses_in_every_coding_share_one_fill() {
    let origin = Origin::start(|_| {
        Reply::ok(page())
            .header("content-type", "application/json")
            .header("cache-control", "public, max-age=60")
            .delay(std::time::Duration::from_millis(300))
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let url = edge.url("/collapsed");
    let accepts = ["br", "gzip", "zstd", "identity", "br, gzip", "gzip;q=0.5"];
    let answers = futures_util::future::join_all(accepts.iter().map(|a| {
        let (c, url) = (c.clone(), url.clone());
        async move { get(&c, &url, &ae(a)).await }
    }))
    .await;
    for (accept, g) in accepts.iter().zip(&answers) {
        assert_eq!(g.status, 200, "{accept}");
        assert_eq!(decode(g.encoding.as_deref(), &g.body), page(), "{accept}");
    }
    assert_eq!(origin.count(), 1, "one fetch for every coding");
    for accept in accepts {
        let g = get(&c, &url, &ae(accept)).await;
        assert_eq!(decode(g.encoding.as_deref(), &g.body), page(), "{accept}");
    }
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn head_gets_a_stored_encoding_but_never_starts_one() {
    let origin = site().await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let url = edge.url("/head");
    get(&c, &url, &[]).await;
    get(&c, &url, &ae("br")).await;
    let head = |accept: &'static str| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let r = c
                .head(url)
                .header("accept-encoding", accept)
                .send()
                .await
                .expect("head");
            let h = |n: &str| {
                r.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            (h("content-encoding"), h("content-length"))
        }
    };
    let br_len = get(&c, &url, &ae("br")).await.body.len().to_string();
    assert_eq!(head("br").await, (Some("br".into()), Some(br_len)));
    let stored = edge.stats(&c).await["stored"].clone();
    assert_eq!(
        head("gzip").await,
        (None, Some(page().len().to_string())),
        "no gzip form yet: the identity headers"
    );
    assert_eq!(
        edge.stats(&c).await["stored"],
        stored,
        "HEAD encoded nothing"
    );
    assert_eq!(origin.count_path("/head"), 1);
}

/// The encoders' work is visible to an operator: one encoding per URL and
/// coding (never per hit), with the bytes in and out.
#[tokio::test]
async fn encodings_are_counted_once_per_url_and_coding() {
    let origin = site().await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let url = edge.url("/counted");
    get(&c, &url, &[]).await;
    for accept in ["br", "br", "gzip", "br"] {
        let g = get(&c, &url, &ae(accept)).await;
        assert_eq!(g.encoding.as_deref(), Some(accept));
    }
    let gzip_len = get(&c, &url, &ae("gzip")).await.body.len();
    let text = c
        .get(edge.admin_url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("body");
    let value = |series: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
    };
    assert_eq!(
        value("meridian_encodings_total{coding=\"br\"}"),
        Some(1),
        "{text}"
    );
    assert_eq!(
        value("meridian_encodings_total{coding=\"gzip\"}"),
        Some(1),
        "{text}"
    );
    assert_eq!(
        value("meridian_encodings_total{coding=\"zstd\"}"),
        None,
        "{text}"
    );
    assert_eq!(
        value("meridian_encoding_bytes_total{coding=\"gzip\",side=\"in\"}"),
        Some(page().len() as u64)
    );
    assert_eq!(
        value("meridian_encoding_bytes_total{coding=\"gzip\",side=\"out\"}"),
        Some(gzip_len as u64)
    );
    assert_eq!(origin.count_path("/counted"), 1);
}
