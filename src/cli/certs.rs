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
    /// Validity of the serving certificate in days (the CA gets twice as long).
    #[arg(long, default_value_t = 365)]
    pub days: i64,
}

pub fn run(args: CertsArgs) -> ExitCode {
    let sans = match (&args.service, &args.namespace) {
        (Some(s), Some(ns)) => certs::service_sans(s, ns),
        _ => certs::dev_sans(),
    };
    let bundle = match certs::generate(&sans, args.days)
        .and_then(|b| certs::write_bundle(&args.out, &b).map(|_| b))
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
    eprintln!("caBundle (paste into the ValidatingWebhookConfiguration or certs.caBundle):");
    println!(
        "{}",
        base64::engine::general_purpose::STANDARD.encode(bundle.ca_pem.as_bytes())
    );
    ExitCode::SUCCESS
}
