//! The README's `volguard` sessions are what the binary prints: every `$ volguard ...`
//! command in a fenced block is run from the repository root and its output compared line
//! by line (`...` in the README stands for any number of lines; `$ echo $?` checks the
//! previous exit code).

use std::path::Path;
use std::process::Command;

struct Step {
    command: String,
    expected: Vec<String>,
}

/// The `$ ` sessions of a markdown text: (line, steps) per fenced block.
fn sessions(markdown: &str) -> Vec<(usize, Vec<Step>)> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut current: Vec<Step> = Vec::new();
    let mut start = 0;
    for (i, line) in markdown.lines().enumerate() {
        if line.starts_with("```") {
            if in_block && !current.is_empty() {
                out.push((start, std::mem::take(&mut current)));
            }
            in_block = !in_block;
            start = i + 1;
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            current.push(Step {
                command: cmd.to_owned(),
                expected: Vec::new(),
            });
        } else if let Some(step) = current.last_mut() {
            step.expected.push(line.to_owned());
        }
    }
    out
}

/// `expected` (with `...` wildcards) matches `actual`.
fn matches(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => (0..=actual.len()).any(|k| matches(rest, &actual[k..])),
        Some((e, rest)) => actual.first() == Some(&e.as_str()) && matches(rest, &actual[1..]),
    }
}

#[test]
fn wildcard_matching() {
    let e = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(matches(&e(&["a", "...", "d"]), &["a", "b", "c", "d"]));
    assert!(matches(&e(&["a", "...", "d"]), &["a", "d"]));
    assert!(!matches(&e(&["a", "...", "d"]), &["a", "b"]));
    assert!(!matches(&e(&["a", "b"]), &["a", "c"]));
}

#[test]
fn readme_volguard_sessions_are_true() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut checked = 0;
    for (line, steps) in sessions(&readme) {
        let mut last_code = None;
        for step in steps {
            if step.command == "echo $?" {
                if last_code.is_none() {
                    continue; // the command before it was not run here
                }
                let want: i32 = step.expected[0].parse().unwrap();
                assert_eq!(last_code, Some(want), "README.md:{line}: exit code");
                continue;
            }
            last_code = None;
            let Some(args) = step.command.strip_prefix("volguard ") else {
                continue; // kubectl sessions need a cluster
            };
            if args.starts_with("audit") {
                continue; // needs a cluster: tests/audit.rs checks that session against its scripted API server
            }
            let out = Command::new(env!("CARGO_BIN_EXE_volguard"))
                .args(args.split_whitespace())
                .current_dir(root)
                .output()
                .unwrap();
            last_code = out.status.code();
            let stdout = String::from_utf8(out.stdout).unwrap();
            let actual: Vec<&str> = stdout.lines().collect();
            assert!(
                matches(&step.expected, &actual),
                "README.md:{line}: `{}` printed:\n{stdout}\nbut the README says:\n{}",
                step.command,
                step.expected.join("\n")
            );
            checked += 1;
        }
    }
    assert!(checked >= 4, "only {checked} README commands found");
}
