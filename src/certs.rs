//! Certificate generation (rcgen): a CA and a serving certificate signed by it.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// PEM texts of a CA and of a serving certificate it signed.
pub struct CertBundle {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error(
        "{}: already exists; a new CA invalidates the caBundle registered in the cluster (pass --force to overwrite)",
        .0.display()
    )]
    Exists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Generates a CA ("volguard CA") and a serving certificate for `sans` (DNS names or IPs),
/// valid for `days`.
pub fn generate(sans: &[String], days: i64) -> Result<CertBundle, CertError> {
    let now = OffsetDateTime::now_utc();
    generate_between(
        sans,
        (now - Duration::hours(1)).into(),
        (now + Duration::days(days.max(1))).into(),
    )
}

/// Like [`generate`], with the serving certificate valid from `not_before` to `not_after`
/// (either may lie in the past: tests use expired and not-yet-valid certificates; the CA is
/// valid from before `not_before` for twice the leaf's remaining time, at least a day).
pub fn generate_between(
    sans: &[String],
    not_before: std::time::SystemTime,
    not_after: std::time::SystemTime,
) -> Result<CertBundle, CertError> {
    let now = OffsetDateTime::now_utc();
    let not_before = OffsetDateTime::from(not_before);
    let not_after = OffsetDateTime::from(not_after);
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "volguard CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before.min(now - Duration::hours(1));
    // Twice the leaf's remaining validity, and at least a day from now.
    let remaining: Duration = not_after - now;
    ca_params.not_after = now + (remaining * 2i32).max(Duration::days(1));
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut params = CertificateParams::new(sans.to_vec())?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        sans.first().map(String::as_str).unwrap_or("volguard"),
    );
    params.distinguished_name = dn;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.not_before = not_before;
    params.not_after = not_after;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok(CertBundle {
        ca_pem: ca.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// The names a Service's certificate must carry.
pub fn service_sans(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
    ]
}

/// The names of the local development certificate.
pub fn dev_sans() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
}

/// The files of a bundle: name, contents, Unix mode.
fn bundle_files(b: &CertBundle) -> [(&'static str, &str, u32); 3] {
    [
        ("ca.crt", &b.ca_pem, 0o644),
        ("tls.crt", &b.cert_pem, 0o644),
        ("tls.key", &b.key_pem, 0o600),
    ]
}

/// Writes `ca.crt`, `tls.crt` and `tls.key` into `dir`. The key is created with mode 0600,
/// so no reader ever sees it with wider permissions. Without `overwrite` nothing is written
/// when any of the three exists; with it, each file is written to a new temporary file and
/// renamed over the old one (a reader sees the old or the new file, never half of one).
pub fn write_bundle(dir: &Path, b: &CertBundle, overwrite: bool) -> Result<(), CertError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| CertError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    if !overwrite {
        for (name, _, _) in bundle_files(b) {
            let p = dir.join(name);
            if std::fs::symlink_metadata(&p).is_ok() {
                return Err(CertError::Exists(p));
            }
        }
    }
    for (name, text, mode) in bundle_files(b) {
        let p = dir.join(name);
        if overwrite {
            let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            create_new(&tmp, text, mode).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &p).map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                io(&p)(e)
            })?;
        } else {
            create_new(&p, text, mode).map_err(io(&p))?;
        }
    }
    Ok(())
}

/// Creates `path` (failing if it exists) with `mode` from the first byte, and writes `text`.
fn create_new(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = open_new(path, mode)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Creates an empty `path` with `mode` (narrowed by the umask, never widened); fails if it
/// exists.
fn open_new(path: &Path, mode: u32) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_a_chain_rustls_accepts() {
        let b = generate(&dev_sans(), 30).unwrap();
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let ca: Vec<_> = CertificateDer::pem_slice_iter(b.ca_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca[0].clone()).unwrap();
        let leaf: Vec<_> = CertificateDer::pem_slice_iter(b.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            provider,
        )
        .build()
        .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        verifier
            .verify_server_cert(
                &leaf[0],
                &[],
                &name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        assert!(PrivateKeyDer::from_pem_slice(b.key_pem.as_bytes()).is_ok());
    }

    #[test]
    fn validity_is_the_one_asked_for() {
        let now = std::time::SystemTime::now();
        let day = std::time::Duration::from_secs(86_400);
        let b = generate_between(&dev_sans(), now - 3 * day, now - day).unwrap();
        let v = crate::server::tls::leaf_validity(b.cert_pem.as_bytes(), "t").unwrap();
        let unix = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
        };
        assert_eq!(v.not_before, unix(now - 3 * day));
        assert_eq!(v.not_after, unix(now - day));
        let ca = crate::server::tls::leaf_validity(b.ca_pem.as_bytes(), "t").unwrap();
        assert!(ca.not_before <= v.not_before && ca.not_after > unix(now));
    }

    #[cfg(unix)]
    #[test]
    fn key_is_created_0600_and_existing_files_are_kept_unless_overwrite() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |name: &str| {
            std::fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        let first = generate(&dev_sans(), 30).unwrap();
        write_bundle(dir.path(), &first, false).unwrap();
        assert_eq!(mode("tls.key"), 0o600);
        assert_eq!(mode("ca.crt"), 0o644);
        let second = generate(&dev_sans(), 30).unwrap();
        let err = write_bundle(dir.path(), &second, false).unwrap_err();
        assert!(matches!(err, CertError::Exists(_)), "{err}");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("ca.crt"), first.ca_pem);
        // A key left 0644 by another tool is replaced by a new 0600 file, not rewritten in place.
        std::fs::set_permissions(
            dir.path().join("tls.key"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        write_bundle(dir.path(), &second, true).unwrap();
        assert_eq!(read("ca.crt"), second.ca_pem);
        assert_eq!(read("tls.key"), second.key_pem);
        assert_eq!(mode("tls.key"), 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    /// The mode is the one `open` created the file with: checked before the first byte is
    /// written, and an existing (possibly wider) file is never reused.
    #[cfg(unix)]
    #[test]
    fn key_file_has_its_mode_before_the_first_byte() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tls.key");
        let f = open_new(&p, 0o600).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        drop(f);
        let err = open_new(&p, 0o600).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn service_names() {
        assert_eq!(service_sans("volguard", "ops")[0], "volguard.ops.svc");
    }
}
