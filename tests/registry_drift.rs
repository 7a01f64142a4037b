//! The rule registry is the single source: the rule table of docs/rules.md, the chart's policy schema and
//! `volguard rules` are checked against it.

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn volguard(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_volguard"))
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn readme_rule_table_is_the_registry() {
    let readme = std::fs::read_to_string(root().join("docs/rules.md")).unwrap();
    let begin = readme
        .find("<!-- rules:begin")
        .expect("docs/rules.md has the rules:begin marker");
    let table_start = readme[begin..].find('\n').unwrap() + begin + 1;
    let end = readme.find("<!-- rules:end -->").expect("rules:end marker");
    let table = &readme[table_start..end];
    let generated = volguard(&["rules", "-o", "markdown"]);
    assert_eq!(
        table, generated,
        "docs/rules.md rule table differs from `volguard rules -o markdown`; paste its output between the markers"
    );
}

/// The chart does not embed the policy schema: a policy the binary refuses is refused by
/// the binary itself, in the chart's pre-install/pre-upgrade hook, with its own message
/// (charts/volguard/tests/test_chart.py `test_policy_the_binary_refuses_never_reaches_a_release`),
/// not by a JSON-schema pattern first. `volguard policy schema` (for editors) covers
/// every rule of the registry.
#[test]
fn chart_leaves_the_policy_to_the_binary_and_the_schema_covers_the_registry() {
    let values: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/volguard/values.schema.json")).unwrap(),
    )
    .unwrap();
    let policy = &values["properties"]["policy"];
    assert_eq!(policy["type"], serde_json::json!(["object", "null"]));
    assert!(policy.get("properties").is_none(), "{policy}");
    let generated: serde_json::Value =
        serde_json::from_str(&volguard(&["policy", "schema"])).unwrap();
    let rules = generated["properties"]["rules"]["properties"]
        .as_object()
        .expect("rules in the policy schema");
    assert_eq!(rules.len(), volguard::RULES.len());
    for r in volguard::RULES {
        assert!(
            rules.contains_key(r.name()),
            "`volguard policy schema` lacks {}",
            r.name()
        );
    }
}

#[test]
fn rules_json_lists_every_rule_with_its_default() {
    let rules: serde_json::Value =
        serde_json::from_str(&volguard(&["rules", "-o", "json"])).unwrap();
    let rules = rules.as_array().unwrap();
    assert_eq!(rules.len(), volguard::RULES.len());
    for (doc, r) in rules.iter().zip(volguard::RULES) {
        assert_eq!(doc["rule"], r.name());
        assert_eq!(doc["default_action"], r.meta.default_action.as_str());
        let names: Vec<&str> = doc["options"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap())
            .collect();
        let want: Vec<&str> = r.meta.options.iter().map(|o| o.name).collect();
        assert_eq!(names, want, "{}", r.name());
    }
}
