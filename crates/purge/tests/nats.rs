//! The purge log in NATS JetStream, against a real `nats-server` started
//! by each test on a port from the OS, with its store in a temporary
//! directory. Without `nats-server` these tests fail (install it with
//! `apt-get install nats-server`); they never skip.

mod nats_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meridian_common::Shutdown;
use meridian_purge::{
    Applied, Applier, FollowConfig, NodeOutcome, NodeRef, Purge, SyncState, Tier, nats_log,
};
use nats_support::{NatsServer, eventually};

/// A store that records what it was asked to purge, and when.
#[derive(Default)]
struct Recorder {
    applied: Mutex<Vec<(Instant, Purge)>>,
    /// How long each apply takes (a slow store).
    slow: Option<Duration>,
}

impl Applier for Recorder {
    fn apply(&self, purge: &Purge) -> Result<Applied, String> {
        if let Some(slow) = self.slow {
            std::thread::sleep(slow);
        }
        let mut applied = self.applied.lock().map_err(|_| "poisoned".to_string())?;
        applied.push((Instant::now(), purge.clone()));
        Ok(Applied {
            entries: 1,
            micros: 0,
        })
    }
}

impl Recorder {
    fn purges(&self) -> Vec<Purge> {
        self.applied
            .lock()
            .expect("lock")
            .iter()
            .map(|(_, p)| p.clone())
            .collect()
    }

    fn instants(&self) -> Vec<Instant> {
        self.applied
            .lock()
            .expect("lock")
            .iter()
            .map(|(at, _)| *at)
            .collect()
    }
}

/// A node following the log in its own task.
struct Node {
    name: String,
    tier: Tier,
    recorder: Arc<Recorder>,
    sync: Arc<SyncState>,
    task: tokio::task::JoinHandle<()>,
    shutdown: Shutdown,
}

impl Node {
    fn start(log: &str, name: &str, tier: Tier, max_lag: Duration) -> Node {
        Node::start_with(log, name, tier, max_lag, None, Recorder::default())
    }

    fn start_with(
        log: &str,
        name: &str,
        tier: Tier,
        max_lag: Duration,
        token: Option<&str>,
        recorder: Recorder,
    ) -> Node {
        let recorder = Arc::new(recorder);
        let sync = Arc::new(SyncState::following(max_lag));
        let shutdown = Shutdown::new();
        let config = FollowConfig {
            log: log.to_string(),
            node: name.to_string(),
            tier,
            token: token.map(str::to_string),
        };
        let task = tokio::spawn(meridian_purge::follow(
            config,
            recorder.clone(),
            sync.clone(),
            shutdown.clone(),
        ));
        Node {
            name: name.to_string(),
            tier,
            recorder,
            sync,
            task,
            shutdown,
        }
    }

    fn node_ref(&self) -> NodeRef {
        NodeRef {
            name: self.name.clone(),
            tier: self.tier,
        }
    }

    /// Waits until the node has proved itself caught up once.
    async fn synced(&self) {
        let sync = self.sync.clone();
        eventually(
            &format!("{} syncs with the log", self.name),
            Duration::from_secs(10),
            || {
                let synced = sync.ever_synced();
                async move { synced }
            },
        )
        .await;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.shutdown.trigger();
        self.task.abort();
    }
}

const LAG: Duration = Duration::from_secs(5);
const DEADLINE: Duration = Duration::from_secs(10);

fn url_purge(path: &str) -> Purge {
    Purge::url(format!("http://cdn.example{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_reaches_every_shield_before_any_edge() {
    let server = NatsServer::start().await;
    let log = server.url();
    // A slow shield: edges must still wait for it.
    let slow = Recorder {
        slow: Some(Duration::from_millis(300)),
        ..Recorder::default()
    };
    let shield = Node::start_with(&log, "shield-1", Tier::Shield, LAG, None, slow);
    let edges = [
        Node::start(&log, "edge-1", Tier::Edge, LAG),
        Node::start(&log, "edge.2", Tier::Edge, LAG),
    ];
    for node in [&shield, &edges[0], &edges[1]] {
        node.synced().await;
    }
    let nodes = vec![edges[0].node_ref(), shield.node_ref(), edges[1].node_ref()];
    let purge = url_purge("/logo.png");

    let report = meridian_purge::publish(&log, None, &purge, &nodes, DEADLINE)
        .await
        .expect("publish");

    assert!(report.seq > 0);
    assert_eq!(report.purge, purge);
    let order: Vec<(&str, NodeOutcome)> = report
        .nodes
        .iter()
        .map(|n| (n.node.as_str(), n.result))
        .collect();
    assert_eq!(
        order,
        [
            ("shield-1", NodeOutcome::Applied),
            ("edge-1", NodeOutcome::Applied),
            ("edge.2", NodeOutcome::Applied),
        ]
    );
    assert!(report.nodes.iter().all(|n| n.entries == 1));
    for node in [&shield, &edges[0], &edges[1]] {
        assert_eq!(
            node.recorder.purges(),
            std::slice::from_ref(&purge),
            "{}",
            node.name
        );
    }
    let shield_at = shield.recorder.instants()[0];
    for edge in &edges {
        assert!(
            shield_at < edge.recorder.instants()[0],
            "{} applied before the shield",
            edge.name
        );
    }
    assert_eq!(shield.sync.applied_seq(), report.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_started_late_catches_up_in_order() {
    let server = NatsServer::start().await;
    let log = server.url();
    let purges = [url_purge("/a"), url_purge("/b"), url_purge("/c")];
    for purge in &purges {
        meridian_purge::publish(&log, None, purge, &[], DEADLINE)
            .await
            .expect("publish");
    }

    let edge = Node::start(&log, "edge-late", Tier::Edge, LAG);
    let shield = Node::start(&log, "shield-late", Tier::Shield, LAG);
    for node in [&edge, &shield] {
        let recorder = node.recorder.clone();
        eventually(
            "the late follower applies all three",
            Duration::from_secs(10),
            || {
                let n = recorder.purges().len();
                async move { n >= 3 }
            },
        )
        .await;
        assert_eq!(node.recorder.purges(), purges, "{}", node.name);
    }
    edge.synced().await;
    assert!(!edge.sync.is_lagging());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_follower_resumes_where_its_consumer_left_off() {
    let server = NatsServer::start().await;
    let log = server.url();
    let first = Node::start(&log, "edge-r", Tier::Edge, LAG);
    first.synced().await;
    let nodes = [first.node_ref()];
    let report = meridian_purge::publish(&log, None, &url_purge("/one"), &nodes, DEADLINE)
        .await
        .expect("publish");
    assert!(report.unconfirmed().is_empty());
    drop(first);

    meridian_purge::publish(&log, None, &url_purge("/two"), &[], DEADLINE)
        .await
        .expect("publish while the node is away");
    let again = Node::start(&log, "edge-r", Tier::Edge, LAG);
    let recorder = again.recorder.clone();
    eventually(
        "the node applies what it missed",
        Duration::from_secs(10),
        || {
            let n = recorder.purges().len();
            async move { n >= 1 }
        },
    )
    .await;
    again.synced().await;
    assert_eq!(again.recorder.purges(), [url_purge("/two")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_lags_while_the_server_is_down_and_catches_up_after() {
    let mut server = NatsServer::start().await;
    let log = server.url();
    let max_lag = Duration::from_secs(1);
    let edge = Node::start(&log, "edge-down", Tier::Edge, max_lag);
    edge.synced().await;
    assert!(!edge.sync.is_lagging());

    let sync = edge.sync.clone();
    server
        .restart_after(async {
            // Within max-lag and a bit, the node knows it may have missed
            // purges and says so (the engine then revalidates).
            eventually(
                "lagging while the server is down",
                max_lag + Duration::from_secs(2),
                || {
                    let lagging = sync.is_lagging();
                    async move { lagging }
                },
            )
            .await;
        })
        .await;
    // Published before the follower got back (its reconnect is backed off).
    meridian_purge::publish(&log, None, &url_purge("/while-away"), &[], DEADLINE)
        .await
        .expect("publish after the restart");

    let recorder = edge.recorder.clone();
    eventually(
        "the follower reconnects and applies it",
        Duration::from_secs(15),
        || {
            let n = recorder.purges().len();
            async move { n >= 1 }
        },
    )
    .await;
    assert_eq!(edge.recorder.purges(), [url_purge("/while-away")]);
    let sync = edge.sync.clone();
    eventually("current again", Duration::from_secs(10), || {
        let lagging = sync.is_lagging();
        async move { !lagging }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stopped_following_is_behind_and_times_out() {
    let server = NatsServer::start().await;
    let log = server.url();
    let shield = Node::start(&log, "shield-s", Tier::Shield, LAG);
    let edge = Node::start(&log, "edge-s", Tier::Edge, LAG);
    let stopped = Node::start(&log, "edge-gone", Tier::Edge, LAG);
    for node in [&shield, &edge, &stopped] {
        node.synced().await;
    }
    let never = NodeRef {
        name: "edge-never".to_string(),
        tier: Tier::Edge,
    };
    let nodes = [
        shield.node_ref(),
        edge.node_ref(),
        stopped.node_ref(),
        never.clone(),
    ];
    stopped.task.abort();

    let report = nats_log::publish_with_max_lag(
        &log,
        None,
        &url_purge("/gone"),
        &nodes,
        Duration::from_secs(2),
        Duration::from_secs(1),
    )
    .await
    .expect("publish");
    assert_eq!(report.unconfirmed(), ["edge-gone", "edge-never"]);
    let gone = report
        .nodes
        .iter()
        .find(|n| n.node == "edge-gone")
        .expect("listed");
    assert_eq!(gone.result, NodeOutcome::Timeout);

    let status = meridian_purge::status(&log, None, &nodes)
        .await
        .expect("status");
    assert!(
        status.head > report.seq,
        "the edge phase follows the shield phase"
    );
    let by_name = |name: &str| {
        status
            .nodes
            .iter()
            .find(|n| n.node == name)
            .cloned()
            .expect("listed")
    };
    let shield_status = by_name("shield-s");
    assert_eq!(
        (shield_status.applied, shield_status.behind),
        (report.seq, 0)
    );
    let edge_status = by_name("edge-s");
    assert_eq!((edge_status.applied, edge_status.behind), (status.head, 0));
    assert!(!edge_status.lagging);
    assert!(edge_status.last_seen_ms.is_some());
    let gone_status = by_name("edge-gone");
    assert_eq!((gone_status.applied, gone_status.behind), (0, 1));
    assert!(gone_status.lagging);
    assert_eq!(gone_status.last_seen_ms, None);
    assert!(stopped.recorder.purges().is_empty());
    // Never started: no consumer yet, so behind by every edge entry.
    let never_status = by_name("edge-never");
    assert_eq!((never_status.applied, never_status.behind), (0, 1));
    assert!(never_status.lagging);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_is_lagging_until_it_has_caught_up() {
    let server = NatsServer::start().await;
    let log = server.url();
    for i in 0..8 {
        meridian_purge::publish(&log, None, &url_purge(&format!("/{i}")), &[], DEADLINE)
            .await
            .expect("publish");
    }
    let max_lag = Duration::from_millis(300);
    let slow = Recorder {
        slow: Some(Duration::from_millis(200)),
        ..Recorder::default()
    };
    let edge = Node::start_with(&log, "edge-slow", Tier::Edge, max_lag, None, slow);
    let (sync, recorder) = (edge.sync.clone(), edge.recorder.clone());
    eventually("lagging while catching up", Duration::from_secs(10), || {
        let behind = recorder.purges().len() < 8;
        let lagging = sync.is_lagging();
        async move { behind && lagging }
    })
    .await;
    assert!(
        !edge.sync.ever_synced(),
        "no sync recorded while entries were pending"
    );
    eventually("caught up and current", Duration::from_secs(15), || {
        let done = recorder.purges().len() == 8;
        let lagging = sync.is_lagging();
        async move { done && !lagging }
    })
    .await;
    assert!(edge.sync.ever_synced());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edges_get_a_purge_whose_publisher_died_between_the_phases() {
    let server = NatsServer::start().await;
    let log = server.url();
    let max_lag = Duration::from_secs(1);
    let shield = Node::start(&log, "shield-b", Tier::Shield, max_lag);
    let edge = Node::start(&log, "edge-b", Tier::Edge, max_lag);
    for node in [&shield, &edge] {
        node.synced().await;
    }
    // What a publisher leaves when it dies right after the shield phase.
    let client = async_nats::connect(log.as_str()).await.expect("connect");
    let js = async_nats::jetstream::new(client);
    let entry = serde_json::json!({"id": "orphan1", "at_ms": 0, "purge": url_purge("/orphan")});
    js.publish(nats_log::SHIELD_SUBJECT, entry.to_string().into())
        .await
        .expect("append")
        .await
        .expect("acked");

    let recorder = edge.recorder.clone();
    eventually(
        "the edge gets it after max-lag",
        Duration::from_secs(10),
        || {
            let n = recorder.purges().len();
            async move { n >= 1 }
        },
    )
    .await;
    assert_eq!(shield.recorder.purges(), [url_purge("/orphan")]);
    assert_eq!(edge.recorder.purges(), [url_purge("/orphan")]);
    assert!(shield.recorder.instants()[0] + max_lag < edge.recorder.instants()[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backstop_does_not_repeat_an_edge_phase_already_appended() {
    let server = NatsServer::start().await;
    let log = server.url();
    let max_lag = Duration::from_millis(500);
    let shields = [
        Node::start(&log, "shield-d1", Tier::Shield, max_lag),
        Node::start(&log, "shield-d2", Tier::Shield, max_lag),
    ];
    let edge = Node::start(&log, "edge-d", Tier::Edge, max_lag);
    for node in [&shields[0], &shields[1], &edge] {
        node.synced().await;
    }
    let nodes: Vec<NodeRef> = [&shields[0], &shields[1], &edge]
        .map(Node::node_ref)
        .to_vec();
    let report = meridian_purge::publish(&log, None, &url_purge("/once"), &nodes, DEADLINE)
        .await
        .expect("publish");
    assert!(report.unconfirmed().is_empty());
    // Waiting out both backstops (an absence: nothing to poll for).
    tokio::time::sleep(max_lag * 3).await;
    let status = meridian_purge::status(&log, None, &nodes)
        .await
        .expect("status");
    assert_eq!(status.head, report.seq + 1, "one edge phase, not three");
    assert_eq!(edge.recorder.purges(), [url_purge("/once")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shield_catching_up_does_not_append_old_edge_phases_again() {
    let server = NatsServer::start().await;
    let log = server.url();
    // A stream that forgets message ids at once, so a repeat would show.
    let client = async_nats::connect(log.as_str()).await.expect("connect");
    async_nats::jetstream::new(client)
        .create_stream(async_nats::jetstream::stream::Config {
            name: nats_log::STREAM.to_string(),
            subjects: vec![
                nats_log::SHIELD_SUBJECT.to_string(),
                nats_log::EDGE_SUBJECT.to_string(),
            ],
            duplicate_window: Duration::from_millis(100),
            ..Default::default()
        })
        .await
        .expect("create the stream");
    for path in ["/h1", "/h2"] {
        meridian_purge::publish(&log, None, &url_purge(path), &[], DEADLINE)
            .await
            .expect("publish");
    }
    // Past the duplicate window: the history is old.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let max_lag = Duration::from_millis(500);
    let shield = Node::start(&log, "shield-h", Tier::Shield, max_lag);
    let recorder = shield.recorder.clone();
    eventually("the shield catches up", Duration::from_secs(10), || {
        let n = recorder.purges().len();
        async move { n >= 2 }
    })
    .await;
    // Waiting out any backstop (an absence: nothing to poll for).
    tokio::time::sleep(max_lag * 3).await;
    let status = meridian_purge::status(&log, None, &[shield.node_ref()])
        .await
        .expect("status");
    assert_eq!(status.head, 4, "history is not appended again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_stream_makes_followers_purge_everything() {
    let server = NatsServer::start().await;
    let log = server.url();
    let edge = Node::start(&log, "edge-x", Tier::Edge, LAG);
    edge.synced().await;
    let nodes = [edge.node_ref()];
    meridian_purge::publish(&log, None, &url_purge("/before"), &nodes, DEADLINE)
        .await
        .expect("publish");

    let client = async_nats::connect(log.as_str()).await.expect("connect");
    async_nats::jetstream::new(client)
        .delete_stream(nats_log::STREAM)
        .await
        .expect("delete the stream");
    let recorder = edge.recorder.clone();
    eventually(
        "the follower notices and purges everything",
        Duration::from_secs(15),
        || {
            let all = recorder.purges().iter().any(|p| p.all);
            async move { all }
        },
    )
    .await;
    let report = meridian_purge::publish(&log, None, &url_purge("/after"), &nodes, DEADLINE)
        .await
        .expect("publish to the new stream");
    assert!(report.unconfirmed().is_empty());
    let purges = edge.recorder.purges();
    let all = Purge {
        all: true,
        ..Purge::default()
    };
    assert_eq!(purges.first(), Some(&url_purge("/before")));
    assert_eq!(purges.last(), Some(&url_purge("/after")));
    assert!(purges.contains(&all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_when_the_server_has_one() {
    let server = NatsServer::start_with(Some("s3cret")).await;
    let log = server.url();
    let edge = Node::start_with(
        &log,
        "edge-t",
        Tier::Edge,
        LAG,
        Some("s3cret"),
        Recorder::default(),
    );
    edge.synced().await;
    let purge = url_purge("/t");
    for token in [None, Some("wrong")] {
        let refused =
            meridian_purge::publish(&log, token, &purge, &[edge.node_ref()], DEADLINE).await;
        assert!(refused.is_err(), "{token:?} was accepted");
    }
    let report =
        meridian_purge::publish(&log, Some("s3cret"), &purge, &[edge.node_ref()], DEADLINE)
            .await
            .expect("publish with the token");
    assert!(report.unconfirmed().is_empty());
    assert_eq!(edge.recorder.purges(), [purge]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_harmless_when_the_server_has_none() {
    // `purge.token-file` defaults to MERIDIAN_ADMIN_TOKEN, which an
    // operator may set for the admin API while NATS runs without auth.
    let server = NatsServer::start().await;
    let log = server.url();
    let edge = Node::start_with(
        &log,
        "edge-n",
        Tier::Edge,
        LAG,
        Some("admin"),
        Recorder::default(),
    );
    edge.synced().await;
    let report = meridian_purge::publish(
        &log,
        Some("admin"),
        &url_purge("/n"),
        &[edge.node_ref()],
        DEADLINE,
    )
    .await
    .expect("publish with a token the server does not ask for");
    assert!(report.unconfirmed().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_purge_is_refused_before_it_reaches_the_log() {
    let server = NatsServer::start().await;
    let refused =
        meridian_purge::publish(&server.url(), None, &Purge::default(), &[], DEADLINE).await;
    assert!(
        matches!(refused, Err(meridian_purge::LogError::Refused(_))),
        "{refused:?}"
    );
}

/// Not a speed assertion: prints publish→all-confirmed for one shield and
/// two edges, the number the README's note quotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_all_confirmed_one_shield_two_edges() {
    let server = NatsServer::start().await;
    let log = server.url();
    let nodes = [
        Node::start(&log, "shield-m", Tier::Shield, LAG),
        Node::start(&log, "edge-m1", Tier::Edge, LAG),
        Node::start(&log, "edge-m2", Tier::Edge, LAG),
    ];
    for node in &nodes {
        node.synced().await;
    }
    let refs: Vec<NodeRef> = nodes.iter().map(Node::node_ref).collect();
    let mut ms = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        let report =
            meridian_purge::publish(&log, None, &url_purge(&format!("/m{i}")), &refs, DEADLINE)
                .await
                .expect("publish");
        assert!(report.unconfirmed().is_empty());
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    ms.sort_by(f64::total_cmp);
    eprintln!(
        "nats purge log, 1 shield + 2 edges, 20 purges: median {:.1} ms, max {:.1} ms",
        ms[ms.len() / 2],
        ms[ms.len() - 1]
    );
}
