//! TLS for the end-to-end tests: a local CA with its certificates in a
//! temporary directory ([`Pki`]), an edge with a TLS listener on a port
//! from the OS ([`tls_edge`]), and a rustls client that says which
//! certificate it was served and sends HTTP/1.1 or h2 over the connection
//! it keeps ([`Conn`]).
//!
//! ```ignore
//! let pki = Pki::new();
//! let edge = tls_edge(&origin.url(), &[pki.issue("a", &["a.test"])]).await;
//! let mut conn = Conn::open(edge.tls_addr(), "a.test", pki.client(&[&TLS13], &[b"h2"])).await;
//! let (status, headers, body) = conn.get("a.test", "/x").await;
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use meridian_common::certs::LocalCa;
use meridian_edge::config::{CertSection, TlsSection};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::node::{Node, NodeBuilder};

/// The longest any one step of a TLS exchange may take in a test.
pub const STEP: Duration = Duration::from_secs(10);

/// A CA and the certificates it issued, as files in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: LocalCa,
    /// The CA certificate (what `curl --cacert` is given).
    pub ca_file: PathBuf,
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        Pki::named("Meridian test CA")
    }

    /// A CA whose certificate names it `name` (tests with two CAs tell
    /// them apart).
    pub fn named(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = LocalCa::generate(name).expect("ca");
        let ca_file = dir.path().join("ca.crt");
        ca.write_cert(&ca_file).expect("write ca");
        Pki { dir, ca, ca_file }
    }

    /// `;ca=FILE`, to append to an upstream URL that trusts this CA.
    pub fn option(&self) -> String {
        format!(";ca={}", self.ca_file.display())
    }

    /// A certificate for `names` as `STEM.crt` and `STEM.key`, each
    /// written beside and renamed into place (as certbot and Kubernetes
    /// do), so a watcher never reads half a file.
    pub fn issue(&self, stem: &str, names: &[&str]) -> CertSection {
        let issued = self.ca.issue(names).expect("issue");
        let dir = self.dir.path();
        let tmp = issued.write(dir, &format!(".{stem}.new")).expect("write");
        let (cert, key) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        std::fs::rename(&tmp.key, &key).expect("rename key");
        std::fs::rename(&tmp.cert, &cert).expect("rename cert");
        CertSection { cert, key }
    }

    /// A client trusting this CA, offering these versions and ALPN
    /// protocols, resuming sessions from its own in-memory store.
    pub fn client(
        &self,
        versions: &[&'static SupportedProtocolVersion],
        alpn: &[&[u8]],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca.cert_pem().as_bytes()).expect("ca pem"))
            .expect("ca root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// The DER of the certificate in a PEM file (to compare with the one a
/// client was served).
pub fn leaf_der(cert: &CertSection) -> Vec<u8> {
    CertificateDer::from_pem_file(&cert.cert)
        .expect("cert pem")
        .to_vec()
}

/// The `[tls]` section for `certs`, on a port from the OS.
pub fn tls_section(certs: &[CertSection]) -> TlsSection {
    TlsSection {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        cert: certs.to_vec(),
        ..Default::default()
    }
}

/// An edge in front of `upstream` with a plain listener and a TLS listener
/// serving `certs` (the first the default); `.config(..)` tunes `[tls]`.
pub fn tls_edge(upstream: &str, certs: &[CertSection]) -> NodeBuilder<meridian_edge::FileConfig> {
    let tls = tls_section(certs);
    Node::edge(&[upstream]).config(move |c| {
        c.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c.tls = tls;
    })
}

impl Node {
    /// The TLS listener's address (the node must have a `[tls]` section).
    pub fn tls_addr(&self) -> SocketAddr {
        self.tls.as_ref().expect("a TLS listener").0
    }

    /// The node's live certificates, to reload them.
    pub fn certs(&self) -> &Arc<meridian_proxy::tls::Certs> {
        &self.tls.as_ref().expect("a TLS listener").1
    }
}

/// A TLS handshake with `addr` asking for `sni`.
pub async fn handshake(
    addr: SocketAddr,
    sni: &str,
    config: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    tokio::time::timeout(STEP, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("handshake timed out"))?
}

/// Requests on one kept-open TLS connection, HTTP/1.1 or h2 as ALPN chose.
pub struct Conn {
    /// The certificate the server presented (leaf, DER).
    pub leaf: Vec<u8>,
    /// Whether the handshake resumed an earlier session.
    pub resumed: bool,
    pub version: Option<rustls::ProtocolVersion>,
    pub h2: bool,
    sender: Sender,
}

enum Sender {
    H1(http1::SendRequest<Empty<Bytes>>),
    H2(http2::SendRequest<Empty<Bytes>>),
}

impl Conn {
    /// Connects, handshakes, and starts HTTP over the connection.
    pub async fn open(addr: SocketAddr, sni: &str, config: Arc<ClientConfig>) -> Conn {
        let tls = handshake(addr, sni, config).await.expect("handshake");
        let (_, session) = tls.get_ref();
        let leaf = session
            .peer_certificates()
            .and_then(|c| c.first())
            .expect("a server certificate")
            .to_vec();
        let resumed = session.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
        let version = session.protocol_version();
        let h2 = session.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(tls);
        let sender = if h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .expect("h2 handshake");
            tokio::spawn(conn);
            Sender::H2(sender)
        } else {
            let (sender, conn) = http1::handshake(io).await.expect("http1 handshake");
            tokio::spawn(conn);
            Sender::H1(sender)
        };
        Conn {
            leaf,
            resumed,
            version,
            h2,
            sender,
        }
    }

    /// GETs `path` from `host` (as `Host`, or `:authority` on h2) and
    /// returns the status, fields and body.
    pub async fn get(&mut self, host: &str, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = match &mut self.sender {
            Sender::H1(s) => {
                let req = Request::get(path)
                    .header("host", host)
                    .body(Empty::new())
                    .expect("request");
                s.ready().await.expect("connection ready");
                tokio::time::timeout(STEP, s.send_request(req)).await
            }
            Sender::H2(s) => {
                let req = Request::get(format!("https://{host}{path}"))
                    .body(Empty::new())
                    .expect("request");
                s.ready().await.expect("connection ready");
                tokio::time::timeout(STEP, s.send_request(req)).await
            }
        };
        let response = response.expect("answer in time").expect("response");
        let (parts, body) = response.into_parts();
        let body = tokio::time::timeout(STEP, body.collect())
            .await
            .expect("body in time")
            .expect("body")
            .to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }
}
