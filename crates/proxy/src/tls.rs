//! TLS termination (rustls): certificates from PEM files, chosen by SNI,
//! reloaded without dropping a connection.
//!
//! ```text
//! [[tls.cert]] files ──load──► SniCerts ──ArcSwap──► Certs (ResolvesServerCert)
//!                      ▲                                 │
//!        SIGHUP, file poll (1 s): reload,                ▼
//!        keep the old set if the new one fails   ServerConfig (once): TLS 1.2+1.3,
//!                                                ALPN h2/http1.1, tickets, session cache
//! ```
//!
//! The `ServerConfig` is built once and only the certificate set behind
//! its resolver is swapped, so a reload keeps the ticket keys and the
//! session cache (clients keep resuming) and touches no open connection: a
//! connection owns its negotiated keys and never asks the resolver again.
//!
//! Certificates are picked as nginx picks a `server_name`: an exact name
//! first, then a `*.` wildcard covering one label, else the first
//! configured pair (also what a client without SNI gets, such as one that
//! connects by IP address). The names are each certificate's own
//! subjectAltName DNS entries, so nothing is configured twice.

mod san;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use meridian_common::Shutdown;
use rustls::server::{
    ClientHello, NoServerSessionStorage, ResolvesServerCert, ServerSessionMemoryCache,
};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// `tls.handshake-timeout` default: a client that has not finished its
/// handshake by then is dropped (nginx's `client_header_timeout` covers the
/// handshake with 60 s; Envoy's `transport_socket_connect_timeout` is off
/// by default; 10 s is ample for a real client across the world).
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// `tls.session-cache` default: TLS sessions remembered by the server for
/// clients resuming by session ID (TLS 1.2 without tickets). About 200
/// bytes each; tickets need no server memory at all.
pub const DEFAULT_SESSION_CACHE: usize = 4096;
/// `tls.max-handshakes` default: handshakes in progress at once per TLS
/// listener. Past it the listener stops accepting until one finishes, so a
/// flood of silent connections costs bounded memory.
pub const DEFAULT_MAX_HANDSHAKES: usize = 1024;
/// How often the certificate files' modification stamps are checked.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);
/// A PEM file larger than this is not a certificate chain or a key.
const MAX_PEM_FILE: u64 = 1 << 20;

/// One `[[tls.cert]]`: a certificate chain (leaf first) and its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The validated `[tls]` section.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// Where the TLS listener binds.
    pub listen: SocketAddr,
    /// The certificates, the first being the default.
    pub certs: Vec<CertFiles>,
    pub handshake_timeout: Duration,
    /// The plain listener answers 308 to `https://` instead of proxying.
    pub redirect_plain: bool,
    /// 0: no server-side session cache.
    pub session_cache: usize,
    /// Stateless session tickets (RFC 5077, RFC 8446 §4.6.1).
    pub session_tickets: bool,
    pub max_handshakes: usize,
}

/// Why certificates could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("certificate {}: {reason}", path.display())]
    Cert { path: PathBuf, reason: String },
    #[error("key {}: {reason}", path.display())]
    Key { path: PathBuf, reason: String },
    #[error("key {} does not belong to certificate {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("no certificate configured")]
    NoCertificates,
    #[error("TLS setup: {0}")]
    Setup(#[from] rustls::Error),
}

impl TlsError {
    /// Which file of a `[[tls.cert]]` pair the error is about: `cert` or `key`.
    pub fn field(&self) -> &'static str {
        match self {
            TlsError::Key { .. } | TlsError::Mismatch { .. } => "key",
            _ => "cert",
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > MAX_PEM_FILE {
        return Err(format!(
            "{} bytes is too large for a PEM file (at most {MAX_PEM_FILE})",
            meta.len()
        ));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// Loads one certificate chain and its key, checking that they belong
/// together.
pub fn load_pair(files: &CertFiles) -> Result<CertifiedKey, TlsError> {
    let cert_err = |reason: String| TlsError::Cert {
        path: files.cert.clone(),
        reason,
    };
    let key_err = |reason: String| TlsError::Key {
        path: files.key.clone(),
        reason,
    };
    let pem = read_pem(&files.cert).map_err(cert_err)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_err(format!("not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block".into()));
    }
    let pem = read_pem(&files.key).map_err(key_err)?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => key_err("no PRIVATE KEY block".into()),
        e => key_err(format!("not PEM: {e}")),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| key_err(format!("unusable key: {e}")))?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::Mismatch {
                cert: files.cert.clone(),
                key: files.key.clone(),
            })
        }
        Err(e) => Err(cert_err(format!("not a usable certificate: {e}"))),
    }
}

/// A set of certificates and the names each one serves.
pub struct SniCerts {
    certs: Vec<Arc<CertifiedKey>>,
    /// Exact names (lower case) to their certificate.
    exact: HashMap<String, usize>,
    /// For `*.example.com`, `example.com` to its certificate.
    wildcard: HashMap<String, usize>,
}

impl fmt::Debug for SniCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SniCerts")
            .field("certs", &self.certs.len())
            .field("exact", &self.exact)
            .field("wildcard", &self.wildcard)
            .finish()
    }
}

impl SniCerts {
    /// Loads every pair; fails on the first that does not load.
    pub fn load(files: &[CertFiles]) -> Result<SniCerts, TlsError> {
        let keys = files.iter().map(load_pair).collect::<Result<Vec<_>, _>>()?;
        SniCerts::new(keys)
    }

    /// The set of these certificates, the first being the default. When
    /// two certificates list the same name, the earlier one serves it.
    pub fn new(keys: Vec<CertifiedKey>) -> Result<SniCerts, TlsError> {
        if keys.is_empty() {
            return Err(TlsError::NoCertificates);
        }
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, key) in keys.iter().enumerate() {
            let Ok(leaf) = key.end_entity_cert() else {
                continue;
            };
            for name in san::dns_names(leaf) {
                let name = name.strip_suffix('.').unwrap_or(&name);
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_owned()).or_insert(i),
                    None => exact.entry(name.to_owned()).or_insert(i),
                };
            }
        }
        Ok(SniCerts {
            certs: keys.into_iter().map(Arc::new).collect(),
            exact,
            wildcard,
        })
    }

    /// The certificate for a client that asked for `server_name` (SNI).
    pub fn pick(&self, server_name: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let index = server_name.and_then(|name| {
            let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
            self.exact.get(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.wildcard.get(parent)
            })
        });
        self.certs.get(index.copied().unwrap_or(0))
    }
}

/// What a file held when last loaded: a reload is due when it changes (a
/// rewrite in place, or a new file renamed over it, as certbot and
/// Kubernetes secret volumes do). A hash of the contents rather than the
/// modification time, which a rewrite within the same clock tick (or a
/// copy keeping times) would leave alone; the files are a few KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(u64);

fn stamp(path: &Path) -> Option<Stamp> {
    use std::hash::{Hash, Hasher};
    let bytes = read_pem(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(Stamp(h.finish()))
}

/// The live certificate set of a TLS listener: what its `ServerConfig`
/// resolves certificates with, swapped whole on reload.
pub struct Certs {
    files: Vec<CertFiles>,
    current: ArcSwap<SniCerts>,
    /// The stamps of `files` at the last load attempt.
    seen: Mutex<Vec<Option<Stamp>>>,
}

impl fmt::Debug for Certs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certs").field("files", &self.files).finish()
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().pick(hello.server_name()).cloned()
    }
}

impl Certs {
    /// Loads the certificates of `files`.
    pub fn load(files: Vec<CertFiles>) -> Result<Certs, TlsError> {
        let seen = files
            .iter()
            .flat_map(|f| [stamp(&f.cert), stamp(&f.key)])
            .collect();
        let current = SniCerts::load(&files)?;
        Ok(Certs {
            files,
            current: ArcSwap::from_pointee(current),
            seen: Mutex::new(seen),
        })
    }

    /// The certificate a client asking for `server_name` gets now.
    pub fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.current.load().pick(server_name).cloned()
    }

    /// Loads the files again and swaps the new set in; on any error the
    /// old set stays and the error (naming the file) is returned. New
    /// handshakes see the new set; open connections are not touched.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = self.stamps();
        if let Ok(mut seen) = self.seen.lock() {
            *seen = stamps;
        }
        let fresh = SniCerts::load(&self.files)?;
        self.current.store(Arc::new(fresh));
        Ok(())
    }

    /// [`Certs::reload`] when a file changed since the last attempt;
    /// `None` when none did. A failed attempt is not retried until a file
    /// changes again (the key written after the certificate, say).
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let stamps = self.stamps();
        let changed = self.seen.lock().map_or(true, |seen| *seen != stamps);
        changed.then(|| self.reload())
    }

    fn stamps(&self) -> Vec<Option<Stamp>> {
        self.files
            .iter()
            .flat_map(|f| [stamp(&f.cert), stamp(&f.key)])
            .collect()
    }

    /// Reloads on SIGHUP and when a file's contents change (checked every
    /// [`WATCH_INTERVAL`]) until `shutdown`, logging the outcome.
    pub async fn watch(self: Arc<Self>, shutdown: Shutdown) {
        #[cfg(unix)]
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(
                    "cannot listen for SIGHUP (certificates reload on file change only): {e}"
                );
                None
            }
        };
        let stop = shutdown.wait();
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let signalled = async {
                #[cfg(unix)]
                if let Some(s) = hangup.as_mut() {
                    return s.recv().await.is_some();
                }
                std::future::pending::<bool>().await
            };
            let forced = tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => false,
                true = signalled => true,
            };
            let certs = Arc::clone(&self);
            // File reads: off the workers that serve requests.
            let outcome = tokio::task::spawn_blocking(move || {
                if forced {
                    Some(certs.reload())
                } else {
                    certs.reload_if_changed()
                }
            })
            .await;
            match outcome {
                Ok(Some(Ok(()))) => tracing::info!(
                    why = if forced { "SIGHUP" } else { "file changed" },
                    "TLS certificates reloaded"
                ),
                Ok(Some(Err(e))) => {
                    tracing::error!("TLS certificates not reloaded, keeping the old ones: {e}")
                }
                Ok(None) => {}
                Err(e) => tracing::error!("TLS certificate reload failed: {e}"),
            }
        }
    }
}

/// The negotiated application protocol of a TLS connection.
pub fn is_h2(stream: &TlsStream<TcpStream>) -> bool {
    stream.get_ref().1.alpn_protocol() == Some(b"h2")
}

/// A TLS listener's acceptor and its live certificates.
pub struct Tls {
    acceptor: TlsAcceptor,
    certs: Arc<Certs>,
    settings: TlsSettings,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("settings", &self.settings)
            .finish()
    }
}

/// Why a handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no handshake within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl Tls {
    /// Loads the certificates and builds the server configuration: TLS 1.3
    /// and 1.2, ALPN `h2` then `http/1.1`, session tickets and a bounded
    /// session cache as configured.
    pub fn new(settings: &TlsSettings) -> Result<Tls, TlsError> {
        let certs = Arc::new(Certs::load(settings.certs.clone())?);
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&certs) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        config.session_storage = if settings.session_cache == 0 {
            Arc::new(NoServerSessionStorage {})
        } else {
            ServerSessionMemoryCache::new(settings.session_cache)
        };
        if settings.session_tickets {
            // Keys rotate every 6 hours; the previous key still decrypts.
            config.ticketer = rustls::crypto::ring::Ticketer::new()?;
        }
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certs,
            settings: settings.clone(),
        })
    }

    /// The live certificates (to reload them, or see which one is served).
    pub fn certs(&self) -> &Arc<Certs> {
        &self.certs
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// Runs the server side of the handshake on `stream`, within
    /// `handshake-timeout`.
    pub async fn handshake(
        &self,
        stream: TcpStream,
    ) -> Result<TlsStream<TcpStream>, HandshakeError> {
        let timeout = self.settings.handshake_timeout;
        match tokio::time::timeout(timeout, self.acceptor.accept(stream)).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(HandshakeError::Timeout(timeout)),
        }
    }
}

#[cfg(test)]
mod tests {
    use meridian_common::HumanDuration;
    use meridian_common::certs::LocalCa;

    use super::*;

    fn pair(ca: &LocalCa, dir: &Path, stem: &str, names: &[&str]) -> CertFiles {
        let files = ca
            .issue(names)
            .expect("issue")
            .write(dir, stem)
            .expect("write");
        CertFiles {
            cert: files.cert,
            key: files.key,
        }
    }

    fn leaf(k: &CertifiedKey) -> Vec<u8> {
        k.end_entity_cert().expect("leaf").to_vec()
    }

    #[test]
    fn sni_picks_exact_then_wildcard_then_the_first() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = LocalCa::generate("test CA").expect("ca");
        let files = [
            pair(&ca, dir.path(), "default", &["default.test", "127.0.0.1"]),
            pair(&ca, dir.path(), "wild", &["*.b.test"]),
            pair(&ca, dir.path(), "www", &["www.b.test", "a.test"]),
        ];
        let certs = SniCerts::load(&files).expect("loads");
        let served = |sni: Option<&str>| leaf(certs.pick(sni).expect("a cert"));
        let [default, wild, www] = [0, 1, 2].map(|i| leaf(&certs.certs[i]));
        let cases = [
            (None, &default),
            (Some("unknown.test"), &default),
            (Some("a.test"), &www),
            (Some("A.TEST."), &www),
            (Some("www.b.test"), &www),
            (Some("img.b.test"), &wild),
            // A wildcard covers exactly one label (RFC 6125 §6.4.3).
            (Some("b.test"), &default),
            (Some("x.img.b.test"), &default),
        ];
        for (sni, want) in cases {
            assert_eq!(&served(sni), want, "{sni:?}");
        }
    }

    #[test]
    fn a_bad_pair_names_its_file() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = LocalCa::generate("test CA").expect("ca");
        let a = pair(&ca, dir.path(), "a", &["a.test"]);
        let b = pair(&ca, dir.path(), "b", &["b.test"]);
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a pem file\n").expect("write");
        let missing = dir.path().join("missing.pem");
        let cases = [
            (
                CertFiles {
                    cert: missing.clone(),
                    key: a.key.clone(),
                },
                "cert",
                "missing.pem",
            ),
            (
                CertFiles {
                    cert: junk.clone(),
                    key: a.key.clone(),
                },
                "cert",
                "junk.pem",
            ),
            (
                CertFiles {
                    cert: a.cert.clone(),
                    key: junk.clone(),
                },
                "key",
                "junk.pem",
            ),
            (
                CertFiles {
                    cert: a.cert.clone(),
                    key: b.key.clone(),
                },
                "key",
                "b.key",
            ),
            // A key where the certificate should be: no CERTIFICATE block.
            (
                CertFiles {
                    cert: a.key.clone(),
                    key: a.key.clone(),
                },
                "cert",
                "a.key",
            ),
        ];
        for (files, field, file) in cases {
            let e = load_pair(&files).expect_err(file);
            assert_eq!(e.field(), field, "{e}");
            assert!(e.to_string().contains(file), "{e}");
        }
        assert!(load_pair(&a).is_ok());
    }

    #[test]
    fn reload_swaps_in_new_files_and_keeps_the_old_set_on_error() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = LocalCa::generate("test CA").expect("ca");
        let files = pair(&ca, dir.path(), "edge", &["a.test"]);
        let certs = Certs::load(vec![files.clone()]).expect("loads");
        let first = leaf(&certs.pick(None).expect("cert"));
        assert!(certs.reload_if_changed().is_none(), "nothing changed");

        ca.issue(&["a.test"])
            .expect("issue")
            .write(dir.path(), "edge")
            .expect("write");
        assert!(matches!(certs.reload_if_changed(), Some(Ok(()))));
        let second = leaf(&certs.pick(None).expect("cert"));
        assert_ne!(first, second);

        std::fs::write(&files.cert, "-----BEGIN CERTIFICATE-----\nbroken\n").expect("write");
        let e = certs.reload().expect_err("broken cert");
        assert!(e.to_string().contains("edge.crt"), "{e}");
        assert_eq!(
            leaf(&certs.pick(None).expect("cert")),
            second,
            "old set kept"
        );
        assert!(
            certs.reload_if_changed().is_none(),
            "a failed attempt is not retried"
        );
    }

    fn section(listen: Option<&str>, pairs: &[&CertFiles]) -> crate::config::TlsSection {
        crate::config::TlsSection {
            listen: listen.map(|l| l.parse().expect("addr")),
            cert: pairs
                .iter()
                .map(|p| crate::config::CertSection {
                    cert: p.cert.clone(),
                    key: p.key.clone(),
                })
                .collect(),
            ..Default::default()
        }
    }

    fn edge(tls: crate::config::TlsSection, listen: Option<&str>) -> crate::FileConfig {
        crate::FileConfig {
            upstream: vec!["http://127.0.0.1:9000".into()],
            listen: listen.map(|l| l.parse().expect("addr")),
            tls,
            ..Default::default()
        }
    }

    #[test]
    fn a_tls_listener_alone_turns_the_default_plain_listener_off() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = LocalCa::generate("test CA").expect("ca");
        let a = pair(&ca, dir.path(), "a", &["a.test"]);
        let c = edge(section(Some("127.0.0.1:8443"), &[&a]), None)
            .validate("edge.toml")
            .expect("valid");
        assert_eq!(c.listen, None);
        let tls = c.tls.expect("tls");
        assert_eq!(tls.handshake_timeout, DEFAULT_HANDSHAKE_TIMEOUT);
        assert_eq!(tls.session_cache, DEFAULT_SESSION_CACHE);
        assert!(tls.session_tickets && !tls.redirect_plain);
        let c = edge(
            section(Some("127.0.0.1:8443"), &[&a]),
            Some("127.0.0.1:8080"),
        )
        .validate("edge.toml")
        .expect("valid");
        assert_eq!(c.listen, Some("127.0.0.1:8080".parse().expect("addr")));
        let c = edge(Default::default(), None)
            .validate("edge.toml")
            .expect("valid");
        assert_eq!(c.listen, Some("127.0.0.1:8080".parse().expect("addr")));
        assert!(c.tls.is_none());
    }

    #[test]
    fn cert_paths_are_relative_to_the_config_file() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = LocalCa::generate("test CA").expect("ca");
        pair(&ca, dir.path(), "a", &["a.test"]);
        let text = "upstream = ['http://127.0.0.1:9000']\n[tls]\nlisten = '127.0.0.1:8443'\n\
                    [[tls.cert]]\ncert = 'a.crt'\nkey = 'a.key'\n";
        let file = dir.path().join("edge.toml");
        std::fs::write(&file, text).expect("write");
        let source = file.display().to_string();
        let c = crate::FileConfig::load(&file)
            .expect("parses")
            .validate(&source)
            .expect("valid");
        assert_eq!(c.tls.expect("tls").certs[0].cert, dir.path().join("a.crt"));
    }

    #[test]
    fn bad_tls_values_name_file_key_and_reason() {
        let dir = tempfile::tempdir().expect("dir");
        let ca = LocalCa::generate("test CA").expect("ca");
        let a = pair(&ca, dir.path(), "a", &["a.test"]);
        let b = pair(&ca, dir.path(), "b", &["b.test"]);
        let missing = CertFiles {
            cert: dir.path().join("gone.crt"),
            key: a.key.clone(),
        };
        let swapped = CertFiles {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        let on = Some("127.0.0.1:8443");
        let plain = Some("127.0.0.1:8080");
        let with = |f: fn(&mut crate::config::TlsSection)| {
            let mut s = section(on, &[&a]);
            f(&mut s);
            s
        };
        let cases = [
            (
                edge(section(None, &[&a]), plain),
                "tls.listen",
                "no TLS listener",
            ),
            (edge(section(on, &[]), plain), "tls.cert", "at least one"),
            (
                edge(section(on, &[&a, &missing]), plain),
                "tls.cert[1].cert",
                "gone.crt",
            ),
            (
                edge(section(on, &[&swapped]), plain),
                "tls.cert[0].key",
                "does not belong",
            ),
            (edge(section(on, &[&a]), on), "tls.listen", "also the plain"),
            (
                edge(with(|s| s.redirect_plain = Some(true)), None),
                "tls.redirect-plain",
                "no plain",
            ),
            (
                edge(
                    with(|s| s.handshake_timeout = Some(HumanDuration(Duration::ZERO))),
                    plain,
                ),
                "tls.handshake-timeout",
                "more than 0s",
            ),
            (
                edge(with(|s| s.max_handshakes = Some(0)), plain),
                "tls.max-handshakes",
                "more than 0",
            ),
        ];
        for (file, key, reason) in cases {
            let e = file.validate("edge.toml").expect_err(key).to_string();
            assert!(
                e.contains("edge.toml") && e.contains(&format!("`{key}`")) && e.contains(reason),
                "{key}: {e}"
            );
        }
    }
}
