//! `volguard rules`: the catalogue with defaults from the embedded policy.

use std::process::ExitCode;

use serde::Serialize;

use super::OutputFormat;
use crate::policy::{Policy, RuleConfig};
use crate::rules::RULES;

#[derive(Serialize)]
struct RuleDoc {
    rule: &'static str,
    default_action: &'static str,
    options: Vec<(String, String)>,
    summary: &'static str,
    explanation: &'static str,
}

fn option_default(cfg: &RuleConfig, opt: &str) -> String {
    let list = |v: Vec<String>| format!("[{}]", v.join(", "));
    match opt {
        "paths" => list(cfg.paths.iter().map(|p| p.to_string()).collect()),
        "allowed" => list(cfg.allowed.clone()),
        "media" => list(
            cfg.media
                .iter()
                .map(|m| format!("{m:?}").to_lowercase())
                .collect(),
        ),
        "maxDisk" => cfg.max_disk.to_string(),
        "maxMemory" => cfg.max_memory.to_string(),
        "maxTotal" => cfg
            .max_total
            .map(|q| q.to_string())
            .unwrap_or_else(|| "unset".into()),
        _ => String::new(),
    }
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

pub fn main(output: OutputFormat) -> ExitCode {
    let policy = Policy::default();
    let docs: Vec<RuleDoc> = RULES
        .iter()
        .map(|r| {
            let cfg = policy.base_rules().get(r.id);
            RuleDoc {
                rule: r.name,
                default_action: cfg.action.as_str(),
                options: r
                    .options
                    .iter()
                    .map(|o| (o.to_string(), option_default(cfg, o)))
                    .collect(),
                summary: r.summary,
                explanation: r.explanation,
            }
        })
        .collect();
    match output {
        OutputFormat::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&docs).expect("serialises")
            );
        }
        OutputFormat::Text => {
            for d in &docs {
                println!("{}  (default: {})", d.rule, d.default_action);
                println!("  {}", d.summary);
                for (o, v) in &d.options {
                    println!("  option {o}: default {v}");
                }
                print!("{}", wrap(d.explanation, 92, "    "));
                println!();
            }
        }
    }
    ExitCode::SUCCESS
}
