//! The inputs of `check`: files, directories (recursively) and `-` for stdin.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::report::InputError;

/// Expands files, directories (recursively, `*.yaml|*.yml|*.json`) and `-`.
pub fn expand_inputs(inputs: &[PathBuf], errors: &mut Vec<InputError>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in inputs {
        if p.as_os_str() == "-" {
            out.push(p.clone());
        } else if p.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found, errors);
            found.sort();
            out.extend(found);
        } else {
            out.push(p.clone());
        }
    }
    out
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>, errors: &mut Vec<InputError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(InputError {
                file: Some(dir.display().to_string()),
                line: None,
                message: format!("cannot read directory: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out, errors);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            out.push(path);
        }
    }
}

/// Reads one input: its display name and text.
pub fn read(file: &Path) -> Result<(String, String), InputError> {
    let name = if file.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        file.display().to_string()
    };
    let mut text = String::new();
    let read = if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(file).map(|t| text = t)
    };
    match read {
        Ok(()) => Ok((name, text)),
        Err(e) => Err(InputError {
            file: Some(name),
            line: None,
            message: format!("cannot read: {e}"),
        }),
    }
}
