use super::*;
use crate::http_log::Ack;

fn node(name: &str, tier: Tier) -> NodeRef {
    NodeRef {
        name: name.into(),
        tier,
    }
}

fn keeper(dir: &std::path::Path, max_lag: Duration) -> Keeper {
    let mut c = KeeperConfig::new(
        dir.to_path_buf(),
        vec![node("s1", Tier::Shield), node("e1", Tier::Edge)],
        Arc::new(Tokens::none()),
    );
    c.max_lag = max_lag;
    c.poll_wait = Duration::from_millis(50);
    Keeper::open(c).expect("opens")
}

fn poll(k: &Keeper, name: &str, tier: Tier, after: u64) -> Poll {
    Poll {
        node: name.into(),
        tier,
        after,
        log_id: Some(k.head().0),
        wait: Duration::ZERO,
        max_lag: None,
    }
}

fn ack(k: &Keeper, name: &str, tier: Tier, seq: u64) -> Ack {
    Ack {
        node: name.into(),
        tier,
        seq,
        from: seq,
        entries: 1,
        micros: 5,
        error: None,
        log_id: Some(k.head().0),
    }
}

#[tokio::test]
async fn edges_get_an_entry_only_after_every_shield_confirmed_it() {
    let dir = tempfile::tempdir().expect("test");
    let k = keeper(dir.path(), Duration::from_secs(3600));
    let publish = tokio::spawn({
        let k = k.clone();
        async move { k.publish(Purge::url("http://a.example/x"), None).await }
    });
    let mut long = poll(&k, "s1", Tier::Shield, 0);
    long.wait = Duration::from_millis(50);
    let mut shield = k.poll(long.clone()).await.expect("poll");
    for _ in 0..100 {
        if !shield.entries.is_empty() {
            break;
        }
        shield = k.poll(long.clone()).await.expect("poll");
    }
    assert_eq!(shield.entries.len(), 1, "the shield gets the entry at once");
    let edge = k.poll(poll(&k, "e1", Tier::Edge, 0)).await.expect("poll");
    assert!(edge.entries.is_empty(), "not before the shield confirmed");
    k.ack(&ack(&k, "s1", Tier::Shield, 1)).expect("ack");
    let edge = k.poll(poll(&k, "e1", Tier::Edge, 0)).await.expect("poll");
    assert_eq!(edge.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    k.ack(&ack(&k, "e1", Tier::Edge, 1)).expect("ack");
    let report = publish.await.expect("join").expect("published");
    assert_eq!(report.seq, 1);
    assert!(report.unconfirmed().is_empty(), "{report:?}");
    assert_eq!(report.nodes[0].node, "s1", "shields first");
    assert_eq!(report.nodes[1].entries, 1);
}

#[tokio::test]
async fn edges_get_an_entry_max_lag_after_the_append_without_the_shield() {
    let dir = tempfile::tempdir().expect("test");
    let k = keeper(dir.path(), Duration::from_millis(200));
    let mut p = poll(&k, "e1", Tier::Edge, 0);
    p.wait = Duration::from_millis(20);
    let report = k
        .publish(
            Purge::url("http://a.example/x"),
            Some(Duration::from_millis(10)),
        )
        .await
        .expect("published");
    assert_eq!(report.unconfirmed(), ["s1", "e1"]);
    assert!(k.poll(p.clone()).await.expect("poll").entries.is_empty());
    let mut got = Vec::new();
    for _ in 0..100 {
        got = k.poll(p.clone()).await.expect("poll").entries;
        if !got.is_empty() {
            break;
        }
    }
    assert_eq!(got.len(), 1, "released by time");
}

#[tokio::test]
async fn a_node_from_another_log_or_before_the_window_purges_everything() {
    let dir = tempfile::tempdir().expect("test");
    let k = keeper(dir.path(), Duration::from_secs(3600));
    let fresh = k.poll(Poll {
        log_id: None,
        ..poll(&k, "s1", Tier::Shield, 0)
    });
    let fresh = fresh.await.expect("poll");
    assert_eq!(fresh.reset_to, None, "an empty log has nothing to purge");
    for i in 0..3 {
        k.publish(
            Purge::url(format!("http://a.example/{i}")),
            Some(Duration::ZERO),
        )
        .await
        .expect("published");
    }
    let other = Poll {
        log_id: Some("another".into()),
        ..poll(&k, "s1", Tier::Shield, 2)
    };
    assert_eq!(k.poll(other).await.expect("poll").reset_to, Some(3));
    let ahead = poll(&k, "s1", Tier::Shield, 9);
    assert_eq!(k.poll(ahead).await.expect("poll").reset_to, Some(3));
    let restarted = Poll {
        log_id: None,
        ..poll(&k, "e1", Tier::Edge, 0)
    };
    // Nothing is released to edges yet (the shield did not confirm).
    assert_eq!(k.poll(restarted).await.expect("poll").reset_to, None);
    drop(k);
    let mut c = KeeperConfig::new(dir.path().to_path_buf(), vec![], Arc::new(Tokens::none()));
    c.retain = 1;
    let k = Keeper::open(c).expect("reopens");
    assert_eq!(k.head().1, 3, "the log survives a restart");
    let behind = poll(&k, "s1", Tier::Shield, 1);
    assert_eq!(k.poll(behind).await.expect("poll").reset_to, Some(3));
    let current = poll(&k, "s1", Tier::Shield, 2);
    let a = k.poll(current).await.expect("poll");
    assert_eq!((a.reset_to, a.entries.len()), (None, 1));
}

#[tokio::test]
async fn status_shows_what_each_node_applied() {
    let dir = tempfile::tempdir().expect("test");
    let k = keeper(dir.path(), Duration::from_secs(3600));
    k.publish(Purge::url("http://a.example/x"), Some(Duration::ZERO))
        .await
        .expect("published");
    k.ack(&ack(&k, "s1", Tier::Shield, 1)).expect("ack");
    k.poll(poll(&k, "extra", Tier::Edge, 0))
        .await
        .expect("poll");
    let s = k.status();
    assert_eq!(s.head, 1);
    let line = |n: &str| s.nodes.iter().find(|x| x.node == n).cloned().expect(n);
    assert_eq!((line("s1").applied, line("s1").behind), (1, 0));
    assert_eq!((line("e1").applied, line("e1").last_seen_ms), (0, None));
    assert_eq!(
        line("extra").tier,
        Tier::Edge,
        "unconfigured followers are listed"
    );
    assert!(
        k.ack(&ack(&k, "s1", Tier::Shield, 7)).is_err(),
        "past the head"
    );
}

#[tokio::test]
async fn edges_wait_out_a_shield_s_own_longer_max_lag() {
    let dir = tempfile::tempdir().expect("test");
    let k = keeper(dir.path(), Duration::from_millis(100));
    let shield = Poll {
        max_lag: Some(Duration::from_secs(3600)),
        ..poll(&k, "s1", Tier::Shield, 0)
    };
    k.poll(shield).await.expect("poll");
    k.publish(Purge::url("http://a.example/x"), Some(Duration::ZERO))
        .await
        .expect("published");
    let mut edge = poll(&k, "e1", Tier::Edge, 0);
    edge.wait = Duration::from_millis(300);
    assert!(
        k.poll(edge).await.expect("poll").entries.is_empty(),
        "the shield revalidates only after its own hour"
    );
}

#[tokio::test]
async fn a_new_node_s_held_first_poll_gets_what_is_appended_meanwhile_not_a_reset() {
    let dir = tempfile::tempdir().expect("test");
    let mut c = KeeperConfig::new(
        dir.path().to_path_buf(),
        vec![node("s1", Tier::Shield), node("e1", Tier::Edge)],
        Arc::new(Tokens::none()),
    );
    c.poll_wait = Duration::from_secs(5);
    let k = Keeper::open(c).expect("opens");
    // A node just started: no log id yet, nothing applied; the log is
    // empty, so there is nothing it could hold from before.
    let first = Poll {
        node: "s1".into(),
        tier: Tier::Shield,
        after: 0,
        log_id: None,
        wait: Duration::from_secs(5),
        max_lag: None,
    };
    let held = tokio::spawn({
        let k = k.clone();
        async move { k.poll(first).await }
    });
    // The test runtime has one thread: this lets the poll look and wait.
    tokio::task::yield_now().await;
    let _publish = tokio::spawn({
        let k = k.clone();
        async move { k.publish(Purge::url("http://a.example/x"), None).await }
    });
    let answer = held.await.expect("join").expect("poll");
    assert_eq!(answer.reset_to, None, "nothing to purge everything for");
    assert_eq!(
        answer.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1]
    );
}
