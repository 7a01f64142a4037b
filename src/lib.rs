//! volguard: a Kubernetes validating admission webhook for volumes, mounts and emptyDir limits.
//!
//! The engine (`model` → `workload` → `rules` → `verdict`, configured by `policy`) is pure and
//! shared by the webhook server and the offline `volguard check` command.
#![forbid(unsafe_code)]

pub mod model;
pub mod paths;
pub mod policy;
pub mod quantity;
pub mod rules;
pub mod verdict;
pub mod workload;

pub use model::Object;
pub use policy::{Action, Mode, Policy, PolicyError};
pub use rules::{RULES, RuleId, Violation};
pub use verdict::{Finding, Operation, Request, Verdict, evaluate};

pub mod certs;
pub mod cli;
pub mod server;
pub mod source;

pub use server::router;
