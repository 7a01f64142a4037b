//! A linear pre-scan of a YAML policy that refuses documents nested deeper than
//! [`MAX_DEPTH`] before the YAML parser sees them (its scanner is quadratic on deep flow
//! nesting: bench/attacks/README.md, the deep-policy row). A real policy is about six levels
//! deep.
//!
//! The scan counts block nesting (indentation and `- ` entries) plus flow nesting (`[` and
//! `{` that open a value), skipping quoted scalars, comments and block scalars (`|`, `>`).
//! It errs on the side of counting less (a compact `key:\n- item` counts one level for the
//! two), so a valid policy is never refused; a pathological one is still caught long
//! before the parser would struggle.

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;

/// Where the nesting went too deep: the key path as far as known (block keys, `[]` for
/// sequence entries), the 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooDeep {
    pub path: String,
    pub line: usize,
    pub column: usize,
}

/// Checks that `text` nests at most `max` levels.
pub fn check(text: &str, max: usize) -> Result<(), TooDeep> {
    let mut scan = Scan {
        max,
        block: Vec::new(),
        flow: 0,
        quote: None,
        block_scalar_parent: None,
    };
    for (n, line) in text.lines().enumerate() {
        scan.line(n, line)?;
    }
    Ok(())
}

/// What the scan carries from one line to the next.
struct Scan {
    max: usize,
    /// Block nesting: (column, key) of the enclosing block nodes.
    block: Vec<(usize, String)>,
    flow: usize,
    /// Inside a quoted scalar that continues on the next line.
    quote: Option<u8>,
    /// Lines more indented than this belong to a block scalar.
    block_scalar_parent: Option<usize>,
}

impl Scan {
    /// Line `n` (0-based).
    fn line(&mut self, n: usize, line: &str) -> Result<(), TooDeep> {
        let bytes = line.as_bytes();
        let indent = bytes.iter().take_while(|b| **b == b' ').count();
        let blank = bytes[indent..].iter().all(|b| b.is_ascii_whitespace());
        if let Some(parent) = self.block_scalar_parent {
            if blank || indent > parent {
                return Ok(());
            }
            self.block_scalar_parent = None;
        }
        if blank {
            return Ok(());
        }
        let mut i = indent;
        let block_context = self.flow == 0 && self.quote.is_none();
        if block_context {
            if line.starts_with("---") || line.starts_with("...") {
                self.block.clear();
                return Ok(());
            }
            i = self.block_levels(n, line, indent)?;
        }
        self.characters(n, bytes, i, indent)
    }

    /// The block levels a line in block context closes and opens (its entry indicators and
    /// its key); where the rest of the line starts.
    fn block_levels(&mut self, n: usize, line: &str, indent: usize) -> Result<usize, TooDeep> {
        let bytes = line.as_bytes();
        let mut i = indent;
        while self.block.last().is_some_and(|(c, _)| *c >= indent) {
            self.block.pop();
        }
        // `- - key:`: each entry indicator opens a level.
        while bytes.get(i) == Some(&b'-')
            && bytes.get(i + 1).is_none_or(|b| *b == b' ' || *b == b'\t')
        {
            self.block.push((i, "[]".to_owned()));
            self.within_max(n, i)?;
            i += 1;
            while bytes.get(i) == Some(&b' ') {
                i += 1;
            }
        }
        if let Some(key) = plain_key(&line[i..]) {
            self.block.push((i, key.to_owned()));
            self.within_max(n, i)?;
        }
        Ok(i)
    }

    /// Characters from column `i` of line `n`: flow indicators that open a value, quotes,
    /// comments, block scalars.
    fn characters(
        &mut self,
        n: usize,
        bytes: &[u8],
        mut i: usize,
        indent: usize,
    ) -> Result<(), TooDeep> {
        let mut value_start = true;
        let mut prev_space = true;
        while i < bytes.len() {
            let c = bytes[i];
            if let Some(q) = self.quote {
                if q == b'"' && c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == q {
                    if q == b'\'' && bytes.get(i + 1) == Some(&b'\'') {
                        i += 2;
                        continue;
                    }
                    self.quote = None;
                    value_start = false;
                }
                i += 1;
                prev_space = false;
                continue;
            }
            match c {
                b'#' if prev_space => break,
                b' ' | b'\t' => {
                    prev_space = true;
                    i += 1;
                    continue;
                }
                b'[' | b'{' if value_start || self.flow > 0 => {
                    self.flow += 1;
                    self.within_max(n, i)?;
                    value_start = true;
                }
                b']' | b'}' if self.flow > 0 => {
                    self.flow -= 1;
                    value_start = false;
                }
                b',' if self.flow > 0 => value_start = true,
                b'"' | b'\'' if value_start => self.quote = Some(c),
                b'|' | b'>' if value_start && self.flow == 0 => {
                    self.block_scalar_parent = Some(indent);
                    break;
                }
                b':' if bytes.get(i + 1).is_none_or(|b| {
                    *b == b' ' || *b == b'\t' || (self.flow > 0 && b",]}".contains(b))
                }) =>
                {
                    value_start = true;
                }
                b'-' | b'?' if value_start && bytes.get(i + 1).is_none_or(|b| *b == b' ') => {}
                _ => value_start = false,
            }
            prev_space = false;
            i += 1;
        }
        Ok(())
    }

    /// The error when the nesting now exceeds the maximum, at line `n`, column `col`
    /// (0-based).
    fn within_max(&self, n: usize, col: usize) -> Result<(), TooDeep> {
        if self.block.len() + self.flow > self.max {
            return Err(TooDeep {
                path: path_of(&self.block),
                line: n + 1,
                column: col + 1,
            });
        }
        Ok(())
    }
}

/// The key of a block mapping entry `key: ...` (plain or quoted), if the line starts with
/// one.
fn plain_key(rest: &str) -> Option<&str> {
    let b = rest.as_bytes();
    let first = *b.first()?;
    if first == b'"' || first == b'\'' {
        let end = rest[1..].find(first as char)? + 1;
        let after = &rest[end + 1..];
        return after.trim_start().starts_with(':').then(|| &rest[1..end]);
    }
    if b"[{#&*!|>%@`".contains(&first) {
        return None;
    }
    let mut at = 0;
    while let Some(p) = rest[at..].find(':') {
        let colon = at + p;
        if rest[colon + 1..]
            .chars()
            .next()
            .is_none_or(|c| c == ' ' || c == '\t')
        {
            let key = rest[..colon].trim_end();
            if key.contains(" #") {
                return None;
            }
            return Some(key);
        }
        at = colon + 1;
    }
    None
}

fn path_of(block: &[(usize, String)]) -> String {
    let mut out = String::new();
    for (_, key) in block {
        if key == "[]" {
            out.push_str("[]");
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(key);
        }
    }
    if out.is_empty() {
        "(document)".to_owned()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    /// `levels` nested block mappings: `k0:` … and a `leaf: 1` at the bottom.
    fn nested_block(levels: usize) -> String {
        (0..levels - 1)
            .map(|i| format!("{}k{i}:\n", "  ".repeat(i)))
            .collect::<String>()
            + &format!("{}leaf: 1\n", "  ".repeat(levels - 1))
    }

    #[rstest]
    #[case::default_policy(crate::engine::policy::DEFAULT_POLICY_YAML)]
    #[case::flow_maps_and_lists("rules:\n  a: {action: deny, media: [ssd, \"[x\"]}\n")]
    #[case::brackets_inside_plain_scalars("a: b[c{d\nb: 'it''s [' # [[[[\n")]
    #[case::multi_line_flow("a: [\n  1,\n  [2, 3],\n]\n")]
    #[case::block_scalar_with_deep_text(
        "a: |\n  [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\nb: 1\n"
    )]
    #[case::sequences("namespaceOverrides:\n  - namespaces: [a]\n    rules: {}\n  - - x\n")]
    fn accepts(#[case] text: &str) {
        assert_eq!(check(text, MAX_DEPTH), Ok(()));
    }

    #[test]
    fn counts_exactly_to_the_limit() {
        let flow = |n: usize| format!("a: {}{}\n", "[".repeat(n), "]".repeat(n));
        // `a` is one level, each `[` one more.
        assert_eq!(check(&flow(MAX_DEPTH - 1), MAX_DEPTH), Ok(()));
        assert_eq!(
            check(&flow(MAX_DEPTH), MAX_DEPTH),
            Err(TooDeep {
                path: "a".into(),
                line: 1,
                column: 4 + MAX_DEPTH - 1
            })
        );
        assert_eq!(check(&nested_block(MAX_DEPTH), MAX_DEPTH), Ok(()));
        let e = check(&nested_block(MAX_DEPTH + 1), MAX_DEPTH).unwrap_err();
        assert_eq!(e.line, MAX_DEPTH + 1);
        assert!(e.path.starts_with("k0.k1.k2."), "{e:?}");
        assert!(
            e.path.ends_with(&format!("k{}.leaf", MAX_DEPTH - 1)),
            "{e:?}"
        );
    }

    #[rstest]
    #[case::flow_lists("rules:\n  x: ", "[", "rules.x", 2)]
    #[case::flow_maps("", "{a: ", "(document)", 1)]
    #[case::entries("", "- ", "[][][]", 1)]
    fn refuses_deep_nesting(
        #[case] prefix: &str,
        #[case] unit: &str,
        #[case] path_start: &str,
        #[case] line: usize,
    ) {
        let text = format!("{prefix}{}\n", unit.repeat(100_000));
        let e = check(&text, MAX_DEPTH).unwrap_err();
        assert!(e.path.starts_with(path_start), "{e:?}");
        assert_eq!(e.line, line);
    }
}
