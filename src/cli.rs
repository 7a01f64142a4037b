//! Command line: `serve`, `check`, `policy`, `rules`, `certs`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub mod certs;
pub mod check;
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
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS admission webhook.
    #[command(args_override_self = true)]
    Serve(serve::ServeArgs),
    /// Check manifests offline with the same engine (exit 0 ok, 1 denied, 2 error).
    Check {
        /// Files, directories (recursively: *.yaml, *.yml, *.json) or - for stdin.
        #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// Policy file (default: the embedded default policy).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Namespace assumed for objects that do not name one.
        #[arg(short = 'n', long, default_value = "default")]
        namespace: String,
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Print or validate policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// List every rule with its default action, options and explanation.
    Rules {
        #[arg(short = 'o', long, value_enum, default_value_t = OutputFormat::Text)]
        output: OutputFormat,
    },
    /// Write a CA and a serving certificate for a Service (or for localhost) and print the caBundle.
    Certs(certs::CertsArgs),
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Print the embedded default policy.
    Default,
    /// Validate a policy file (exit 0 valid, 2 invalid).
    Validate { file: PathBuf },
}

/// Loads a policy file, or the embedded default.
pub fn load_policy(path: Option<&PathBuf>) -> Result<crate::Policy, String> {
    match path {
        None => Ok(crate::Policy::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .map_err(|e| format!("{}: cannot read: {e}", p.display()))?;
            crate::Policy::parse(&text, &p.display().to_string()).map_err(|e| e.to_string())
        }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve(args) => serve::main(args),
        Command::Check {
            files,
            policy,
            namespace,
            output,
        } => {
            let policy = match load_policy(policy.as_ref()) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            let result = check::check_paths(&policy, &files, &namespace);
            let mut stdout = std::io::stdout().lock();
            let written = match output {
                OutputFormat::Text => check::write_text(&result, &mut stdout),
                OutputFormat::Json => {
                    for e in &result.errors {
                        eprintln!("error: {e}");
                    }
                    serde_json::to_writer_pretty(&mut stdout, &result.objects)
                        .map_err(std::io::Error::other)
                        .and_then(|_| std::io::Write::write_all(&mut stdout, b"\n"))
                }
            };
            if written.is_err() {
                return ExitCode::from(2);
            }
            ExitCode::from(result.exit_code() as u8)
        }
        Command::Policy {
            command: PolicyCommand::Default,
        } => {
            print!("{}", crate::policy::DEFAULT_POLICY_YAML);
            ExitCode::SUCCESS
        }
        Command::Policy {
            command: PolicyCommand::Validate { file },
        } => match load_policy(Some(&file)) {
            Ok(p) => {
                println!(
                    "{}: valid (mode {}, hash {})",
                    file.display(),
                    p.mode.as_str(),
                    p.hash
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Rules { output } => rules::main(output),
        Command::Certs(args) => certs::main(args),
    }
}
