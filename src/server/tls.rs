//! TLS: a certificate resolver whose key pair is swapped atomically when the files change,
//! so rotation needs no restart and drops no connection (each handshake picks the current pair).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}: no PEM certificate found")]
    NoCertificate(String),
    #[error("{0}: no PEM private key found")]
    NoKey(String),
    #[error("{what}: {source}")]
    Invalid { what: String, source: rustls::Error },
    #[error("client CA {0}: {1}")]
    ClientCa(String, String),
    #[error(transparent)]
    DevCertificate(#[from] crate::certs::CertError),
}

/// Where the serving certificate comes from.
#[derive(Debug, Clone)]
pub enum TlsFiles {
    /// PEM certificate chain and private key files, reloaded when they change.
    Files { cert: PathBuf, key: PathBuf },
    /// A development CA and certificate for localhost, generated into (or reused from) a
    /// directory.
    Dev { dir: PathBuf },
}

/// The certificate and key files in use, and the CA to trust them for a dev certificate.
#[derive(Debug, Clone)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub dev_ca: Option<PathBuf>,
}

impl TlsFiles {
    /// The files to read, generating the development certificate when needed.
    pub fn resolve(&self) -> Result<CertFiles, TlsError> {
        match self {
            TlsFiles::Files { cert, key } => Ok(CertFiles {
                cert: cert.clone(),
                key: key.clone(),
                dev_ca: None,
            }),
            TlsFiles::Dev { dir } => dev_certificate(dir),
        }
    }
}

fn dev_certificate(dir: &Path) -> Result<CertFiles, TlsError> {
    let files = CertFiles {
        cert: dir.join("tls.crt"),
        key: dir.join("tls.key"),
        dev_ca: Some(dir.join("ca.crt")),
    };
    let reusable = match (std::fs::read(&files.cert), std::fs::read(&files.key)) {
        (Ok(c), Ok(k)) => {
            certified_key(&c, &k, "tls.crt", "tls.key").is_ok() && dir.join("ca.crt").exists()
        }
        _ => false,
    };
    if reusable {
        tracing::info!(dir = %dir.display(), "reusing the development certificate");
    } else {
        let bundle = crate::certs::generate(&crate::certs::dev_sans(), 365)?;
        crate::certs::write_bundle(dir, &bundle)?;
        tracing::info!(dir = %dir.display(), "generated a development CA and certificate for localhost, 127.0.0.1 and ::1");
    }
    Ok(files)
}

/// A key pair read from its files, with the file contents (to notice changes).
pub struct LoadedKey {
    pub key: CertifiedKey,
    pub pems: Vec<Vec<u8>>,
}

impl LoadedKey {
    pub fn read(files: &CertFiles) -> Result<Self, TlsError> {
        let cert_pem = read(&files.cert)?;
        let key_pem = read(&files.key)?;
        let key = certified_key(
            &cert_pem,
            &key_pem,
            &files.cert.display().to_string(),
            &files.key.display().to_string(),
        )?;
        Ok(LoadedKey {
            key,
            pems: vec![cert_pem, key_pem],
        })
    }
}

/// Certificate rotation: swaps the key pair when both files parse and match; otherwise the
/// current pair stays and the rejection is logged and counted.
pub async fn watch(
    files: CertFiles,
    interval: Duration,
    initial: Vec<Vec<u8>>,
    resolver: Arc<ReloadingResolver>,
    metrics: Arc<super::metrics::Metrics>,
) {
    let cert_name = files.cert.display().to_string();
    let key_name = files.key.display().to_string();
    crate::source::file::watch(
        vec![files.cert.clone(), files.key.clone()],
        interval,
        initial,
        move |contents| match certified_key(&contents[0], &contents[1], &cert_name, &key_name) {
            Ok(k) => {
                resolver.replace(k);
                metrics.cert_reload("success");
                tracing::info!(cert = %cert_name, "TLS certificate reloaded");
            }
            Err(e) => {
                metrics.cert_reload("invalid");
                tracing::warn!(error = %e, "new TLS certificate rejected; keeping the current one");
            }
        },
    )
    .await
}

/// The serving key pair, replaceable while serving.
#[derive(Debug)]
pub struct ReloadingResolver {
    current: ArcSwap<CertifiedKey>,
}

impl ReloadingResolver {
    pub fn new(key: CertifiedKey) -> Self {
        ReloadingResolver {
            current: ArcSwap::from_pointee(key),
        }
    }
    pub fn replace(&self, key: CertifiedKey) {
        self.current.store(Arc::new(key));
    }
}

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

pub fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Parses a PEM certificate chain and private key and checks that they match.
pub fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_name: &str,
    key_name: &str,
) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(cert_name.to_owned()));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key_pem).map_err(|_| TlsError::NoKey(key_name.to_owned()))?;
    CertifiedKey::from_der(certs, key, &provider()).map_err(|source| TlsError::Invalid {
        what: format!("{cert_name} / {key_name}"),
        source,
    })
}

/// A rustls server config: HTTP/2 and HTTP/1.1 by ALPN, optional client certificate checks.
pub fn server_config(
    resolver: Arc<ReloadingResolver>,
    client_ca: Option<&Path>,
) -> Result<ServerConfig, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsError::Invalid {
            what: "protocol versions".into(),
            source,
        })?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let pem = read(path)?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok) {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::ClientCa(path.display().to_string(), e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(TlsError::NoCertificate(path.display().to_string()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::ClientCa(path.display().to_string(), e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
