//! `volguard audit`: the objects already in a cluster, judged as their CREATE would be.
//!
//! [`cluster`] connects like kubectl and lists every kind volguard judges as raw JSON
//! (paginated), decoded with the engine's own model, so the engine sees what the webhook
//! sees. [`judge`] evaluates them (operation CREATE, the object's namespace) and reports a
//! Pod, ReplicaSet or Job once, at the workload that controls it. [`output`] renders the
//! text and JSON of `check` plus a summary by rule and by namespace, and [`policyreport`]
//! writes one `wgpolicyk8s.io/v1alpha2` PolicyReport per namespace by server-side apply.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;

use crate::engine::policy::Policy;

pub mod cluster;
pub mod judge;
pub mod output;
pub mod policyreport;

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum AuditOutput {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ReportKind {
    /// One wgpolicyk8s.io/v1alpha2 PolicyReport per namespace (server-side apply).
    Policyreport,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the in-cluster config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Audit only this namespace (default: all namespaces).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Label selector for the objects listed, e.g. app=web,tier!=cache.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Objects per list request (`limit`; pages are followed with `continue`).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub page_size: u32,
    /// Policy file (default: the embedded default policy).
    #[arg(long, conflicts_with = "policy_configmap")]
    pub policy: Option<PathBuf>,
    /// Policy from the ConfigMap NAMESPACE/NAME (key policy.yaml), as `serve` reads it:
    /// a missing ConfigMap or key means the embedded default.
    #[arg(long, value_parser = parse_ns_name)]
    pub policy_configmap: Option<(String, String)>,
    #[arg(short = 'o', long, value_enum, default_value_t = AuditOutput::Text)]
    pub output: AuditOutput,
    /// Also write the results into the cluster.
    #[arg(long, value_enum)]
    pub report: Option<ReportKind>,
    /// Exit 0 even when objects would be denied (for a scheduled job whose results are
    /// the PolicyReports); errors still exit 2.
    #[arg(long)]
    pub exit_zero: bool,
}

pub fn run(args: AuditArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let audit = match runtime.block_on(audit(&args)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let mut stdout = std::io::stdout().lock();
    let written = match args.output {
        AuditOutput::Text => output::write_text(&audit, &mut stdout),
        AuditOutput::Json => output::write_json(&audit, &mut stdout),
    };
    if written.is_err() {
        return ExitCode::from(2);
    }
    match audit.result.exit_code() {
        1 if args.exit_zero => ExitCode::SUCCESS,
        code => ExitCode::from(code as u8),
    }
}

/// Connects, loads the policy, lists, judges and (with `--report`) writes the reports.
/// `Err` only for what stops the whole audit (no API, bad policy, no PolicyReport CRD);
/// a kind that cannot be listed is an error line in the result and the rest is audited.
async fn audit(args: &AuditArgs) -> Result<judge::Audit, String> {
    let client = cluster::client(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let policy = match (&args.policy, &args.policy_configmap) {
        (Some(path), _) => super::load_policy(Some(path))?,
        (None, Some((ns, name))) => cluster::policy_from_configmap(&client, ns, name).await?,
        (None, None) => Policy::default(),
    };
    if args.report.is_some() {
        policyreport::ensure_crd(&client).await?;
    }
    let scope = cluster::Scope {
        namespace: args.namespace.clone(),
        selector: args.selector.clone(),
        page_size: args.page_size,
    };
    let listed = cluster::list_all(&client, &scope).await?;
    let mut audit = judge::judge(&policy, listed.items);
    audit.result.errors.extend(listed.errors);
    if args.report.is_some() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut reports = policyreport::build(&audit, now);
        // A namespace whose report is from an earlier audit and where nothing was found
        // now gets an empty report, not a stale one.
        match policyreport::earlier_reports(&client, scope.namespace.as_deref(), scope.page_size)
            .await
        {
            Ok(namespaces) => {
                for ns in namespaces {
                    if !reports.iter().any(|r| r.metadata.namespace == ns) {
                        reports.push(policyreport::PolicyReport::empty(&ns));
                    }
                }
            }
            Err(e) => audit.result.errors.push(e),
        }
        for report in &reports {
            if let Err(e) = policyreport::apply(&client, report).await {
                audit.result.errors.push(e);
            }
        }
        audit.reports_written = reports.len();
    }
    Ok(audit)
}

/// `NAMESPACE/NAME`, as `serve --policy-configmap` takes it.
fn parse_ns_name(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {s:?}")),
    }
}
