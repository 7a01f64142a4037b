//! `volguard rules`: the catalogue, from the registry (defaults included).

use std::process::ExitCode;

use clap::ValueEnum;
use serde::Serialize;

use crate::engine::rules::{APISERVER_SCOPE, RULES, RuleOptions};

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum RulesFormat {
    Text,
    Json,
    /// The rule table of docs/rules.md.
    Markdown,
}

#[derive(Debug, clap::Args)]
pub struct RulesArgs {
    #[arg(short = 'o', long, value_enum, default_value_t = RulesFormat::Text)]
    pub output: RulesFormat,
}

#[derive(Serialize)]
pub struct RuleDoc {
    pub rule: &'static str,
    pub default_action: &'static str,
    pub options: Vec<OptionDefault>,
    pub summary: &'static str,
    pub explanation: &'static str,
    /// What of this the apiserver already rejects itself ("" when nothing), in
    /// [`APISERVER_SCOPE`].
    pub apiserver: &'static str,
}

#[derive(Serialize)]
pub struct OptionDefault {
    pub name: &'static str,
    pub default: String,
    pub help: &'static str,
}

/// Every rule with its defaults, in registry order.
pub fn docs() -> Vec<RuleDoc> {
    RULES
        .iter()
        .map(|r| {
            let defaults = RuleOptions::default_for(r.id).to_value();
            RuleDoc {
                rule: r.name(),
                default_action: r.meta.default_action.as_str(),
                options: r
                    .meta
                    .options
                    .iter()
                    .map(|o| OptionDefault {
                        name: o.name,
                        default: show(defaults.get(o.name)),
                        help: o.help,
                    })
                    .collect(),
                summary: r.meta.summary,
                explanation: r.meta.explanation,
                apiserver: r.meta.apiserver,
            }
        })
        .collect()
}

/// A default value in flow YAML (`[a, b]`, `10Gi`), `unset` for null.
fn show(v: Option<&serde_yaml_ng::Value>) -> String {
    use serde_yaml_ng::Value;
    match v {
        None | Some(Value::Null) => "unset".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Sequence(items)) => {
            let items: Vec<String> = items.iter().map(|i| show(Some(i))).collect();
            format!("[{}]", items.join(", "))
        }
        Some(other) => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// What the apiserver column says of a rule.
fn apiserver(d: &RuleDoc) -> &'static str {
    if d.apiserver.is_empty() {
        "nothing"
    } else {
        d.apiserver
    }
}

/// The docs/rules.md table: one row per rule, then where the apiserver column applies.
pub fn markdown() -> String {
    let mut out = String::from(
        "| rule ID | what it flags | default | options | the apiserver already rejects |\n|---|---|---|---|---|\n",
    );
    for d in docs() {
        let options: Vec<String> = d
            .options
            .iter()
            .map(|o| format!("`{}`: {} (default `{}`)", o.name, o.help, o.default))
            .collect();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            d.rule,
            d.summary,
            d.default_action,
            options.join("; "),
            apiserver(&d)
        ));
    }
    out.push_str(&format!(
        "\nThe last column is what Kubernetes rejects itself, before any webhook runs, in \
         {APISERVER_SCOPE}. volguard adds the rest: StatefulSet templates, offline `check`, \
         normalised paths.\n"
    ));
    out
}

fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            out.push_str(indent);
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(indent);
        out.push_str(&line);
        out.push('\n');
    }
    out
}

pub fn run(args: RulesArgs) -> ExitCode {
    let text = match args.output {
        RulesFormat::Text => format!(
            "\"apiserver already rejects\": what Kubernetes rejects itself, before any webhook \
             runs, in {APISERVER_SCOPE}.\n\n{}",
            text()
        ),
        RulesFormat::Json => format!(
            "{}\n",
            serde_json::to_string_pretty(&docs()).expect("serialises")
        ),
        RulesFormat::Markdown => markdown(),
    };
    super::print_out(&text)
}

fn text() -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    for d in docs() {
        let _ = writeln!(out, "{}  (default: {})", d.rule, d.default_action);
        let _ = writeln!(out, "  {}", d.summary);
        for o in &d.options {
            let _ = writeln!(
                out,
                "  option {}: default {} ({})",
                o.name, o.default, o.help
            );
        }
        let _ = writeln!(out, "  apiserver already rejects: {}", apiserver(&d));
        out.push_str(&wrap(d.explanation, 92, "    "));
        out.push('\n');
    }
    out
}
