//! TLS: a certificate resolver whose key pair is swapped atomically when the files change,
//! so rotation needs no restart and drops no connection (each handshake picks the current pair).
//!
//! The leaf certificate's validity is checked whenever a pair is loaded: an expired or
//! not-yet-valid certificate is refused (at start: exit 2; at reload: the current pair stays),
//! its notAfter is exported as `volguard_certificate_not_after_seconds`, and a warning is
//! logged at load and every hour once fewer than [`EXPIRY_WARNING`] remain.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    #[error("{0}: cannot parse the certificate: {1}")]
    Parse(String, String),
    #[error(
        "{cert}: the certificate expired at {} (notAfter); renew it (a TLS client refuses it)",
        rfc3339(*not_after)
    )]
    Expired { cert: String, not_after: i64 },
    #[error(
        "{cert}: the certificate is not valid before {} (notBefore); check the clock or the issuer",
        rfc3339(*not_before)
    )]
    NotYetValid { cert: String, not_before: i64 },
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
    // Reused while it parses, matches its key and has more than the warning period left;
    // otherwise a fresh one is written (a development certificate never expires on you).
    let reusable = match (std::fs::read(&files.cert), std::fs::read(&files.key)) {
        (Ok(c), Ok(k)) => {
            certified_key(&c, &k, "tls.crt", "tls.key").is_ok()
                && leaf_validity(&c, "tls.crt").is_ok_and(|v| {
                    v.check(unix_now(), "tls.crt").is_ok()
                        && v.remaining(unix_now()) > EXPIRY_WARNING
                })
                && dir.join("ca.crt").exists()
        }
        _ => false,
    };
    if reusable {
        tracing::info!(dir = %dir.display(), "reusing the development certificate");
    } else {
        let bundle = crate::certs::generate(&crate::certs::dev_sans(), 365)?;
        crate::certs::write_bundle(dir, &bundle, true)?;
        tracing::info!(dir = %dir.display(), "generated a development CA and certificate for localhost, 127.0.0.1 and ::1");
    }
    Ok(files)
}

/// A certificate served within this much of its notAfter is logged as a warning.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);
/// How often the certificate in use is checked against the clock (warning, expiry).
const EXPIRY_CHECK: Duration = Duration::from_secs(3600);

/// A leaf certificate's validity period, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// Ok when `now` lies within the period (both ends inclusive, as RFC 5280 4.1.2.5 says).
    pub fn check(&self, now: i64, cert: &str) -> Result<(), TlsError> {
        if now > self.not_after {
            Err(TlsError::Expired {
                cert: cert.to_owned(),
                not_after: self.not_after,
            })
        } else if now < self.not_before {
            Err(TlsError::NotYetValid {
                cert: cert.to_owned(),
                not_before: self.not_before,
            })
        } else {
            Ok(())
        }
    }

    /// Time left until notAfter (zero once expired).
    pub fn remaining(&self, now: i64) -> Duration {
        Duration::from_secs(self.not_after.saturating_sub(now).max(0) as u64)
    }
}

/// The validity of the first (leaf) certificate of a PEM chain.
pub fn leaf_validity(cert_pem: &[u8], cert_name: &str) -> Result<Validity, TlsError> {
    let leaf = CertificateDer::pem_slice_iter(cert_pem)
        .find_map(Result::ok)
        .ok_or_else(|| TlsError::NoCertificate(cert_name.to_owned()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf)
        .map_err(|e| TlsError::Parse(cert_name.to_owned(), e.to_string()))?;
    let v = cert.validity();
    Ok(Validity {
        not_before: v.not_before.timestamp(),
        not_after: v.not_after.timestamp(),
    })
}

/// Seconds since the Unix epoch, from the system clock.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `2026-11-26T09:33:23Z`.
pub fn rfc3339(unix: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => format!("@{unix}"),
    }
}

/// A key pair read from its files, with the file contents (to notice changes).
pub struct LoadedKey {
    pub key: CertifiedKey,
    pub validity: Validity,
    pub pems: Vec<Vec<u8>>,
}

impl LoadedKey {
    /// Reads, parses and matches the pair, and refuses a certificate that is expired or not
    /// yet valid now (every TLS client would refuse it).
    pub fn read(files: &CertFiles) -> Result<Self, TlsError> {
        let cert_pem = read(&files.cert)?;
        let key_pem = read(&files.key)?;
        Self::parse(cert_pem, key_pem, files, unix_now())
    }

    fn parse(
        cert_pem: Vec<u8>,
        key_pem: Vec<u8>,
        files: &CertFiles,
        now: i64,
    ) -> Result<Self, TlsError> {
        let cert_name = files.cert.display().to_string();
        let key = certified_key(
            &cert_pem,
            &key_pem,
            &cert_name,
            &files.key.display().to_string(),
        )?;
        let validity = leaf_validity(&cert_pem, &cert_name)?;
        validity.check(now, &cert_name)?;
        Ok(LoadedKey {
            key,
            validity,
            pems: vec![cert_pem, key_pem],
        })
    }
}

/// Publishes the validity of the certificate now in use and warns when it is close to expiry
/// (or past it: a pair that expires while being served is never swapped out by itself).
fn observe(
    validity: &Validity,
    cert: &str,
    metrics: &super::metrics::Metrics,
    ready: &super::health::Readiness,
    now: i64,
) {
    metrics.cert_not_after.set(validity.not_after);
    ready
        .tls_expired
        .store(now > validity.not_after, Ordering::Release);
    let not_after = rfc3339(validity.not_after);
    if now > validity.not_after {
        tracing::error!(
            cert,
            not_after,
            "the TLS certificate in use has EXPIRED: every TLS client refuses it; renew it now"
        );
    } else if validity.remaining(now) < EXPIRY_WARNING {
        let days_left = validity.remaining(now).as_secs() / 86_400;
        tracing::warn!(
            cert,
            not_after,
            days_left,
            "the TLS certificate in use expires in less than 14 days; renew it"
        );
    }
}

/// Certificate rotation: polls the files every `interval` and swaps the key pair when both
/// files parse, match and the certificate is valid now; otherwise the current pair stays and
/// the rejection is logged and counted (`result` = `invalid`, `expired`, `not_yet_valid`). A
/// pair refused only because it is not valid yet is retried until it is. The pair in use is
/// checked against the clock every hour, and at once when it expires (readiness turns 503:
/// no client can talk to this replica until a new pair arrives).
pub async fn watch(
    files: CertFiles,
    interval: Duration,
    initial: Vec<Vec<u8>>,
    resolver: Arc<ReloadingResolver>,
    metrics: Arc<super::metrics::Metrics>,
    ready: Arc<super::health::Readiness>,
    mut reread: crate::source::file::Reread,
) {
    let cert_name = files.cert.display().to_string();
    let mut current = leaf_validity(&initial[0], &cert_name).ok();
    if let Some(v) = &current {
        observe(v, &cert_name, &metrics, &ready, unix_now());
    }
    let mut last = initial;
    let mut waiting_for_not_before = false;
    let mut unreadable = false;
    let mut next_check = tokio::time::Instant::now() + EXPIRY_CHECK;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        crate::source::file::next_poll(&mut tick, &mut reread).await;
        let contents = match (
            tokio::fs::read(&files.cert).await,
            tokio::fs::read(&files.key).await,
        ) {
            (Ok(c), Ok(k)) => {
                unreadable = false;
                vec![c, k]
            }
            (Err(e), _) | (_, Err(e)) => {
                if !unreadable {
                    tracing::warn!(error = %e, cert = %cert_name, "cannot read the TLS files; keeping the current certificate");
                }
                unreadable = true;
                continue;
            }
        };
        let changed = contents != last;
        if changed || waiting_for_not_before {
            let now = unix_now();
            match LoadedKey::parse(contents[0].clone(), contents[1].clone(), &files, now) {
                Ok(k) => {
                    resolver.replace(k.key);
                    metrics.cert_reload("success");
                    tracing::info!(cert = %cert_name, not_after = %rfc3339(k.validity.not_after), "TLS certificate reloaded");
                    observe(&k.validity, &cert_name, &metrics, &ready, now);
                    current = Some(k.validity);
                    waiting_for_not_before = false;
                }
                // Retried quietly on every tick until its notBefore has passed.
                Err(TlsError::NotYetValid { .. }) if !changed => {}
                Err(e) => {
                    let result = match &e {
                        TlsError::Expired { .. } => "expired",
                        TlsError::NotYetValid { .. } => "not_yet_valid",
                        _ => "invalid",
                    };
                    waiting_for_not_before = result == "not_yet_valid";
                    metrics.cert_reload(result);
                    tracing::error!(error = %e, "new TLS certificate refused; keeping the current one");
                }
            }
            last = contents;
        }
        let now = unix_now();
        let just_expired = current.is_some_and(|v| now > v.not_after)
            && !ready.tls_expired.load(Ordering::Acquire);
        if just_expired || tokio::time::Instant::now() >= next_check {
            next_check = tokio::time::Instant::now() + EXPIRY_CHECK;
            if let Some(v) = &current {
                observe(v, &cert_name, &metrics, &ready, now);
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_bounds_are_inclusive() {
        let v = Validity {
            not_before: 100,
            not_after: 200,
        };
        assert!(v.check(100, "c").is_ok());
        assert!(v.check(200, "c").is_ok());
        assert!(matches!(v.check(201, "c"), Err(TlsError::Expired { .. })));
        assert!(matches!(
            v.check(99, "c"),
            Err(TlsError::NotYetValid { .. })
        ));
        assert_eq!(v.remaining(150), Duration::from_secs(50));
        assert_eq!(v.remaining(250), Duration::ZERO);
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_800_000_000), "2027-01-15T08:00:00Z");
    }

    /// A development certificate that expired, or expires within the warning period, is
    /// replaced at start rather than served.
    #[test]
    fn an_expiring_dev_certificate_is_regenerated() {
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let day = Duration::from_secs(86_400);
        for (not_after, replaced) in [
            (now - day, true),
            (now + 5 * day, true),
            (now + 300 * day, false),
        ] {
            let old =
                crate::certs::generate_between(&crate::certs::dev_sans(), now - 2 * day, not_after)
                    .unwrap();
            crate::certs::write_bundle(dir.path(), &old, true).unwrap();
            let files = TlsFiles::Dev {
                dir: dir.path().to_owned(),
            }
            .resolve()
            .unwrap();
            let served = std::fs::read_to_string(&files.cert).unwrap();
            assert_eq!(served != old.cert_pem, replaced, "{not_after:?}");
            let loaded = LoadedKey::read(&files).unwrap();
            assert!(loaded.validity.remaining(unix_now()) > EXPIRY_WARNING);
        }
    }
}
