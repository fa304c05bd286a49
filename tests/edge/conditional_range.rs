//! 6. Client conditionals answered from the cache, 11. ranges.

use crate::support::{Node, Origin, Reply, cache_status, client};

const BODY: &str = "0123456789abcdefghij";
const LM: &str = "Tue, 01 Sep 2026 10:00:00 GMT";

async fn setup() -> (Origin, Node) {
    let origin = Origin::start(|_| {
        Reply::ok(BODY)
            .header("cache-control", "max-age=600")
            .header("etag", "\"abc\"")
            .header("last-modified", LM)
            .header("content-type", "text/plain")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    client().get(edge.url("/r")).send().await.expect("warm");
    (origin, edge)
}

#[tokio::test]
async fn if_none_match_and_if_modified_since_get_304_from_cache_rfc9110_13() {
    let (origin, edge) = setup().await;
    let c = client();
    let r = c
        .get(edge.url("/r"))
        .header("if-none-match", "W/\"abc\", \"zzz\"")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 304);
    assert_eq!(r.headers()["etag"], "\"abc\"");
    assert!(cache_status(&r).contains("; hit"));
    let r = c
        .get(edge.url("/r"))
        .header("if-modified-since", LM)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 304);
    let r = c
        .get(edge.url("/r"))
        .header("if-none-match", "\"other\"")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), BODY);
    let r = c
        .get(edge.url("/r"))
        .header("if-match", "\"other\"")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 412);
    assert_eq!(origin.count(), 1, "all answered from the stored response");
    assert_eq!(
        origin.last().header("if-none-match"),
        None,
        "the fill never carried the client's validators"
    );
}

#[tokio::test]
async fn ranges_are_served_from_the_stored_response_rfc9110_14() {
    let (origin, edge) = setup().await;
    let c = client();
    let r = c
        .get(edge.url("/r"))
        .header("range", "bytes=2-5")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2-5/20");
    assert_eq!(r.text().await.expect("body"), "2345");
    let r = c
        .get(edge.url("/r"))
        .header("range", "bytes=-3")
        .send()
        .await
        .expect("send");
    assert_eq!(r.text().await.expect("body"), "hij");
    let r = c
        .get(edge.url("/r"))
        .header("range", "bytes=0-1,10-11")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 206);
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(ct.starts_with("multipart/byteranges; boundary="), "{ct}");
    let text = r.text().await.expect("body");
    assert!(
        text.contains("Content-Range: bytes 0-1/20\r\n\r\n01\r\n"),
        "{text}"
    );
    assert!(
        text.contains("Content-Range: bytes 10-11/20\r\n\r\nab\r\n"),
        "{text}"
    );
    let r = c
        .get(edge.url("/r"))
        .header("range", "bytes=50-60")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */20");
    let r = c
        .get(edge.url("/r"))
        .header("range", "bytes=0-3")
        .header("if-range", "\"abc\"")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 206, "If-Range with the current ETag");
    let r = c
        .get(edge.url("/r"))
        .header("range", "bytes=0-3")
        .header("if-range", "\"old\"")
        .send()
        .await
        .expect("send");
    assert_eq!(
        r.status(),
        200,
        "If-Range with an old ETag gets the whole thing"
    );
    assert_eq!(r.text().await.expect("body"), BODY);
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn a_range_miss_fills_the_cache_with_the_whole_object() {
    let origin = Origin::start(|s| {
        assert!(
            s.header("range").is_none(),
            "the fill asks for the whole representation"
        );
        Reply::ok(BODY).header("cache-control", "max-age=600")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let r = c
        .get(edge.url("/x"))
        .header("range", "bytes=0-2")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 206);
    assert_eq!(r.text().await.expect("body"), "012");
    let r = c.get(edge.url("/x")).send().await.expect("send");
    assert_eq!(r.text().await.expect("body"), BODY);
    assert_eq!(origin.count(), 1);
}
