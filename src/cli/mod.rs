//! One module per subcommand; each exposes `XArgs` (clap) and `main(args)`.

pub mod cluster;
pub mod director;
pub mod edge;
pub mod origin;
pub mod purge;
pub mod shield;
pub mod simulate;

use std::net::SocketAddr;
use std::path::PathBuf;

use meridian_common::ByteSize;

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

/// Flags every caching node (edge, shield) takes; `#[command(flatten)]`ed
/// into its own arguments.
#[derive(clap::Args)]
pub struct NodeFlags {
    /// Admin listener (/healthz, /stats) [config `admin-listen`, default off].
    #[arg(long)]
    pub admin_listen: Option<SocketAddr>,
    /// Node name, shown in Cache-Status and Via [config `name`].
    #[arg(long)]
    pub name: Option<String>,
    /// Region label reported by /healthz [config `region`, default "local"].
    #[arg(long)]
    pub region: Option<String>,
    /// Memory for stored responses, e.g. 256MiB [config `cache.size`].
    #[arg(long)]
    pub cache_size: Option<ByteSize>,
    /// Runtime worker threads [config `workers`, default one per core].
    #[arg(long)]
    pub workers: Option<usize>,
    /// Serve every request as this site (a host, optionally :PORT), whatever address
    /// the client used [config `site-host`, default off].
    #[arg(long, value_name = "HOST[:PORT]")]
    pub site_host: Option<String>,
    /// Host served (host, host:port or *.suffix); others get 421;
    /// repeatable [config `accept-hosts`, default all].
    #[arg(long = "accept-host", value_name = "HOST")]
    pub accept_hosts: Vec<String>,
    /// CIDR of peers whose X-Forwarded-* / Forwarded fields are kept and
    /// appended to; repeatable [config `trusted-forwarders`, default none].
    #[arg(long = "trusted-forwarder", value_name = "CIDR")]
    pub trusted_forwarders: Vec<ipnet::IpNet>,
    /// TOML config file (see config/); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    pub check_config: bool,
}

impl NodeFlags {
    /// The config file (or defaults without `--config`) and the name to
    /// use for it in error messages.
    pub fn load_file<F: serde::de::DeserializeOwned + Default>(
        &self,
    ) -> anyhow::Result<(F, String)> {
        Ok(match &self.config {
            Some(p) => (meridian_common::load_toml(p)?, p.display().to_string()),
            None => (F::default(), "command line".to_string()),
        })
    }
}

/// Puts the node flags that were given over a node's file config (whose
/// fields share the names: `admin_listen`, `name`, `region`, `workers`,
/// `site_host`, `accept_hosts`, `trusted_forwarders`, `cache.size`).
macro_rules! apply_node_flags {
    ($file:expr, $flags:expr) => {{
        let flags: &$crate::cli::NodeFlags = $flags;
        if flags.admin_listen.is_some() {
            $file.admin_listen = flags.admin_listen;
        }
        if flags.name.is_some() {
            $file.name = flags.name.clone();
        }
        if flags.region.is_some() {
            $file.region = flags.region.clone();
        }
        if flags.cache_size.is_some() {
            $file.cache.size = flags.cache_size;
        }
        if flags.workers.is_some() {
            $file.workers = flags.workers;
        }
        if flags.site_host.is_some() {
            $file.site_host = flags.site_host.clone();
        }
        if !flags.accept_hosts.is_empty() {
            $file.accept_hosts = Some(flags.accept_hosts.clone());
        }
        if !flags.trusted_forwarders.is_empty() {
            $file.trusted_forwarders = Some(flags.trusted_forwarders.clone());
        }
    }};
}
pub(crate) use apply_node_flags;
