//! TLS material: the rustls client config of an `https` backend and the
//! certificate of `[server.tls]`, swapped whole on reload.
//!
//! Every file is read and parsed here, once per (re)load, never on the
//! request path. A file that cannot be read or parsed is an error the caller
//! reports (start-up fails, a reload keeps the old config); nothing here
//! panics on file contents.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_rustls::TlsAcceptor;

use crate::config::{BackendConfig, Protocol, TlsConfig};

/// ALPN protocol ids.
const ALPN_H2: &[u8] = b"h2";
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// The one crypto provider every config here uses: *ring*.
static PROVIDER: LazyLock<Arc<CryptoProvider>> =
    LazyLock::new(|| Arc::new(rustls::crypto::ring::default_provider()));

/// Why TLS material could not be loaded.
#[derive(Debug)]
pub enum TlsError {
    /// The file could not be read.
    Read {
        what: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    /// The file is not PEM, or holds nothing of the kind wanted.
    Pem {
        what: &'static str,
        path: PathBuf,
        error: String,
    },
    /// rustls refused the material: unsupported key type, key and certificate
    /// that do not match, a root it cannot use.
    Rejected {
        what: &'static str,
        error: rustls::Error,
    },
    /// `tls_server_name` is neither a DNS name nor an IP address.
    ServerName(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { what, path, error } => {
                write!(f, "cannot read {what} {}: {error}", path.display())
            }
            TlsError::Pem { what, path, error } => {
                write!(f, "{what} {} is not usable PEM: {error}", path.display())
            }
            TlsError::Rejected { what, error } => write!(f, "{what} refused: {error}"),
            TlsError::ServerName(name) => write!(
                f,
                "tls_server_name {name:?} is neither a DNS name nor an IP address"
            ),
        }
    }
}

impl std::error::Error for TlsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsError::Read { error, .. } => Some(error),
            TlsError::Rejected { error, .. } => Some(error),
            TlsError::Pem { .. } | TlsError::ServerName(_) => None,
        }
    }
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|error| TlsError::Read {
        what,
        path: path.to_owned(),
        error,
    })
}

/// Every certificate in a PEM file; at least one.
fn parse_certificates(
    what: &'static str,
    path: &Path,
    pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let invalid = |error: String| TlsError::Pem {
        what,
        path: path.to_owned(),
        error,
    };
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(e.to_string()))?;
    if certificates.is_empty() {
        return Err(invalid("no CERTIFICATE section".to_owned()));
    }
    Ok(certificates)
}

// === Backends (client side) ===

/// The client config for an `https` backend: roots (webpki's, plus
/// `ca_file`'s, whose PEM is passed in as `ca_pem`), or no verification at all
/// with `tls_insecure_skip_verify`; ALPN by `protocol`.
pub(crate) fn client_config(
    backend: &BackendConfig,
    ca_pem: Option<&[u8]>,
) -> Result<rustls::ClientConfig, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(PROVIDER.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Rejected {
            what: "protocol versions",
            error,
        })?;
    let mut config = if backend.tls_insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(PROVIDER.clone())))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let (Some(path), Some(pem)) = (&backend.ca_file, ca_pem) {
            for certificate in parse_certificates("ca_file", path, pem)? {
                roots.add(certificate).map_err(|error| TlsError::Rejected {
                    what: "ca_file",
                    error,
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = match backend.protocol {
        Protocol::Http1 => vec![ALPN_HTTP11.to_vec()],
        Protocol::Http2 => vec![ALPN_H2.to_vec()],
        Protocol::Auto => vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()],
    };
    Ok(config)
}

/// `tls_server_name` as a rustls server name (brackets around an IPv6
/// address allowed); `None` when not set.
pub(crate) fn server_name(
    backend: &BackendConfig,
) -> Result<Option<ServerName<'static>>, TlsError> {
    let Some(name) = &backend.tls_server_name else {
        return Ok(None);
    };
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_owned())
        .map(Some)
        .map_err(|_| TlsError::ServerName(name.clone()))
}

/// `tls_insecure_skip_verify`: any certificate for any name is accepted.
/// Handshake signatures are still checked, so the peer holds the key of the
/// certificate it shows.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

// === Listener (server side) ===

/// Reads and checks `[server.tls]`: the chain in `cert_file` (leaf first), the
/// key in `key_file`, and that they belong together.
pub(crate) fn load_certified_key(tls: &TlsConfig) -> Result<CertifiedKey, TlsError> {
    let chain_pem = read_file("cert_file", &tls.cert_file)?;
    let chain = parse_certificates("cert_file", &tls.cert_file, &chain_pem)?;
    let key_pem = read_file("key_file", &tls.key_file)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
        what: "key_file",
        path: tls.key_file.clone(),
        error: e.to_string(),
    })?;
    CertifiedKey::from_der(chain, key, &PROVIDER).map_err(|error| TlsError::Rejected {
        what: "cert_file/key_file pair",
        error,
    })
}

/// The listener's TLS side: an acceptor (ALPN `h2`, `http/1.1`) whose
/// certificate can be replaced while it serves. A handshake uses the
/// certificate current when it starts.
#[derive(Clone)]
pub struct ServerTls {
    current: Arc<CurrentCertificate>,
    acceptor: TlsAcceptor,
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads `[server.tls]`; an error here is a start-up error.
    pub fn new(tls: &TlsConfig) -> Result<ServerTls, TlsError> {
        let current = Arc::new(CurrentCertificate(ArcSwap::from_pointee(
            load_certified_key(tls)?,
        )));
        let mut config = rustls::ServerConfig::builder_with_provider(PROVIDER.clone())
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError::Rejected {
                what: "protocol versions",
                error,
            })?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![ALPN_H2.to_vec(), ALPN_HTTP11.to_vec()];
        Ok(ServerTls {
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// Makes `key` the certificate of every handshake from now on.
    pub fn store(&self, key: CertifiedKey) {
        self.current.0.store(Arc::new(key));
    }

    /// The certificate new handshakes get.
    pub fn certificate(&self) -> Arc<CertifiedKey> {
        self.current.0.load_full()
    }
}

/// rustls asks this for the certificate of each handshake.
#[derive(Debug)]
struct CurrentCertificate(ArcSwap<CertifiedKey>);

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_pem_is_an_error_not_a_panic() {
        let path = Path::new("ca.pem");
        assert!(parse_certificates("ca_file", path, b"not pem at all").is_err());
        let broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n";
        assert!(parse_certificates("ca_file", path, broken).is_err());
    }

    #[test]
    fn missing_files_name_the_key_and_the_path() {
        let tls = TlsConfig {
            cert_file: PathBuf::from("/nonexistent/tls.crt"),
            key_file: PathBuf::from("/nonexistent/tls.key"),
        };
        let error = load_certified_key(&tls).unwrap_err().to_string();
        assert!(error.contains("cert_file"), "{error}");
        assert!(error.contains("/nonexistent/tls.crt"), "{error}");
    }
}
