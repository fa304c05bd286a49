//! The node admin API (issue 9, item 1): who may purge (401 without or
//! with a wrong token, 403 with a token lacking the scope or when none is
//! configured), what a bad body gets, the open routes, and the `Host`
//! guard that stops DNS rebinding. Shown on an edge and on a shield.

use meridian_common::auth::Scope;
use serde_json::{Value, json};

use crate::purge::{OPS, READER, purge};
use crate::support::{Node, Origin, Reply, cache_status, client};

const HOST: &str = "cdn.example";

async fn origin() -> Origin {
    Origin::start(|s| Reply::ok(s.path.clone()).header("cache-control", "max-age=60")).await
}

/// GETs `/x` for [`HOST`]; true when it was a hit.
async fn hit(c: &reqwest::Client, node: &Node) -> bool {
    let r = c
        .get(node.url("/x"))
        .header("host", HOST)
        .send()
        .await
        .expect("get");
    cache_status(&r).contains("; hit")
}

/// `POST /purge {"all": true}` with this `Authorization` value.
async fn purge_with(c: &reqwest::Client, node: &Node, auth: Option<&str>) -> (u16, Value) {
    let mut rb = c.post(node.admin_url("/purge")).json(&json!({"all": true}));
    if let Some(a) = auth {
        rb = rb.header("authorization", a);
    }
    let r = rb.send().await.expect("purge");
    let status = r.status().as_u16();
    if status == 401 {
        assert_eq!(
            r.headers().get("www-authenticate").map(|v| v.as_bytes()),
            Some(&b"Bearer"[..]),
            "a 401 names the scheme"
        );
    }
    (status, r.json().await.expect("JSON answer"))
}

#[tokio::test]
async fn purge_needs_a_token_with_the_purge_scope() {
    let origin = origin().await;
    let edge = Node::edge(&[origin.url()])
        .admin_token("ops", OPS, &[Scope::Purge])
        .admin_token("reader", READER, &[Scope::Read])
        .await;
    let c = client();
    hit(&c, &edge).await;
    let wrong = "Bearer not-a-token-0123456789".to_string();
    let reader = format!("Bearer {READER}");
    let refused: [(Option<&str>, u16, &str); 4] = [
        (None, 401, "missing"),
        (Some(&wrong), 401, "invalid"),
        (Some("Basic b3BzOm9wcw=="), 401, "missing"),
        (Some(&reader), 403, "`purge` scope"),
    ];
    for (auth, want, says) in refused {
        let (status, body) = purge_with(&c, &edge, auth).await;
        assert_eq!(status, want, "{auth:?}: {body}");
        let msg = body["error"].as_str().unwrap_or("");
        assert!(msg.contains(says), "{auth:?}: {msg}");
        assert!(hit(&c, &edge).await, "{auth:?} purged nothing");
    }
    let (status, body) = purge_with(&c, &edge, Some(&format!("Bearer {OPS}"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["node"], "edge-1");
    assert_eq!(body["tier"], "edge");
    assert_eq!(body["kinds"], json!(["all"]));
    assert_eq!(body["entries"], 1);
    assert!(body["micros"].is_u64(), "{body}");
    assert!(!hit(&c, &edge).await, "purged");
}

#[tokio::test]
async fn without_a_configured_token_purge_answers_403_saying_how() {
    let origin = origin().await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    hit(&c, &edge).await;
    let (status, body) = purge_with(&c, &edge, Some(&format!("Bearer {OPS}"))).await;
    assert_eq!(status, 403, "{body}");
    let msg = body["error"].as_str().unwrap_or("");
    assert!(
        msg.contains("MERIDIAN_ADMIN_TOKEN") && msg.contains("[[admin.token]]"),
        "{msg}"
    );
    let r = c
        .request(
            http::Method::from_bytes(b"PURGE").expect("method"),
            edge.url("/x"),
        )
        .header("host", HOST)
        .bearer_auth(OPS)
        .send()
        .await
        .expect("PURGE");
    assert_eq!(r.status(), 403);
    assert!(hit(&c, &edge).await, "nothing purged");
    assert_eq!(origin.count(), 1, "PURGE did not go upstream");
}

#[tokio::test]
async fn bad_purge_bodies_are_refused_with_the_reason() {
    let origin = origin().await;
    let edge = Node::edge(&[origin.url()])
        .admin_token("ops", OPS, &[Scope::Purge])
        .await;
    let c = client();
    let post = |body: Vec<u8>, content_type: &'static str| {
        let rb = c
            .post(edge.admin_url("/purge"))
            .bearer_auth(OPS)
            .header("content-type", content_type)
            .body(body);
        async move {
            let r = rb.send().await.expect("purge");
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("JSON answer");
            (status, body["error"].as_str().unwrap_or("").to_owned())
        }
    };
    let cases: [(&str, u16, &str); 6] = [
        (
            r#"{"urls": ["http://a/"], "hard": true}"#,
            400,
            "unknown field `hard`",
        ),
        ("urls=http://a/", 400, "bad purge body"),
        ("{}", 400, "name something to purge"),
        (r#"{"all": true, "tags": ["t"]}"#, 400, "do not combine"),
        (
            r#"{"urls": ["ftp://cdn.example/a"]}"#,
            400,
            "`ftp://cdn.example/a`",
        ),
        (
            r#"{"urls": ["http://cdn exa mple/a"]}"#,
            400,
            "`http://cdn exa mple/a`",
        ),
    ];
    for (body, want, says) in cases {
        let (status, msg) = post(body.as_bytes().to_vec(), "application/json").await;
        assert_eq!(status, want, "{body}: {msg}");
        assert!(msg.contains(says), "{body}: {msg}");
    }
    let (status, msg) = post(vec![b' '; (1 << 20) + 1], "application/json").await;
    assert_eq!(status, 413, "{msg}");
    // The content type does not matter when the body parses.
    let (status, msg) = post(br#"{"tags": ["t"]}"#.to_vec(), "text/plain").await;
    assert_eq!(status, 200, "{msg}");
}

#[tokio::test]
async fn the_admin_listener_answers_only_its_own_host_names() {
    let origin = origin().await;
    let edge = Node::edge(&[origin.url()])
        .admin_token("ops", OPS, &[Scope::Purge])
        .config(|c| c.admin.hosts = Some(vec!["admin.cdn.internal".into()]))
        .await;
    let c = client();
    hit(&c, &edge).await;
    let port = edge.admin.port();
    let status = |path: &'static str, host: String| {
        let rb = c.get(edge.admin_url(path)).header("host", host);
        async move { rb.send().await.expect("admin").status().as_u16() }
    };
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("admin.cdn.internal:{port}"),
    ] {
        assert_eq!(status("/stats", host.clone()).await, 200, "{host}");
    }
    for host in ["evil.example".to_string(), format!("evil.example:{port}")] {
        for path in ["/stats", "/healthz", "/purge/status"] {
            assert_eq!(status(path, host.clone()).await, 421, "{host}{path}");
        }
    }
    // A rebinding page cannot purge either, even with a token.
    let r = c
        .post(edge.admin_url("/purge"))
        .header("host", "evil.example")
        .bearer_auth(OPS)
        .json(&json!({"all": true}))
        .send()
        .await
        .expect("purge");
    assert_eq!(r.status(), 421);
    assert!(hit(&c, &edge).await, "nothing purged");
}

#[tokio::test]
async fn purge_status_is_open_and_shows_the_sync() {
    let origin = origin().await;
    let edge = Node::edge(&[origin.url()]).await;
    let c = client();
    let r = c
        .get(edge.admin_url("/purge/status"))
        .send()
        .await
        .expect("status");
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.expect("json");
    assert_eq!(s["node"], "edge-1");
    assert_eq!(s["tier"], "edge");
    assert_eq!(s["following"], false);
    assert_eq!(s["applied"], 0);
    assert_eq!(s["lagging"], false);
}

#[tokio::test]
async fn a_shield_purges_through_its_admin_listener() {
    let origin = origin().await;
    let shield = Node::shield(&[origin.url()])
        .admin_token("ops", OPS, &[Scope::Purge])
        .await;
    let c = client();
    hit(&c, &shield).await;
    assert!(hit(&c, &shield).await);
    let answer = purge(&c, &shield, json!({"urls": ["http://cdn.example/x"]})).await;
    assert_eq!(answer["node"], "shield-1");
    assert_eq!(answer["tier"], "shield");
    assert_eq!(answer["entries"], 1);
    assert!(!hit(&c, &shield).await, "purged on the shield");
    assert_eq!(origin.count_path("/x"), 2);
}
