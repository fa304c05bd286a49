//! A load generator for new TLS connections, used by `scripts/bench.sh`
//! (scenarios `tls_new_full` and `tls_new_resumed`): each connection does a
//! TLS 1.3 handshake, one `GET` with `Connection: close`, reads the answer
//! and is dropped; `--conns` connections run at once for `--duration`
//! seconds on one thread.
//!
//! `--mode full` turns client-side resumption off, so every connection is a
//! full handshake; `--mode resumed` keeps the server's session tickets and
//! offers one on every later connection (the report counts how many the
//! server actually resumed).
//!
//! It is a load generator, not a client to copy: it does not verify the
//! server's certificate or its handshake signature, so its own CPU goes to
//! driving the server, which still does its whole side of every handshake
//! (signing, key exchange). On a two-core machine with the server on one
//! core and this on the other, a verifying client would be the bottleneck
//! and every server would look the same.
//!
//! Prints one JSON line in the shape `bench_report.py` reads for wrk:
//! `{"requests":..,"duration_us":..,"p50_us":..,"p99_us":..,...}`.
//!
//! ```text
//! cargo run --release -p meridian-proxy --example tls_load -- \
//!     --addr 127.0.0.1:8443 --path /obj/1k.bin --mode full --conns 16 --duration 10
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Accepts any certificate and signature (see the module docs for why).
#[derive(Debug)]
struct NoVerify(Vec<SignatureScheme>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.clone()
    }
}

struct Args {
    addr: SocketAddr,
    sni: String,
    path: String,
    resumed: bool,
    conns: usize,
    duration: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8443)),
        sni: "localhost".into(),
        path: "/".into(),
        resumed: false,
        conns: 16,
        duration: Duration::from_secs(10),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--addr" => args.addr = value.parse().map_err(|e| bad(&e))?,
            "--sni" => args.sni = value,
            "--path" => args.path = value,
            "--mode" => {
                args.resumed = match value.as_str() {
                    "full" => false,
                    "resumed" => true,
                    _ => return Err(bad(&"is full or resumed")),
                }
            }
            "--conns" => args.conns = value.parse().map_err(|e| bad(&e))?,
            "--duration" => {
                let s: f64 = value.parse().map_err(|e| bad(&e))?;
                if !(s > 0.0 && s < 3600.0) {
                    return Err(bad(&"is between 0 and 3600 seconds"));
                }
                args.duration = Duration::from_secs_f64(s);
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.conns == 0 || args.conns > 4096 {
        return Err("--conns is between 1 and 4096".into());
    }
    Ok(args)
}

#[derive(Default)]
struct Counts {
    ok: AtomicU64,
    resumed: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    non2xx: AtomicU64,
}

/// One connection: connect, handshake, GET, read the whole answer. Returns
/// whether the server resumed the session and the bytes read.
async fn one(
    connector: &TlsConnector,
    args: &Args,
    name: &ServerName<'static>,
    request: &[u8],
) -> Result<(bool, u16, u64), String> {
    let tcp = TcpStream::connect(args.addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name.clone(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let resumed = tls.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
    tls.write_all(request)
        .await
        .map_err(|e| format!("write: {e}"))?;
    // Read the head, then the body to its Content-Length (or to the end of
    // the stream when there is none).
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 << 10];
    let mut head_end: Option<usize> = None;
    let mut total: Option<usize> = None;
    loop {
        if let Some(t) = total
            && buf.len() >= t
        {
            break;
        }
        let n = match tls.read(&mut chunk).await {
            Ok(n) => n,
            // A server that closes without close_notify ends the stream too.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(format!("read: {e}")),
        };
        if n == 0 {
            if total.is_some() || head_end.is_none() {
                return Err("answer cut short".into());
            }
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 64 << 20 {
            return Err("answer over 64 MiB".into());
        }
        if head_end.is_none()
            && let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n")
        {
            head_end = Some(end);
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            total = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .map(|len| end + 4 + len);
        }
    }
    let status = buf
        .get(9..12)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "no status line".to_owned())?;
    Ok((resumed, status, buf.len() as u64))
}

/// One simulated client's TLS settings. Each connection loop has its own,
/// so in `resumed` mode it resumes from the tickets its own last
/// connection got, as a returning browser does (a shared store would run
/// dry: rustls keeps at most 8 tickets per server, fewer than the
/// connections in flight).
fn connector(resumed: bool) -> Result<TlsConnector, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(schemes)))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.resumption = if resumed {
        rustls::client::Resumption::in_memory_sessions(16)
    } else {
        rustls::client::Resumption::disabled()
    };
    Ok(TlsConnector::from(Arc::new(config)))
}

fn main() -> Result<(), String> {
    let args = Arc::new(parse_args()?);
    let name = ServerName::try_from(args.sni.clone()).map_err(|e| format!("--sni: {e}"))?;
    let request = Arc::new(
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            args.path, args.sni
        )
        .into_bytes(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let connectors = (0..args.conns)
        .map(|_| connector(args.resumed))
        .collect::<Result<Vec<_>, _>>()?;
    let (lat, elapsed, first_error) = rt.block_on(async {
        let start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for connector in connectors {
            let (args, name, request, counts, stop) = (
                Arc::clone(&args),
                name.clone(),
                Arc::clone(&request),
                Arc::clone(&counts),
                Arc::clone(&stop),
            );
            tasks.spawn(async move {
                let mut lat = Vec::new();
                let mut first_error = None;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    match one(&connector, &args, &name, &request).await {
                        Ok((resumed, status, bytes)) => {
                            if (200..300).contains(&status) {
                                counts.ok.fetch_add(1, Ordering::Relaxed);
                            } else {
                                counts.non2xx.fetch_add(1, Ordering::Relaxed);
                            }
                            if resumed {
                                counts.resumed.fetch_add(1, Ordering::Relaxed);
                            }
                            counts.bytes.fetch_add(bytes, Ordering::Relaxed);
                            lat.push(t.elapsed().as_micros() as u64);
                        }
                        Err(e) => {
                            counts.errors.fetch_add(1, Ordering::Relaxed);
                            first_error.get_or_insert(e);
                            // Do not spin on a server that refuses.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                }
                (lat, first_error)
            });
        }
        tokio::time::sleep(args.duration).await;
        stop.store(true, Ordering::Relaxed);
        let elapsed = start.elapsed();
        let mut lat = Vec::new();
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            if let Ok((l, e)) = done {
                lat.extend(l);
                if first_error.is_none() {
                    first_error = e;
                }
            }
        }
        (lat, elapsed, first_error)
    });
    let mut lat = lat;
    lat.sort_unstable();
    let pct = |p: usize| {
        lat.get((lat.len() * p / 100).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().sum::<u64>() as f64 / lat.len() as f64
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": counts.ok.load(Ordering::Relaxed),
            "duration_us": elapsed.as_micros() as u64,
            "bytes": counts.bytes.load(Ordering::Relaxed),
            "socket_errors": counts.errors.load(Ordering::Relaxed),
            "non2xx": counts.non2xx.load(Ordering::Relaxed),
            "p50_us": pct(50),
            "p99_us": pct(99),
            "mean_us": (mean * 10.0).round() / 10.0,
            "resumed": counts.resumed.load(Ordering::Relaxed),
            "mode": if args.resumed { "resumed" } else { "full" },
            // Each connection loop's first handshake is full (it has no
            // ticket yet): at most this many of `requests` can't resume.
            "conns": args.conns,
            "first_error": first_error,
            "tool": "tls_load",
        })
    );
    Ok(())
}
