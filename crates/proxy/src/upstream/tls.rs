//! TLS to `https://` upstreams: one rustls [`ClientConfig`] per distinct
//! trust setting (a CA file, the system roots, or no verification), built
//! once at start, and for each upstream the name it is checked against.
//!
//! The name sent in SNI and checked in the certificate is the upstream's
//! configured host (`;sni=` overrides it), never the client's `Host`, as
//! nginx's `proxy_ssl_name` and Fastly's backend SNI hostname default; an
//! IP literal is checked against the certificate's IP addresses and sends
//! no SNI, as rustls does. ALPN offers `http/1.1` only: the upstream
//! protocol stays HTTP/1.1. Each config keeps rustls's default client
//! session cache, so a reconnect resumes instead of a full handshake.
//!
//! The data path and the active health checks share these configs, so a
//! check can never trust what traffic does not, or the other way round.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::Uri;
use meridian_balance::TlsOptions;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

/// How one `https://` upstream is reached.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub(crate) config: Arc<ClientConfig>,
    pub(crate) name: ServerName<'static>,
}

/// The TLS settings of every `https://` upstream, by `host:port`.
#[derive(Clone, Default)]
pub struct UpstreamTls {
    by_authority: HashMap<String, Endpoint>,
    /// Upstreams whose certificates are not checked, for the start warning.
    unverified: Vec<String>,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<_> = self.by_authority.keys().collect();
        names.sort();
        f.debug_struct("UpstreamTls")
            .field("upstreams", &names)
            .field("unverified", &self.unverified)
            .finish()
    }
}

/// Where an `https://` upstream's trust comes from: the key of the
/// configs shared between upstreams.
#[derive(Clone, PartialEq, Eq, Hash)]
enum Trust {
    SystemRoots,
    CaFile(PathBuf),
    Unverified,
}

/// One upstream as the config names it.
pub struct TlsUpstream<'a> {
    pub uri: &'a Uri,
    pub options: &'a TlsOptions,
}

/// Why the TLS settings could not be built; `key` is the config key.
#[derive(Debug)]
pub struct TlsConfigError {
    pub key: &'static str,
    pub reason: String,
}

impl UpstreamTls {
    /// Builds the configs for `upstreams` (the `https://` ones). `ca` is
    /// the default CA file (`upstream-ca`) for those without `;ca=`;
    /// relative paths are taken from `base` (the config file's directory).
    /// The system roots are loaded only if some upstream needs them.
    pub fn build(
        upstreams: &[TlsUpstream<'_>],
        ca: Option<&Path>,
        base: &Path,
    ) -> Result<UpstreamTls, TlsConfigError> {
        let mut configs: HashMap<Trust, Arc<ClientConfig>> = HashMap::new();
        let mut tls = UpstreamTls::default();
        for u in upstreams {
            let shown = u.uri.to_string();
            let bad = |reason: String| TlsConfigError {
                key: "upstream",
                reason: format!("`{}`: {reason}", shown.trim_end_matches('/')),
            };
            if u.options.insecure_skip_verify && u.options.ca.is_some() {
                return Err(bad(
                    "`ca` and `insecure-skip-verify` contradict each other: choose one".into(),
                ));
            }
            let (trust, key) = if u.options.insecure_skip_verify {
                (Trust::Unverified, "upstream")
            } else if let Some(file) = &u.options.ca {
                (Trust::CaFile(base.join(file)), "upstream")
            } else if let Some(file) = ca {
                (Trust::CaFile(base.join(file)), "upstream-ca")
            } else {
                (Trust::SystemRoots, "upstream")
            };
            let config = match configs.get(&trust) {
                Some(c) => Arc::clone(c),
                None => {
                    let c = Arc::new(client_config(&trust).map_err(|reason| TlsConfigError {
                        key,
                        reason: if key == "upstream" {
                            bad(reason).reason
                        } else {
                            reason
                        },
                    })?);
                    configs.insert(trust.clone(), Arc::clone(&c));
                    c
                }
            };
            let host = u.uri.host().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let name = u.options.sni.as_deref().unwrap_or(host);
            let name = ServerName::try_from(name.to_owned())
                .map_err(|e| bad(format!("`{name}` is not a TLS server name: {e}")))?;
            let authority = authority_key(u.uri);
            let endpoint = Endpoint { config, name };
            if let Some(earlier) = tls.by_authority.get(&authority)
                && (!Arc::ptr_eq(&earlier.config, &endpoint.config)
                    || earlier.name != endpoint.name)
            {
                return Err(bad(format!(
                    "{authority} is listed again with other TLS options"
                )));
            }
            if trust == Trust::Unverified {
                tls.unverified.push(shown.trim_end_matches('/').to_owned());
            }
            tls.by_authority.insert(authority, endpoint);
        }
        Ok(tls)
    }

    /// The settings for an `https://` request URI's upstream.
    pub(crate) fn endpoint(&self, uri: &Uri) -> Option<&Endpoint> {
        self.by_authority.get(&authority_key(uri))
    }

    /// The upstreams whose certificates are not checked.
    pub fn unverified(&self) -> &[String] {
        &self.unverified
    }

    /// Logs a warning for each upstream whose certificate is not checked.
    pub fn warn_unverified(&self) {
        for u in &self.unverified {
            tracing::warn!(
                upstream = %u,
                "TLS certificate verification is OFF for this upstream (insecure-skip-verify): \
                 anyone on the path can impersonate it"
            );
        }
    }
}

/// `host:port`, lowercase, the port filled in: how the connector finds an
/// upstream's settings from a request URI.
fn authority_key(uri: &Uri) -> String {
    let host = uri.host().unwrap_or_default().to_ascii_lowercase();
    let port = uri.port_u16().unwrap_or(443);
    format!("{host}:{port}")
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn client_config(trust: &Trust) -> Result<ClientConfig, String> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let mut config = match trust {
        Trust::Unverified => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        Trust::CaFile(path) => builder
            .with_root_certificates(ca_file(path)?)
            .with_no_client_auth(),
        Trust::SystemRoots => builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The CA certificates in a PEM file; an unreadable file, one without a
/// certificate or one rustls cannot use is an error naming the file.
fn ca_file(path: &Path) -> Result<RootCertStore, String> {
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("CA file {shown}: {}", pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("CA file {shown}: {}", pem_error(&e)))?;
    if certs.is_empty() {
        return Err(format!("CA file {shown}: no PEM certificate in it"));
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("CA file {shown}: a certificate is not usable as a CA: {e}"))?;
    }
    Ok(roots)
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not PEM ({other:?})"),
    }
}

/// The system's trusted roots, loaded once per start.
fn system_roots() -> Result<RootCertStore, String> {
    let loaded = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(loaded.certs);
    if added == 0 {
        let why = loaded
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "no system root certificates could be loaded{why}; give the upstream \
             a CA with `;ca=PATH` or set `upstream-ca`"
        ));
    }
    Ok(roots)
}

/// `;insecure-skip-verify`: any certificate for any name is accepted. The
/// handshake signatures are still checked, so the connection is at least
/// with the holder of the certificate's key.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(s: &str) -> TlsOptions {
        let spec: meridian_balance::BackendSpec = s.parse().expect(s);
        spec.tls().cloned().expect("https")
    }

    fn build(specs: &[&str], ca: Option<&Path>) -> Result<UpstreamTls, TlsConfigError> {
        let parsed: Vec<(Uri, TlsOptions)> = specs
            .iter()
            .map(|s| {
                let url = s.split(';').next().unwrap_or_default();
                (url.parse().expect(url), options(s))
            })
            .collect();
        let ups: Vec<_> = parsed
            .iter()
            .map(|(uri, options)| TlsUpstream { uri, options })
            .collect();
        UpstreamTls::build(&ups, ca, Path::new("."))
    }

    #[test]
    fn upstreams_with_one_trust_setting_share_one_config() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = meridian_common::certs::LocalCa::generate("t").expect("ca");
        let file = dir.path().join("ca.pem");
        ca.write_cert(&file).expect("write");
        let a = format!("https://a.example:443;ca={}", file.display());
        let b = format!("https://B.example:8443;ca={}", file.display());
        let tls = build(
            &[&a, &b, "https://127.0.0.1:9443;insecure-skip-verify"],
            None,
        )
        .expect("valid");
        let ea = tls.endpoint(&"https://a.example/x".parse().expect("uri"));
        let eb = tls.endpoint(&"https://b.example:8443/".parse().expect("uri"));
        let (ea, eb) = (ea.expect("a"), eb.expect("b"));
        assert!(Arc::ptr_eq(&ea.config, &eb.config));
        assert_eq!(ea.name, ServerName::try_from("a.example").expect("name"));
        assert_eq!(ea.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(tls.unverified(), ["https://127.0.0.1:9443"]);
        let ip = tls.endpoint(&"https://127.0.0.1:9443/".parse().expect("uri"));
        assert!(matches!(
            ip.map(|e| &e.name),
            Some(ServerName::IpAddress(_))
        ));
    }

    #[test]
    fn sni_names_the_certificate_checked() {
        let tls = build(
            &["https://127.0.0.1:9443;insecure-skip-verify;sni=origin.example"],
            None,
        )
        .expect("valid");
        let e = tls.endpoint(&"https://127.0.0.1:9443/".parse().expect("uri"));
        assert_eq!(
            e.map(|e| e.name.clone()),
            Some(ServerName::try_from("origin.example").expect("name"))
        );
    }

    #[test]
    fn a_bad_ca_file_names_the_file_and_the_reason() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").expect("write");
        for (file, why) in [(&missing, "No such file"), (&junk, "no PEM certificate")] {
            let spec = format!("https://a.example:443;ca={}", file.display());
            let e = build(&[&spec], None).expect_err("refused");
            assert_eq!(e.key, "upstream");
            assert!(
                e.reason.contains(&file.display().to_string()) && e.reason.contains(why),
                "{}",
                e.reason
            );
            let e = build(&["https://a.example:443"], Some(file)).expect_err("refused");
            assert_eq!(e.key, "upstream-ca", "{}", e.reason);
        }
    }

    #[test]
    fn a_ca_and_no_verification_together_are_refused() {
        let e = build(
            &["https://a.example:443;ca=ca.pem;insecure-skip-verify"],
            None,
        )
        .expect_err("refused");
        assert!(e.reason.contains("choose one"), "{}", e.reason);
    }

    #[test]
    fn one_address_cannot_have_two_trust_settings() {
        let e = build(
            &[
                "https://a.example:443/one;insecure-skip-verify",
                "https://a.example:443/two;insecure-skip-verify;sni=b.example",
            ],
            None,
        )
        .expect_err("refused");
        assert!(e.reason.contains("other TLS options"), "{}", e.reason);
    }
}
