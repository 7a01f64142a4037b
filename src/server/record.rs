//! What the webhook records about each answer: its metrics and its decision log line.
//!
//! Request-derived fields go into the log line as `&str` (the text format writes them quoted
//! and escaped), never with `%` (Display, raw): a uid with a newline cannot forge a line.

use std::time::Duration;

use super::AppState;
use super::metrics::{DowngradeLabels, MutationLabels, RequestLabels, ViolationLabels};
use crate::admission::RequestIn;
use crate::engine::mutate::Mutation;
use crate::engine::rules::{Action, RuleId};
use crate::engine::verdict::{Skipped, Verdict};
use crate::engine::workload::POD_KINDS;

/// The `kind` label of a request: a static string (no allocation per request), and "other"
/// for kinds the engine does not judge, so a client cannot grow the label set.
fn kind_label(kind: &str) -> &'static str {
    POD_KINDS
        .iter()
        .copied()
        .find(|k| *k == kind)
        .unwrap_or("other")
}

/// Findings counted per (rule, action), in order of first appearance: one metric update per
/// pair, not per finding (a hostile Pod can carry 80k findings of one rule).
fn rule_counts(verdict: &Verdict) -> Vec<(RuleId, Action, u64)> {
    let mut counts: Vec<(RuleId, Action, u64)> = Vec::new();
    for f in &verdict.findings {
        match counts
            .iter_mut()
            .find(|(r, a, _)| *r == f.rule && *a == f.action)
        {
            Some((_, _, n)) => *n += 1,
            None => counts.push((f.rule, f.action, 1)),
        }
    }
    counts
}

/// The log line's `rules` field: each rule once, sorted, with its count when it fired more
/// than once (`mount-path-uniquex2`), so the line stays short whatever the Pod holds; the
/// findings themselves are in the response.
fn rules_field(counts: &[(RuleId, Action, u64)]) -> String {
    let mut rules: Vec<(RuleId, u64)> = Vec::new();
    for &(rule, _, n) in counts {
        match rules.iter_mut().find(|(r, _)| *r == rule) {
            Some((_, total)) => *total += n,
            None => rules.push((rule, n)),
        }
    }
    rules.sort_unstable();
    let rules: Vec<String> = rules
        .iter()
        .map(|(r, n)| match n {
            1 => r.name().to_owned(),
            n => format!("{}x{n}", r.name()),
        })
        .collect();
    rules.join(",")
}

/// The request's `verdict` label and log field.
fn outcome(verdict: &Verdict) -> &'static str {
    match verdict.skipped {
        Some(Skipped::NotApplicable) => "skipped",
        Some(Skipped::ExemptNamespace) => "exempt",
        None => verdict.outcome(),
    }
}

/// Counts the decision and logs it when it has findings (or `--log-allowed`).
pub(super) fn record(
    st: &AppState,
    req: &RequestIn,
    verdict: &Verdict,
    generation: u64,
    elapsed: Duration,
) {
    let operation = req.operation().as_str();
    let outcome = outcome(verdict);
    let kind_label = kind_label(&req.kind.kind);
    st.metrics
        .requests
        .get_or_create(&RequestLabels {
            kind: kind_label,
            operation,
            verdict: outcome,
        })
        .inc();
    let counts = rule_counts(verdict);
    for &(rule, action, n) in &counts {
        st.metrics
            .violations
            .get_or_create(&ViolationLabels {
                rule: rule.name(),
                action: action.as_str(),
            })
            .inc_by(n);
    }
    let waived = verdict.downgraded().count();
    if waived > 0 {
        st.metrics
            .controller_downgrades
            .get_or_create(&DowngradeLabels {
                kind: kind_label,
                origin: verdict.origin.as_str(),
            })
            .inc();
    }
    st.metrics.latency.observe(elapsed.as_secs_f64());
    if !verdict.findings.is_empty() || st.log_allowed {
        log_decision(req, verdict, outcome, &counts, waived, generation, elapsed);
    }
}

/// The decision log line.
fn log_decision(
    req: &RequestIn,
    verdict: &Verdict,
    outcome: &'static str,
    counts: &[(RuleId, Action, u64)],
    waived: usize,
    generation: u64,
    elapsed: Duration,
) {
    let rules = rules_field(counts);
    tracing::info!(
        uid = &*req.uid,
        kind = &*req.kind.kind,
        namespace = req.namespace.as_deref().unwrap_or(""),
        name = req.name.as_deref().unwrap_or(""),
        operation = req.operation().as_str(),
        dry_run = req.dry_run.unwrap_or(false),
        verdict = outcome,
        denied = counts
            .iter()
            .filter(|(_, a, _)| *a == Action::Deny)
            .map(|(_, _, n)| n)
            .sum::<u64>(),
        waived,
        origin = verdict.origin.as_str(),
        user = &*req.user_info.username,
        rules = %rules,
        policy_generation = generation,
        latency_us = elapsed.as_micros() as u64,
        "admission decision"
    );
}

/// Counts a mutation and logs it when it added something (or `--log-allowed`).
pub(super) fn record_mutation(
    st: &AppState,
    req: &RequestIn,
    mutation: &Mutation,
    generation: u64,
    elapsed: Duration,
) {
    let kind = &*req.kind.kind;
    let kind_label = kind_label(kind);
    let result = mutation.result();
    st.metrics
        .mutations
        .get_or_create(&MutationLabels {
            kind: kind_label,
            result,
        })
        .inc();
    st.metrics.latency.observe(elapsed.as_secs_f64());
    if !mutation.additions.is_empty() || st.log_allowed {
        let added: Vec<&str> = mutation.additions.iter().map(|a| a.path.as_str()).collect();
        tracing::info!(
            uid = &*req.uid,
            kind,
            namespace = req.namespace.as_deref().unwrap_or(""),
            name = req.name.as_deref().unwrap_or(""),
            operation = req.operation().as_str(),
            dry_run = req.dry_run.unwrap_or(false),
            result,
            added = added.join(",").as_str(),
            user = &*req.user_info.username,
            policy_generation = generation,
            latency_us = elapsed.as_micros() as u64,
            "mutation"
        );
    }
}
