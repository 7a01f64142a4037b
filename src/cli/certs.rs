//! `volguard certs`: a CA and serving certificate for clusters without cert-manager.

use std::path::PathBuf;
use std::process::ExitCode;

use base64::Engine;

use crate::certs;

#[derive(Debug, clap::Args)]
pub struct CertsArgs {
    /// Service name (the certificate is for NAME.NS.svc); omit for the localhost dev pair.
    #[arg(long, requires = "namespace")]
    pub service: Option<String>,
    /// Namespace of the Service.
    #[arg(long)]
    pub namespace: Option<String>,
    /// Output directory (ca.crt, tls.crt, tls.key).
    #[arg(long)]
    pub out: PathBuf,
    /// Validity of the serving certificate in days (the CA gets twice as long). The server
    /// warns from 14 days before expiry and exports it as volguard_certificate_not_after_seconds.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(i64).range(1..=36500))]
    pub days: i64,
    /// Overwrite an existing ca.crt, tls.crt or tls.key in --out (a new CA means a new caBundle).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: CertsArgs) -> ExitCode {
    let sans = match (&args.service, &args.namespace) {
        (Some(s), Some(ns)) => certs::service_sans(s, ns),
        _ => certs::dev_sans(),
    };
    let bundle = match certs::generate(&sans, args.days)
        .and_then(|b| certs::write_bundle(&args.out, &b, args.force).map(|_| b))
    {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    eprintln!(
        "wrote {0}/ca.crt, {0}/tls.crt, {0}/tls.key for {1}",
        args.out.display(),
        sans.join(", ")
    );
    let not_after = crate::server::tls::leaf_validity(bundle.cert_pem.as_bytes(), "tls.crt")
        .map(|v| crate::server::tls::rfc3339(v.not_after))
        .unwrap_or_default();
    eprintln!(
        "the serving certificate expires at {not_after} ({} days); renew it before then (--force)",
        args.days
    );
    eprintln!("caBundle (paste into the ValidatingWebhookConfiguration or certs.caBundle):");
    println!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(bundle.ca_pem.as_bytes())
    );
    ExitCode::SUCCESS
}
