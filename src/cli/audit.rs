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
    #[arg(long, value_parser = super::parse_ns_name)]
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
    /// Seconds a response may stay silent (before its headers or between reads), and a
    /// connection may take to set up (at most 30), before the request fails and is retried:
    /// a half-open connection cannot hang the audit.
    #[arg(long, default_value_t = 60.0, value_parser = parse_seconds)]
    pub read_timeout: f64,
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
    let client = cluster::client(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
        std::time::Duration::from_secs_f64(args.read_timeout),
    )
    .await?;
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
    if listed.relists > 0 {
        audit.notes.push(format!(
            "{} list(s) restarted in full after their continue token expired (410)",
            listed.relists
        ));
    }
    if args.report.is_some() {
        write_reports(&client, &scope, &listed.unread, &mut audit).await;
    }
    Ok(audit)
}

/// Writes this audit's reports: one per namespace with an audited object (in parts when
/// large), and an empty one in place of each earlier report of the same set with nothing
/// now. Nothing is written for what was not read completely: no report at all when a kind
/// failed in an all-namespaces list, none in a namespace whose listing was incomplete (the
/// reports already there stay as they were, rather than showing findings as fixed).
async fn write_reports(
    client: &kube::Client,
    scope: &cluster::Scope,
    unread: &cluster::Unread,
    audit: &mut judge::Audit,
) {
    if unread.all {
        audit.notes.push(
            "no PolicyReport written: not every kind could be read completely (errors above); the reports of earlier audits are left as they were".into(),
        );
        return;
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let set = policyreport::ReportSet::new(scope.selector.as_deref());
    let mut reports = policyreport::build(audit, now, &set, policyreport::MAX_REPORT_BYTES);
    match policyreport::earlier_reports(client, scope.namespace.as_deref(), scope.page_size, &set)
        .await
    {
        Ok(earlier) => {
            for (ns, name) in earlier {
                if !reports
                    .iter()
                    .any(|r| r.metadata.namespace == ns && r.metadata.name == name)
                {
                    reports.push(policyreport::PolicyReport::empty(&ns, &name, &set));
                }
            }
        }
        Err(e) => audit.result.errors.push(e),
    }
    if !unread.namespaces.is_empty() {
        audit.notes.push(format!(
            "no PolicyReport written in namespace(s) {}: not read completely (errors above)",
            unread
                .namespaces
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    reports.retain(|r| !unread.covers(&r.metadata.namespace));
    for report in &reports {
        if audit.namespaces_gone.contains(&report.metadata.namespace) {
            continue;
        }
        match policyreport::apply(client, report).await {
            Ok(()) => audit.reports_written += 1,
            Err(policyreport::ApplyError::NamespaceGone { namespace, why }) => {
                tracing::debug!(namespace, why, "namespace gone; report skipped");
                audit.namespaces_gone.insert(namespace);
            }
            Err(policyreport::ApplyError::Failed(e)) => audit.result.errors.push(e),
        }
    }
    if !audit.namespaces_gone.is_empty() {
        audit.notes.push(format!(
            "namespace(s) {} deleted or terminating since listed: report(s) skipped",
            audit
                .namespaces_gone
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected a positive number of seconds, got {s:?}")),
    }
}
