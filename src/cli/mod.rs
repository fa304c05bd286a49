//! One module per subcommand; each exposes `XArgs` (clap) and `main(args)`.

pub mod cluster;
pub mod director;
pub mod edge;
pub mod origin;
pub mod purge;
pub mod shield;
pub mod simulate;
pub mod soak;

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
    let (admin, shutdown) = admin_and_signal(admin).await?;
    Ok((listener, admin, shutdown))
}

/// The proxy listeners (plain, TLS with its certificates loaded), the
/// admin listener and the shutdown signal of a caching node; errors name
/// the flag and key.
pub async fn bind_node(
    config: &meridian_proxy::Config,
) -> anyhow::Result<(
    meridian_proxy::Listeners,
    Option<tokio::net::TcpListener>,
    meridian_common::Shutdown,
)> {
    let listeners = meridian_proxy::Listeners::bind(config).await?;
    let (admin, shutdown) = admin_and_signal(config.admin_listen).await?;
    Ok((listeners, admin, shutdown))
}

/// The optional admin listener, and the shutdown signal that fires on
/// Ctrl-C or SIGTERM.
async fn admin_and_signal(
    admin: Option<std::net::SocketAddr>,
) -> anyhow::Result<(Option<tokio::net::TcpListener>, meridian_common::Shutdown)> {
    use anyhow::Context;
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
    Ok((admin, shutdown))
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
    /// TLS listener address, beside or instead of --listen [config `tls.listen`, default off].
    #[arg(long, value_name = "ADDR")]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the TLS listener; repeat with --tls-key for
    /// several, picked by SNI, the first the default [config `[[tls.cert]] cert`].
    #[arg(long = "tls-cert", value_name = "PEM")]
    pub tls_certs: Vec<PathBuf>,
    /// PEM private key of the --tls-cert in the same position [config `[[tls.cert]] key`].
    #[arg(long = "tls-key", value_name = "PEM")]
    pub tls_keys: Vec<PathBuf>,
    /// The plain listener answers 308 to https:// instead of proxying
    /// [config `tls.redirect-plain`, default off].
    #[arg(long)]
    pub redirect_https: bool,
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
        self.check_tls_pairs()?;
        Ok(match &self.config {
            Some(p) => (meridian_common::load_toml(p)?, p.display().to_string()),
            None => (F::default(), "command line".to_string()),
        })
    }
}

impl NodeFlags {
    /// `--tls-cert` and `--tls-key` come in pairs, matched by position.
    pub fn check_tls_pairs(&self) -> anyhow::Result<()> {
        let (certs, keys) = (self.tls_certs.len(), self.tls_keys.len());
        if certs != keys {
            anyhow::bail!(
                "command line: {certs} --tls-cert but {keys} --tls-key: give one key per \
                 certificate, in the same order"
            );
        }
        Ok(())
    }

    /// The `--tls-cert`/`--tls-key` pairs, made absolute: a path on the
    /// command line is relative to the working directory, not to the
    /// config file as a path written in the file is.
    pub fn tls_pairs(&self) -> Vec<meridian_proxy::config::CertSection> {
        let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        self.tls_certs
            .iter()
            .zip(&self.tls_keys)
            .map(|(cert, key)| meridian_proxy::config::CertSection {
                cert: absolute(cert),
                key: absolute(key),
            })
            .collect()
    }
}

/// Puts the node flags that were given over a node's file config (whose
/// fields share the names: `admin_listen`, `name`, `region`, `workers`,
/// `site_host`, `accept_hosts`, `trusted_forwarders`, `cache.size`,
/// `tls`). Certificate pairs from flags replace the file's list.
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
        if flags.tls_listen.is_some() {
            $file.tls.listen = flags.tls_listen;
        }
        if !flags.tls_certs.is_empty() {
            $file.tls.cert = flags.tls_pairs();
        }
        if flags.redirect_https {
            $file.tls.redirect_plain = Some(true);
        }
    }};
}
pub(crate) use apply_node_flags;

/// A path given as a flag, made absolute: it is the shell's, while paths in
/// a config file are relative to that file.
pub(crate) fn shell_path(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}
