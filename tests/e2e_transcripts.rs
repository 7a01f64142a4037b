//! The kubectl sessions the documentation shows are the ones a real control plane printed.
//!
//! `e2e/run.sh` records what kubectl prints against a real kube-apiserver calling volguard
//! into `e2e/transcripts/NAME.txt` and fails when that differs from the committed file
//! (`E2E_UPDATE=1` rewrites them). This test closes the loop on the documentation side:
//! every `$ kubectl …` step in a fenced block of README.md or docs/*.md must be one of those
//! transcripts, word for word, and every transcript must be shown somewhere.

use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root().join("docs")) {
        let mut more: Vec<PathBuf> = dir
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "md"))
            .collect();
        more.sort();
        docs.extend(more);
    }
    docs
}

/// The `$ kubectl` steps of a markdown text: each is its command line and the lines after
/// it up to the next `$ ` line or the end of the fenced block. A fence may be indented (in a
/// list item); its indentation is removed from the block's lines.
fn kubectl_steps(markdown: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut indent: Option<usize> = None;
    let mut current: Option<(usize, Vec<&str>)> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        let fence = trimmed.starts_with("```");
        let text = match indent {
            Some(n) if line.len() >= n && line[..n].trim().is_empty() => &line[n..],
            _ => line,
        };
        let next_step = indent.is_some() && text.starts_with("$ ");
        if (fence || next_step)
            && let Some((at, lines)) = current.take()
        {
            out.push((at, lines.join("\n") + "\n"));
        }
        if fence {
            indent = match indent {
                Some(_) => None,
                None => Some(line.len() - trimmed.len()),
            };
            continue;
        }
        if indent.is_some() && text.starts_with("$ kubectl ") {
            current = Some((i + 1, vec![text]));
        } else if let Some((_, lines)) = current.as_mut() {
            lines.push(text);
        }
    }
    out
}

fn transcripts() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = std::fs::read_dir(root().join("e2e/transcripts"))
        .expect("e2e/transcripts exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

#[test]
fn kubectl_steps_are_split_per_command() {
    let md = "```\n$ kubectl apply -f a.yaml\npod/a created\n$ kubectl get pod a\nNAME\n```\ntext\n```\n$ volguard check\n```\n1. item\n\n   ```\n   $ kubectl delete pod a\n   pod \"a\" deleted\n   ```\n";
    let steps = kubectl_steps(md);
    assert_eq!(
        steps,
        vec![
            (2, "$ kubectl apply -f a.yaml\npod/a created\n".to_owned()),
            (4, "$ kubectl get pod a\nNAME\n".to_owned()),
            (14, "$ kubectl delete pod a\npod \"a\" deleted\n".to_owned()),
        ]
    );
}

#[test]
fn documented_kubectl_sessions_come_from_the_real_control_plane() {
    let transcripts = transcripts();
    assert!(
        !transcripts.is_empty(),
        "e2e/transcripts/ holds no transcript"
    );
    let mut shown = vec![false; transcripts.len()];
    let mut steps = 0;
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (line, step) in kubectl_steps(&text) {
            steps += 1;
            let mut found = false;
            for (i, (_, t)) in transcripts.iter().enumerate() {
                if *t == step {
                    shown[i] = true;
                    found = true;
                }
            }
            assert!(
                found,
                "{}:{line}: this kubectl session is not a transcript of the e2e run \
                 (e2e/transcripts/*.txt); run e2e/run.sh and paste the file:\n{step}",
                doc.display()
            );
        }
    }
    assert!(steps > 0, "no `$ kubectl` session in README.md or docs/");
    for ((name, _), shown) in transcripts.iter().zip(shown) {
        assert!(
            shown,
            "e2e/transcripts/{name} is shown in no document (README.md, docs/*.md)"
        );
    }
}
