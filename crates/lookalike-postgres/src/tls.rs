//! TLS to the database, with libpq's `sslmode` meanings: `disable` never encrypts;
//! `prefer` (the default) encrypts when the server offers it and `require` insists, both
//! without checking who answers; `verify-ca` checks the server's certificate chain
//! against `sslrootcert`, and `verify-full` also that it names the host connected to.
//! tokio-postgres parses the first three only, so the verifying modes and `sslrootcert`
//! are taken out of the URL here and become the rustls connector's certificate check.
//! As in libpq, `sslrootcert` defaults to `~/.postgresql/root.crt`, `system` means the
//! system's trusted roots, and `require` with a `sslrootcert` given checks the chain.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// What is checked of the server's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Nothing: encryption only (`disable`, `prefer`, `require`).
    Nothing,
    /// The chain up to a trusted root (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// The TLS settings of a URL, and the URL left for tokio-postgres.
#[derive(Debug, PartialEq, Eq)]
pub struct Split {
    pub url: String,
    pub verify: Verify,
    pub root_cert: Option<String>,
}

/// Takes `sslmode=verify-*` and `sslrootcert` out of a libpq URL
/// (`postgres://...?sslmode=verify-full&sslrootcert=ca.pem`) or key=value string.
pub fn split(url: &str) -> Split {
    let (mut mode, mut root_cert) = (None, None);
    let mut take = |key: &str, value: &str| match key {
        "sslmode" if value.starts_with("verify-") => {
            mode = Some(value.to_string());
            Some("sslmode=require".to_string())
        }
        "sslrootcert" => {
            root_cert = Some(value.to_string());
            None
        }
        _ => Some(format!("{key}={value}")),
    };
    let url_form = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let rest = if url_form {
        match url.split_once('?') {
            Some((base, query)) => {
                let kept: Vec<String> = query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .filter_map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        take(k, &percent_decode(v))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_string(),
        }
    } else {
        url.split_whitespace()
            .filter_map(|p| match p.split_once('=') {
                Some((k, v)) => take(k, v.trim_matches('\'')),
                None => Some(p.to_string()),
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let verify = match mode.as_deref() {
        Some("verify-full") => Verify::Full,
        Some(_) => Verify::Chain,
        None if root_cert.is_some() => Verify::Chain,
        None => Verify::Nothing,
    };
    Split { url: rest, verify, root_cert }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The rustls connector for `verify`, with the roots of `root_cert` when it checks.
/// A `sslmode` of `disable` still makes no TLS connection: tokio-postgres decides that.
pub fn connector(verify: Verify, root_cert: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain: Option<Arc<dyn ServerCertVerifier>> = match verify {
        Verify::Nothing => None,
        _ if root_cert == Some("system") => Some(Arc::new(
            rustls_platform_verifier::Verifier::new(provider.clone())
                .map_err(|e| format!("cannot read the system's trusted roots: {e}"))?,
        )),
        _ => {
            let path =
                root_cert.map(PathBuf::from).or_else(|| dirs::home_dir().map(|h| h.join(".postgresql/root.crt")));
            let path = path.ok_or("no sslrootcert given and no home folder for ~/.postgresql/root.crt")?;
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("sslrootcert {}: cannot read certificates ({e})", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("sslrootcert {}: no certificate in it", path.display()));
            }
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?,
            )
        }
    };
    let verifier = Checks { chain, names: verify == Verify::Full, provider: provider.clone() };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// What `sslmode` asks of the server's certificate. The handshake's signatures are
/// always checked (the session is encrypted to whoever holds the certificate's key);
/// the certificate's chain only with `chain`, and the name it is for only with `names`.
#[derive(Debug)]
struct Checks {
    chain: Option<Arc<dyn ServerCertVerifier>>,
    names: bool,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Checks {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.names => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_verifying_modes_and_the_root_certificate_leave_the_url() {
        let s = split("postgres://u:p@h:5432/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x");
        assert_eq!(s.url, "postgres://u:p@h:5432/db?sslmode=require&application_name=x");
        assert_eq!((s.verify, s.root_cert.as_deref()), (Verify::Full, Some("/etc/ca.pem")));
        let s = split("host=h user=u sslmode=verify-ca sslrootcert='/ca.pem' dbname=d");
        assert_eq!(s.url, "host=h user=u sslmode=require dbname=d");
        assert_eq!((s.verify, s.root_cert.as_deref()), (Verify::Chain, Some("/ca.pem")));
        // libpq: require with a root certificate checks the chain.
        let s = split("postgres://h/db?sslmode=require&sslrootcert=ca.pem");
        assert_eq!((s.url.as_str(), s.verify), ("postgres://h/db?sslmode=require", Verify::Chain));
        for plain in ["postgres://h/db", "postgres://h/db?sslmode=disable", "host=h sslmode=prefer"] {
            let s = split(plain);
            assert_eq!((s.url.as_str(), s.verify, s.root_cert), (plain, Verify::Nothing, None));
        }
    }

    #[test]
    fn a_root_certificate_that_cannot_be_read_is_named() {
        let err = connector(Verify::Full, Some("/nonexistent/ca.pem")).err().unwrap();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = connector(Verify::Chain, empty.to_str()).err().unwrap();
        assert!(err.contains("no certificate"), "{err}");
        assert!(connector(Verify::Nothing, None).is_ok());
    }
}
