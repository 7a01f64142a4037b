//! The engine: a pure function from a Kubernetes object and a policy to a verdict.
//!
//! Nothing in here touches the network, files, clocks, threads or the async runtime, and
//! nothing imports the server, the policy sources or the command line; `tests/architecture.rs`
//! fails if that changes. The webhook, `volguard check` and the fuzz targets all call
//! [`evaluate`] on objects decoded by [`crate::admission`], so they cannot disagree.
//!
//! The modules form a strict stack (each only uses the ones above it):
//!
//! ```text
//! quantity, paths      exact Kubernetes quantities; Linux mount-path normalisation
//! model                the fields the rules read, decoded without a DOM
//! workload             where each kind keeps its Pod spec, and the field-path prefix
//! resources            the Pod's effective limits, as Kubernetes computes them
//! rules                the registry (one line per rule) and one file per rule
//! policy               the strict policy document: actions, options, overrides
//! verdict              actions, mode, exemptions, UPDATE semantics -> Verdict
//! mutate               policy `defaults` -> the JSON patch `/mutate` returns (opt-in)
//! ```

pub mod model;
pub mod mutate;
pub mod paths;
pub mod policy;
pub mod quantity;
pub mod resources;
pub mod rules;
pub mod verdict;
pub mod workload;

pub use model::Object;
pub use policy::{Mode, Policy, PolicyError};
pub use rules::{Action, RULES, RuleId, Violation};
pub use verdict::{
    Finding, Operation, Origin, Request, Requester, Skipped, Verdict, evaluate, evaluate_as,
};
