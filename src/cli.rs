//! Command line: each subcommand is an `XArgs` (clap) plus a `run()` returning the exit
//! code. The server's lifecycle lives in [`crate::server`]; `serve` only maps flags to a
//! [`crate::server::ServeConfig`].

use std::path::Path;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub mod audit;
pub mod certs;
pub mod check;
pub mod log_fields;
pub mod policy;
pub mod rules;
pub mod serve;

#[derive(Debug, Parser)]
#[command(
    name = "volguard",
    version,
    about = "Kubernetes admission webhook for volumes, mounts and emptyDir limits"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum OutputFormat {
    Text,
    Json,
    /// SARIF 2.1.0 (code scanning).
    Sarif,
    /// JUnit XML (CI test reports).
    Junit,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS admission webhook.
    #[command(args_override_self = true)]
    Serve(serve::ServeArgs),
    /// Check manifests offline with the same engine (exit 0 ok, 1 denied, 2 error).
    Check(check::CheckArgs),
    /// Print, validate or describe policy files.
    Policy(policy::PolicyArgs),
    /// List every rule with its default action, options and explanation.
    Rules(rules::RulesArgs),
    /// Write a CA and a serving certificate for a Service (or for localhost) and print the caBundle.
    Certs(certs::CertsArgs),
    /// Judge the Pods and workloads already in a cluster (exit 0 ok, 1 denied, 2 error).
    Audit(audit::AuditArgs),
    /// Print a shell completion script (e.g. `volguard completions bash > ~/.local/share/bash-completion/completions/volguard`).
    Completions(CompletionsArgs),
}

#[derive(Debug, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Check(args) => check::run(args),
        Command::Policy(args) => policy::run(args),
        Command::Rules(args) => rules::run(args),
        Command::Certs(args) => certs::run(args),
        Command::Audit(args) => audit::run(args),
        Command::Completions(args) => {
            use clap::CommandFactory;
            clap_complete::generate(
                args.shell,
                &mut Cli::command(),
                "volguard",
                &mut std::io::stdout(),
            );
            ExitCode::SUCCESS
        }
    }
}

/// Writes `text` to stdout. A reader that has gone (`volguard rules | head`) is not an
/// error; any other write failure exits 2.
pub fn print_out(text: &str) -> ExitCode {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: writing the output: {e}");
            ExitCode::from(2)
        }
    }
}

/// Loads a policy file, or the embedded default.
pub fn load_policy(path: Option<&Path>) -> Result<crate::Policy, String> {
    match path {
        None => Ok(crate::Policy::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            crate::Policy::parse(&text, &p.display().to_string()).map_err(|e| e.to_string())
        }
    }
}

/// `NAMESPACE/NAME` (`--policy-configmap` of `serve` and `audit`).
pub(crate) fn parse_ns_name(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("expected NAMESPACE/NAME, got {s:?}")),
    }
}
