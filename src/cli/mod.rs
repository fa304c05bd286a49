//! One module per subcommand; each exposes `XArgs` (clap) and `main(args)`.

pub mod director;
pub mod edge;
pub mod origin;
pub mod shield;

/// Logs go to stderr; `RUST_LOG` selects what (default `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Builds a tokio runtime; `workers` = None uses one thread per core.
pub fn runtime(workers: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut b = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    Ok(b.enable_all().build()?)
}

/// The listeners and shutdown signal every service starts with: binds the
/// service listener and the optional admin listener (errors name the flag)
/// and returns a [`meridian_common::Shutdown`] that fires on Ctrl-C or
/// SIGTERM. Must run inside the runtime.
pub async fn bind(
    listen: std::net::SocketAddr,
    admin: Option<std::net::SocketAddr>,
) -> anyhow::Result<(
    tokio::net::TcpListener,
    Option<tokio::net::TcpListener>,
    meridian_common::Shutdown,
)> {
    use anyhow::Context;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (--listen / listen)"))?;
    let admin =
        match admin {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await.with_context(|| {
                format!("cannot listen on {a} (--admin-listen / admin-listen)")
            })?),
            None => None,
        };
    let shutdown = meridian_common::Shutdown::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        meridian_common::shutdown_signal().await;
        trigger.trigger();
    });
    Ok((listener, admin, shutdown))
}
