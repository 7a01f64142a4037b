//! Property test over generated Pod specs (and workloads carrying them): the engine never
//! panics, its output is deterministic, and every violation path exists in the object.

mod common;

use common::objects::{as_stored, object};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::Value;
use volguard::{Object, Operation, Policy, Request, evaluate};

/// Follows `spec.volumes[0].emptyDir` through a JSON value.
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = root;
    for seg in path.split('.') {
        let (key, idx) = match seg.split_once('[') {
            Some((k, rest)) => (k, Some(rest.trim_end_matches(']').parse::<usize>().ok()?)),
            None => (seg, None),
        };
        cur = cur.get(key)?;
        if let Some(i) = idx {
            cur = cur.get(i)?;
        }
    }
    Some(cur)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn engine_is_total_deterministic_and_paths_exist(
        (kind, value) in object(),
        (old_kind_value, update) in (object(), any::<bool>()),
    ) {
        let policy = Policy::parse("rules:\n  volume-type-allowed: {action: warn}\n  emptydir-ephemeral-storage-declared: {action: audit}\n  emptydir-size-limit-max: {maxTotal: 3Gi}\n", "p").unwrap();
        let obj: Object = Object::deserialize(value.clone()).unwrap();
        let old: Object = Object::deserialize(old_kind_value.1.clone()).unwrap();
        let req = Request {
            kind: &kind,
            namespace: "default",
            operation: if update { Operation::Update } else { Operation::Create },
            object: &obj,
            old_object: if update { Some(&old) } else { None },
        };
        let first = evaluate(&policy, &req);
        let second = evaluate(&policy, &req);
        prop_assert_eq!(&first, &second);
        // Decoding again gives the same verdict too.
        let again: Object = Object::deserialize(value.clone()).unwrap();
        prop_assert_eq!(&first, &evaluate(&policy, &Request { object: &again, ..req }));
        prop_assert_eq!(first.allowed, !first.findings.iter().any(|f| f.action == volguard::Action::Deny));
        // The engine judges (and points into) the object as the apiserver stores it, after
        // SetDefaults_Volume (pkg/apis/core/v1/defaults.go), offline as at admission.
        let stored = as_stored(value.clone(), "default");
        for f in &first.findings {
            prop_assert!(lookup(&stored, &f.path).is_some(), "path {} missing in {}", f.path, stored);
            // At admission each line fits the apiserver's warning budget with its rule ID,
            // path and fix (admission::line); offline the finding is whole.
            let line = volguard::admission::line(f, volguard::admission::MAX_LINE);
            prop_assert!(line.len() <= volguard::admission::MAX_LINE, "{}", line);
            let head = format!("[{}] {}: ", f.rule, f.path);
            prop_assert!(line.starts_with(&head), "{}", line);
            if let Some((_, fix)) = f.message.rsplit_once("; ")
                && head.len() + fix.len() + f.note().len() + 24 < volguard::admission::MAX_LINE
            {
                prop_assert!(line.ends_with(&format!("; {fix}{}", f.note())), "{}", line);
            }
        }
    }
}
