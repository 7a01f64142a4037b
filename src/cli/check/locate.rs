//! Where each field of a document is written: the line and column of every mapping key and
//! sequence item, by the field path findings carry (`spec.volumes[0].emptyDir`), so a
//! finding points at its field rather than at its object's first line. Block and flow YAML
//! and JSON (flow YAML) alike; a document that stops parsing keeps what was found before.

use std::collections::HashMap;

use saphyr_parser::{Event, Parser, Span};

/// A 1-based line and column (in characters) in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The position of every key and item of one document, by field path.
#[derive(Debug, Default)]
pub struct Positions {
    at: HashMap<String, Position>,
}

enum Frame {
    /// A mapping at `path`; `value_of` is the path of the key whose value comes next.
    Map {
        path: String,
        value_of: Option<String>,
    },
    /// A sequence at `path` and the index of its next item.
    Seq { path: String, next: usize },
}

fn join(base: &str, key: &str) -> String {
    if base.is_empty() {
        key.to_owned()
    } else {
        format!("{base}.{key}")
    }
}

impl Positions {
    /// Indexes `doc`, a document whose first line is line `first_line` of its file.
    pub fn index(doc: &str, first_line: usize) -> Positions {
        let mut at = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let pos = |span: &Span| Position {
            line: first_line + span.start.line() - 1,
            column: span.start.col() + 1,
        };
        // A key that is itself a mapping or a sequence (rare, never a Kubernetes field): its
        // events are skipped, counted by depth.
        let mut skip = 0usize;
        for event in Parser::new_from_str(doc) {
            let Ok((event, span)) = event else { break };
            let starts = matches!(
                event,
                Event::Scalar(..)
                    | Event::Alias(_)
                    | Event::MappingStart(..)
                    | Event::SequenceStart(..)
            );
            let ends = matches!(event, Event::MappingEnd | Event::SequenceEnd);
            if skip > 0 {
                match event {
                    Event::MappingStart(..) | Event::SequenceStart(..) => skip += 1,
                    _ if ends => skip -= 1,
                    _ => {}
                }
                continue;
            }
            if ends {
                stack.pop();
                continue;
            }
            if !starts {
                continue;
            }
            // The path of the node that starts here, or None when it is a key.
            let path = match stack.last_mut() {
                None => Some(String::new()),
                Some(Frame::Seq { path, next }) => {
                    let p = format!("{path}[{next}]");
                    *next += 1;
                    at.entry(p.clone()).or_insert(pos(&span));
                    Some(p)
                }
                Some(Frame::Map { path, value_of }) => match value_of.take() {
                    Some(p) => Some(p),
                    None => {
                        let key = match &event {
                            Event::Scalar(text, ..) => join(path, text),
                            // Not addressable by a field path: consumed, never matched.
                            _ => {
                                skip = usize::from(!matches!(event, Event::Alias(_)));
                                "\u{0}".to_owned()
                            }
                        };
                        at.insert(key.clone(), pos(&span));
                        *value_of = Some(key);
                        None
                    }
                },
            };
            if let Some(path) = path {
                if path.is_empty() {
                    at.entry(path.clone()).or_insert(pos(&span));
                }
                match event {
                    Event::MappingStart(..) => stack.push(Frame::Map {
                        path,
                        value_of: None,
                    }),
                    Event::SequenceStart(..) => stack.push(Frame::Seq { path, next: 0 }),
                    _ => {}
                }
            }
        }
        Positions { at }
    }

    /// Where the field `path` of the object at `base` is written: the field itself, else
    /// its nearest written ancestor (a finding about a field the manifest leaves out, such
    /// as the `emptyDir` of a volume without a source, points at the volume).
    pub fn locate(&self, base: &str, path: &str) -> Option<Position> {
        let mut full = join(base, path);
        loop {
            if let Some(p) = self.at.get(&full) {
                return Some(*p);
            }
            if full.len() <= base.len() {
                return None;
            }
            let cut = match full.rfind(['.', '[']) {
                Some(i) if i >= base.len() => i,
                _ => base.len(),
            };
            full.truncate(cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(p: &Positions, path: &str) -> (usize, usize) {
        let p = p.locate("", path).unwrap();
        (p.line, p.column)
    }

    #[test]
    fn block_yaml_keys_and_items() {
        let doc = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    volumeMounts:\n    - {name: t, mountPath: /t}\n  volumes:\n  - name: t\n    emptyDir: {}\n";
        let p = Positions::index(doc, 10);
        assert_eq!(at(&p, "spec"), (12, 1));
        assert_eq!(at(&p, "spec.containers[0]"), (14, 5));
        assert_eq!(at(&p, "spec.containers[0].volumeMounts[0]"), (16, 7));
        assert_eq!(
            at(&p, "spec.containers[0].volumeMounts[0].mountPath"),
            (16, 17)
        );
        assert_eq!(at(&p, "spec.volumes[0].emptyDir"), (19, 5));
        // Not written: the nearest ancestor that is.
        assert_eq!(at(&p, "spec.volumes[0].emptyDir.sizeLimit"), (19, 5));
        assert_eq!(at(&p, "spec.volumes[3]"), (17, 3));
        assert!(p.locate("items[2]", "spec").is_none());
    }

    #[test]
    fn flow_yaml_and_json() {
        let doc = "{\"kind\": \"Pod\", \"spec\": {\"volumes\": [{\"name\": \"a\"},\n  {\"name\": \"b\", \"emptyDir\": {}}]}}";
        let p = Positions::index(doc, 1);
        assert_eq!(at(&p, "spec.volumes[1].emptyDir"), (2, 17));
        assert_eq!(at(&p, "spec.volumes[0]"), (1, 38));
        let p = Positions::index(
            "kind: List\nitems:\n- {kind: Pod, spec: {volumes: [{name: x}]}}\n",
            1,
        );
        let v = p.locate("items[0]", "spec.volumes[0].emptyDir").unwrap();
        assert_eq!((v.line, v.column), (3, 32));
    }

    #[test]
    fn complex_keys_anchors_and_broken_documents() {
        let doc = "? [a, b]\n: 1\nspec: &s {x: 1}\nother: *s\nlast: [\n";
        let p = Positions::index(doc, 1);
        assert_eq!(at(&p, "spec.x"), (3, 11));
        assert_eq!(at(&p, "other"), (4, 1));
        // Parsing stops at the broken flow sequence; what came before is kept.
        assert_eq!(at(&p, "last"), (5, 1));
    }
}
