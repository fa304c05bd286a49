//! Issue 8, the 100 KiB hit: stored bodies of `cache.zero-copy-min-size`
//! and more are sent with `sendfile(2)` from sealed memory files, and every
//! way of reading them still gets the origin's bytes.

use bytes::Bytes;

use crate::support::{Node, Origin, Reply, cache_status, client, h2c};

fn pattern(len: usize, seed: usize) -> Bytes {
    (0..len)
        .map(|i| ((i * 131 + seed) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

#[tokio::test]
async fn large_hits_leave_by_sendfile_with_the_origins_bytes_on_every_path() {
    let big = pattern(1 << 20, 7);
    let mid = pattern(100 << 10, 3);
    let small = pattern(20 << 10, 5);
    let (b, m, s) = (big.clone(), mid.clone(), small.clone());
    let origin = Origin::start(move |seen| {
        let body = match seen.path.as_str() {
            "/big" => b.clone(),
            "/mid" => m.clone(),
            _ => s.clone(),
        };
        Reply::ok(body)
            .header("cache-control", "max-age=600")
            .header("etag", "\"v1\"")
    })
    .await;
    let edge = Node::edge(&[origin.url()]).start().await;
    let c = client();
    // The miss fills; the body is stored in a memory file.
    for (path, want) in [("/big", &big), ("/mid", &mid), ("/small", &small)] {
        let r = c.get(edge.url(path)).send().await.expect("miss");
        assert!(cache_status(&r).contains("fwd=miss"), "{path}");
        assert!(
            r.bytes().await.expect("body") == *want,
            "{path}: miss bytes"
        );
    }
    // Hits: the same bytes, and the large ones from the file. (The counter
    // is process-wide, so other tests can only add to it.)
    let before = meridian_sendfile::sent_from_files();
    for (path, want) in [("/big", &big), ("/mid", &mid), ("/small", &small)] {
        for _ in 0..3 {
            let r = c.get(edge.url(path)).send().await.expect("hit");
            assert!(
                cache_status(&r).contains("hit"),
                "{path}: {}",
                cache_status(&r)
            );
            assert!(r.bytes().await.expect("body") == *want, "{path}: hit bytes");
        }
    }
    let sent = meridian_sendfile::sent_from_files() - before;
    assert!(
        sent >= 3 * (big.len() + mid.len()) as u64,
        "only {sent} bytes left by sendfile"
    );
    // Where CI can mount it (as root), those files were the large-page
    // tmpfs's (`cache.zero-copy-large-pages` is on by default).
    if std::env::var_os("MERIDIAN_REQUIRE_LARGE_PAGES").is_some() {
        assert!(meridian_sendfile::large_pages_in_use());
    }
    // A range inside the file starts at its own offset; several ranges
    // are each their own slice of it.
    let r = c
        .get(edge.url("/big"))
        .header("range", "bytes=1000-299999")
        .send()
        .await
        .expect("range");
    assert_eq!(r.status(), 206);
    assert!(r.bytes().await.expect("body") == big.slice(1000..300_000));
    let r = c
        .get(edge.url("/big"))
        .header("range", "bytes=-70000")
        .send()
        .await
        .expect("suffix range");
    assert_eq!(r.status(), 206);
    assert!(r.bytes().await.expect("body") == big.slice(big.len() - 70_000..));
    // HEAD and 304 have no body at all.
    let r = c.head(edge.url("/big")).send().await.expect("head");
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.expect("no body").is_empty());
    let r = c
        .get(edge.url("/big"))
        .header("if-none-match", "\"v1\"")
        .send()
        .await
        .expect("conditional");
    assert_eq!(r.status(), 304);
    assert!(r.bytes().await.expect("no body").is_empty());
    // HTTP/2 reads the mapped body through its frames: the same bytes.
    let authority = edge.addr.to_string();
    let (status, body) = h2c::get_once(edge.addr, &authority, "/big").await;
    assert_eq!(status, 200);
    assert!(body == big, "h2c bytes");
    // One fetch each, whatever the path.
    assert_eq!(origin.count_path("/big"), 1);
    assert_eq!(origin.count_path("/mid"), 1);
}
