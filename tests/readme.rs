//! The `volguard` sessions of README.md and docs/*.md are what the binary prints: every
//! `$ volguard ...` (or `$ cargo run -q -- ...`) command in a fenced block, indented or
//! not, is run from the repository root and its output compared line by line (`...` in a
//! session stands for any number of lines; `$ echo $?` checks the previous exit code).

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
    let mut block_indent = 0;
    for (i, line) in markdown.lines().enumerate() {
        // A fence inside a list item is indented; so are its lines.
        let indent = line.len() - line.trim_start().len();
        let line = if in_block {
            line.get(block_indent.min(indent)..).unwrap_or(line)
        } else {
            line
        };
        if line.trim_start().starts_with("```") {
            block_indent = indent;
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

/// README.md, then every docs/*.md (sorted): (path relative to the root, text).
fn documents(root: &Path) -> Vec<(String, String)> {
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    std::iter::once("README.md".to_owned())
        .chain(docs)
        .map(|d| {
            let text = std::fs::read_to_string(root.join(&d)).unwrap();
            (d, text)
        })
        .collect()
}

#[test]
fn sessions_in_indented_fences_are_found() {
    let md = "1. step:\n\n   ```\n   $ volguard --version\n   volguard 1\n   ```\n";
    let found = sessions(md);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].1[0].command, "volguard --version");
    assert_eq!(found[0].1[0].expected, ["volguard 1"]);
}

#[test]
fn readme_volguard_sessions_are_true() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut readme_checked = 0;
    for (doc, text) in documents(root) {
        for (line, steps) in sessions(&text) {
            let mut last_code = None;
            for step in steps {
                if step.command == "echo $?" {
                    if last_code.is_none() {
                        continue; // the command before it was not run here
                    }
                    let want: i32 = step.expected[0].parse().unwrap();
                    assert_eq!(last_code, Some(want), "{doc}:{line}: exit code");
                    continue;
                }
                last_code = None;
                let Some(args) = step
                    .command
                    .strip_prefix("volguard ")
                    .or_else(|| step.command.strip_prefix("cargo run -q -- "))
                else {
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
                    "{doc}:{line}: `{}` printed:\n{stdout}\nbut {doc} says:\n{}",
                    step.command,
                    step.expected.join("\n")
                );
                checked += 1;
                if doc == "README.md" {
                    readme_checked += 1;
                }
            }
        }
    }
    assert!(
        checked >= 6,
        "only {checked} commands found in README.md and docs/"
    );
    assert!(
        readme_checked >= 1,
        "README.md's first screen has no `volguard check` session"
    );
}
