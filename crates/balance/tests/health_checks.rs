//! `Pool::spawn_health_checks` against a real HTTP server on loopback: the
//! backend goes down when `/healthz` starts answering 500 and comes back
//! when it answers 200 again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use meridian_balance::{Backend, Balance, Pool};
use meridian_common::Shutdown;

const INTERVAL: Duration = Duration::from_millis(50);
/// Scheduling allowance on top of "two intervals", for a loaded CI machine.
const SLACK: Duration = Duration::from_millis(250);

#[derive(Clone, Default)]
struct Origin {
    status: Arc<AtomicU16>,
    checks: Arc<AtomicUsize>,
}

async fn healthz(State(o): State<Origin>) -> StatusCode {
    o.checks.fetch_add(1, Ordering::SeqCst);
    StatusCode::from_u16(o.status.load(Ordering::SeqCst)).unwrap_or(StatusCode::IM_A_TEAPOT)
}

/// Polls `cond` every 5ms until it holds or `within` passes; returns the wait.
async fn wait_until(within: Duration, cond: impl Fn() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if cond() {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond().then(|| start.elapsed())
}

#[tokio::test]
async fn health_checks_take_a_failing_backend_down_and_bring_it_back() {
    let origin = Origin::default();
    origin.status.store(200, Ordering::SeqCst);
    let app = Router::new()
        .route("/healthz", get(healthz))
        .with_state(origin.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let shutdown = Shutdown::new();
    let server = tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.wait())
            .into_future(),
    );

    let backend = Backend::parse(&format!("http://{addr}")).expect("valid URL");
    let pool = Pool::new(vec![backend], Balance::RoundRobin).expect("valid pool");
    let b = Arc::clone(&pool.backends()[0]);
    // No proxy: a proxy from the environment must not see loopback checks.
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let tasks = pool
        .spawn_health_checks(
            client,
            "/healthz",
            INTERVAL,
            Duration::from_millis(500),
            shutdown.clone(),
        )
        .expect("inside a runtime");

    // The first check runs at once and finds it healthy.
    wait_until(Duration::from_secs(1), || {
        b.health().last_check_ms().is_some()
    })
    .await
    .expect("a first check within 1s");
    assert!(b.is_up() && !pool.all_down());

    origin.status.store(500, Ordering::SeqCst);
    let checks_before = origin.checks.load(Ordering::SeqCst);
    let took = wait_until(Duration::from_secs(1), || !b.is_up())
        .await
        .expect("down within 1s");
    assert!(took <= 2 * INTERVAL + SLACK, "went down after {took:?}");
    // fall = 1: the first failing check is enough, at most one more may race in.
    let failing_checks = origin.checks.load(Ordering::SeqCst) - checks_before;
    assert!((1..=2).contains(&failing_checks), "{failing_checks} checks");
    assert!(pool.all_down());

    origin.status.store(200, Ordering::SeqCst);
    let took = wait_until(Duration::from_secs(1), || b.is_up())
        .await
        .expect("up again within 1s");
    assert!(took <= 2 * INTERVAL + SLACK, "came back after {took:?}");
    assert!(!b.stats().ejected && b.stats().last_check_unix_ms.is_some());

    shutdown.trigger();
    for task in tasks {
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .expect("health check task stops on shutdown")
            .expect("task did not panic");
    }
    tokio::time::timeout(Duration::from_secs(1), server)
        .await
        .expect("server stops on shutdown")
        .expect("server task did not panic")
        .expect("server ran");
}
