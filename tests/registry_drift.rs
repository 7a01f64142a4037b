//! The rule registry is the single source: the README table, the chart's policy schema and
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
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let begin = readme
        .find("<!-- rules:begin")
        .expect("README has the rules:begin marker");
    let table_start = readme[begin..].find('\n').unwrap() + begin + 1;
    let end = readme.find("<!-- rules:end -->").expect("rules:end marker");
    let table = &readme[table_start..end];
    let generated = volguard(&["rules", "-o", "markdown"]);
    assert_eq!(
        table, generated,
        "README rule table differs from `volguard rules -o markdown`; paste its output between the markers"
    );
}

#[test]
fn chart_policy_schema_is_the_registry() {
    let values: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("charts/volguard/values.schema.json")).unwrap(),
    )
    .unwrap();
    let mut generated: serde_json::Value =
        serde_json::from_str(&volguard(&["policy", "schema"])).unwrap();
    // The chart embeds the schema without the document-level keys.
    let obj = generated.as_object_mut().unwrap();
    obj.remove("$schema");
    obj.remove("title");
    assert_eq!(
        values["properties"]["policy"], generated,
        "charts/volguard/values.schema.json .properties.policy differs from `volguard policy schema`"
    );
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
