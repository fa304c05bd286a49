//! An `https://` front for a recording [`Origin`]: a real rustls listener
//! on 127.0.0.1 with a certificate from a test CA ([`Pki`]), relaying
//! each connection's plaintext to the origin, so the origin records what
//! came through TLS exactly as it records plain requests. It also records
//! each handshake's SNI and ALPN, and can be started again on the same port
//! with another certificate.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_common::Shutdown;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use super::origin::Origin;
use super::tls::Pki;

/// A handshake must finish within this, so a stalled client cannot hold a
/// test.
const HANDSHAKE: Duration = Duration::from_secs(5);

/// What one TLS client sent in its hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub sni: Option<String>,
    pub alpn: Option<String>,
    /// The client resumed an earlier session instead of a full handshake.
    pub resumed: bool,
}

/// A TLS listener in front of an [`Origin`].
pub struct TlsOrigin {
    pub addr: SocketAddr,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
    shutdown: Shutdown,
    task: Option<JoinHandle<()>>,
}

impl TlsOrigin {
    /// A front on a port from the OS for `origin`, with a certificate from
    /// `ca` for `names` (DNS names or IP addresses).
    pub async fn start(origin: &Origin, ca: &Pki, names: &[&str]) -> TlsOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        TlsOrigin::serve(listener, origin.addr, ca, names)
    }

    /// A front for any plain HTTP server at `target`.
    pub async fn start_for(target: SocketAddr, ca: &Pki, names: &[&str]) -> TlsOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        TlsOrigin::serve(listener, target, ca, names)
    }

    /// The same on a given address (a stopped front's).
    pub async fn start_at(
        addr: SocketAddr,
        origin: &Origin,
        ca: &Pki,
        names: &[&str],
    ) -> TlsOrigin {
        let listener = TcpListener::bind(addr).await.expect("rebind");
        TlsOrigin::serve(listener, origin.addr, ca, names)
    }

    /// `https://localhost:PORT`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    /// The handshakes that completed, in order.
    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().expect("lock").clone()
    }

    /// Stops accepting and closes every connection.
    pub async fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("front stops within 5s")
                .expect("front task");
        }
    }

    fn serve(listener: TcpListener, origin: SocketAddr, ca: &Pki, names: &[&str]) -> TlsOrigin {
        let leaf = ca.ca.issue(names).expect("issue");
        let certs = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("cert pem");
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key pem");
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        // Offers h2 first: a client that asks for http/1.1 only gets it.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let addr = listener.local_addr().expect("addr");
        let recorded: Arc<Mutex<Vec<Handshake>>> = Arc::default();
        let shutdown = Shutdown::new();
        let handshakes = Arc::clone(&recorded);
        let stop = shutdown.wait();
        let task = tokio::spawn(async move {
            tokio::pin!(stop);
            // Aborted with the accept loop, so `stop` closes every connection.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stop => return,
                    accepted = listener.accept() => {
                        let Ok((tcp, _)) = accepted else { continue };
                        conns.spawn(relay(tcp, acceptor.clone(), origin, Arc::clone(&handshakes)));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        TlsOrigin {
            addr,
            handshakes: recorded,
            shutdown,
            task: Some(task),
        }
    }
}

impl Drop for TlsOrigin {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

/// Terminates TLS on `tcp` and copies the plaintext to and from `origin`.
/// A failed handshake (the client refused the certificate) just ends.
async fn relay(
    tcp: TcpStream,
    acceptor: TlsAcceptor,
    origin: SocketAddr,
    handshakes: Arc<Mutex<Vec<Handshake>>>,
) {
    let Ok(Ok(mut tls)) = tokio::time::timeout(HANDSHAKE, acceptor.accept(tcp)).await else {
        return;
    };
    let (_, session) = tls.get_ref();
    let seen = Handshake {
        sni: session.server_name().map(str::to_owned),
        alpn: session
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        resumed: session.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
    };
    handshakes.lock().expect("lock").push(seen);
    let Ok(mut plain) = TcpStream::connect(origin).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
}
