//! `meridian director`: the geo director. Flags override the config file's
//! `[director]` keys; the file's `[[edge]]` tables say where clients go.
//! With `--purge-state DIR` (or `[purge-log] state-dir`) it also keeps the
//! cluster purge log on its admin listener.
//! SIGHUP re-reads the database file(s); Ctrl-C / SIGTERM stop it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use meridian_common::Shutdown;
use meridian_geo_director::{Config, DEFAULT_GEOIP, Director, Switch};

#[derive(clap::Args)]
pub struct DirectorArgs {
    /// Address for client requests [default: `[director] listen`, else 127.0.0.1:8000].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Config file with the `[[edge]]` tables (and optional `[director]`, `[[coverage-zone]]`).
    #[arg(long, default_value = "config/cluster.toml")]
    config: PathBuf,
    /// MaxMind DB file (City, Country or DB-IP flat; plain or zstd); repeat to consult several in order
    /// [default: the shipped geo-data/dbip-regions.mmdb.zst].
    #[arg(long)]
    geoip: Vec<PathBuf>,
    /// CIDR of a proxy whose X-Forwarded-For / Forwarded headers are believed; repeatable.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxy: Vec<IpNet>,
    /// Admin listener (/healthz, POST /reload, /v1/edges) [default: none].
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// `off` treats every configured edge as up (no /healthz polling).
    #[arg(long, value_name = "on|off")]
    health_checks: Option<Switch>,
    /// Validate the config and open the database, then exit.
    #[arg(long)]
    check_config: bool,
    /// Worker threads [default: one per core].
    #[arg(long)]
    workers: Option<usize>,
    /// Keep the cluster purge log in this directory, served on the admin
    /// listener [default: `[purge-log] state-dir`, else no log].
    #[arg(long, value_name = "DIR")]
    purge_state: Option<PathBuf>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:8000";

pub fn main(args: DirectorArgs) -> anyhow::Result<()> {
    let config = load(&args)?;
    // Opening the database here makes a bad file a startup error, and lets
    // --check-config check it too.
    let director = Arc::new(Director::new(config.clone())?);
    if args.check_config {
        println!(
            "{}: ok ({} edges; database {})",
            config.source,
            director.edges().len(),
            director.database()
        );
        return Ok(());
    }
    let listen = match config.listen {
        Some(a) => a,
        None => DEFAULT_LISTEN.parse()?,
    };
    super::runtime(args.workers)?.block_on(async move {
        let (listener, admin, shutdown) = super::bind(listen, config.admin_listen).await?;
        reload_on_sighup(director.clone(), shutdown.clone());
        meridian_geo_director::serve(listener, admin, director, shutdown).await?;
        Ok(())
    })
}

/// The file, then the flags on top, validated again.
fn load(args: &DirectorArgs) -> anyhow::Result<Config> {
    let mut config = Config::load(&args.config)?;
    if let Some(a) = args.listen {
        config.listen = Some(a);
    }
    if let Some(a) = args.admin_listen {
        config.admin_listen = Some(a);
    }
    if !args.geoip.is_empty() {
        config.geoip = args.geoip.clone();
    }
    if !args.trusted_proxy.is_empty() {
        config.trusted_proxies = args.trusted_proxy.clone();
    }
    if let Some(s) = args.health_checks {
        config.health.enabled = s.0;
    }
    if let Some(dir) = &args.purge_state {
        config.purge_log.state_dir = Some(dir.clone());
    }
    // The shipped database is found from the repository root; a binary run
    // from elsewhere (cargo run in a subfolder, the tests) falls back to the
    // copy in the source tree it was built from.
    for path in &mut config.geoip {
        if path == Path::new(DEFAULT_GEOIP) && !path.exists() {
            let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_GEOIP);
            if built_in.exists() {
                *path = built_in;
            }
        }
    }
    config.validate()?;
    Ok(config)
}

#[cfg(unix)]
fn reload_on_sighup(director: Arc<Director>, shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("cannot listen for SIGHUP, reload only via POST /reload: {e}");
            return;
        }
    };
    tokio::spawn(async move {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                got = hup.recv() => if got.is_none() { return },
            }
            let d = director.clone();
            // Reading the file is blocking work; the old database serves meanwhile.
            match tokio::task::spawn_blocking(move || d.reload()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    tracing::error!("SIGHUP reload failed, keeping the old database: {e}")
                }
                Err(e) => tracing::error!("SIGHUP reload task failed: {e}"),
            }
        }
    });
}

#[cfg(not(unix))]
fn reload_on_sighup(_director: Arc<Director>, _shutdown: Shutdown) {}
