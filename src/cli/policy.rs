//! `volguard policy default | validate | schema`.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::engine::policy::{self, DEFAULT_POLICY_YAML};

#[derive(Debug, clap::Args)]
pub struct PolicyArgs {
    #[command(subcommand)]
    pub command: PolicyCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Print the embedded default policy.
    Default,
    /// Validate a policy file (exit 0 valid, 2 invalid).
    Validate { file: PathBuf },
    /// Print the JSON schema of a policy document (generated from the rule registry).
    Schema,
}

pub fn run(args: PolicyArgs) -> ExitCode {
    match args.command {
        PolicyCommand::Default => super::print_out(DEFAULT_POLICY_YAML),
        PolicyCommand::Validate { file } => match super::load_policy(Some(&file)) {
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
        PolicyCommand::Schema => {
            let schema = policy::schema();
            super::print_out(&format!(
                "{}\n",
                serde_json::to_string_pretty(&schema).expect("serialises")
            ))
        }
    }
}
