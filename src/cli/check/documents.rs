//! Splitting a YAML (or JSON) stream into documents, with the line each starts on.

/// Splits a YAML stream into documents with the 1-based line each starts on.
pub fn documents(text: &str) -> Vec<(usize, String)> {
    let mut docs = Vec::new();
    let mut current = String::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let is_sep = line == "---" || line.starts_with("--- ") || line.starts_with("---\t");
        if is_sep {
            docs.push((start, std::mem::take(&mut current)));
            start = i + 2;
            // `--- {inline: doc}` carries content after the marker.
            let rest = line[3..].trim_start();
            if !rest.is_empty() && !rest.starts_with('#') {
                current.push_str(rest);
                current.push('\n');
                start = i + 1;
            }
        } else {
            if current.is_empty() && (line.trim().is_empty() || line.trim_start().starts_with('#'))
            {
                start = i + 2;
                continue;
            }
            current.push_str(line);
            current.push('\n');
        }
    }
    docs.push((start, current));
    docs.into_iter()
        .filter(|(_, d)| !d.trim().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_with_lines() {
        let text =
            "# comment\napiVersion: v1\nkind: Pod\n---\n\n---\nkind: Deployment\n--- {kind: Pod}\n";
        let docs = documents(text);
        let lines: Vec<usize> = docs.iter().map(|d| d.0).collect();
        assert_eq!(lines, [2, 7, 8]);
    }
}
