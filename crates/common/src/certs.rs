//! A local certificate authority: what `meridian cluster up` runs its HTTPS
//! edges with and what the TLS tests trust. Keys are ECDSA P-256, the curve
//! browsers and curl negotiate fastest, and every certificate is signed by
//! one CA whose certificate a client is given (`curl --cacert`).
//!
//! rcgen (with the `ring` backend the TLS stack uses too) rather than
//! shelling out to `openssl`: nothing to install, and the same code runs in
//! CI and on a laptop.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// Why a certificate could not be made or written.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A CA made at start, in memory; [`LocalCa::issue`] signs leaf
/// certificates with it.
pub struct LocalCa {
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Where [`Issued::write`] put the two files.
#[derive(Debug, Clone)]
pub struct IssuedFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl LocalCa {
    /// A new CA named `name` (its subject's common name).
    pub fn generate(name: &str) -> Result<LocalCa, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(LocalCa {
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate (PEM), what clients trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the CA certificate to `path`.
    pub fn write_cert(&self, path: &Path) -> Result<(), CertError> {
        write(path, &self.cert_pem)
    }

    /// A server certificate for `names` (DNS names or IP addresses, the
    /// first also its common name), signed by this CA.
    pub fn issue(&self, names: &[&str]) -> Result<Issued, CertError> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.use_authority_key_identifier_extension = true;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

impl Issued {
    /// Writes `STEM.crt` and `STEM.key` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> Result<IssuedFiles, CertError> {
        let files = IssuedFiles {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        write(&files.cert, &self.cert_pem)?;
        write(&files.key, &self.key_pem)?;
        Ok(files)
    }
}

fn write(path: &Path, text: &str) -> Result<(), CertError> {
    std::fs::write(path, text).map_err(|source| CertError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_and_its_key_are_written_as_pem() {
        let ca = LocalCa::generate("Meridian test CA").expect("ca");
        assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        let leaf = ca.issue(&["edge.test", "127.0.0.1"]).expect("leaf");
        assert!(leaf.cert_pem.contains("BEGIN CERTIFICATE"));
        assert!(leaf.key_pem.contains("PRIVATE KEY"));
        assert_ne!(leaf.cert_pem, ca.cert_pem());
        let dir = std::env::temp_dir().join(format!("meridian-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let files = leaf.write(&dir, "edge").expect("written");
        assert_eq!(
            std::fs::read_to_string(&files.cert).expect("read"),
            leaf.cert_pem
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
