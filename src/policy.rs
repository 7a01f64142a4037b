//! The policy: a strictly parsed YAML document, validated once, resolved per namespace.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::paths::PathPattern;
use crate::quantity::Quantity;
use crate::rules::{RULES, RuleId};

/// The embedded default policy, printed by `volguard policy default`.
pub const DEFAULT_POLICY_YAML: &str = include_str!("policy/default.yaml");

/// Volume source keys a `volume-type-allowed.allowed` list may name.
pub const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// What a rule's violations do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Off,
    Audit,
    Warn,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Off => "off",
            Action::Audit => "audit",
            Action::Warn => "warn",
            Action::Deny => "deny",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Action;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("one of deny, warn, audit, off")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Action, E> {
                match v {
                    "deny" => Ok(Action::Deny),
                    "warn" => Ok(Action::Warn),
                    "audit" => Ok(Action::Audit),
                    "off" => Ok(Action::Off),
                    other => Err(E::custom(format_args!(
                        "unknown action {other:?} (expected one of deny, warn, audit, off)"
                    ))),
                }
            }
            // YAML 1.1 tools (Helm, kubectl) turn a bare `off` into `false`.
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Action, E> {
                if v {
                    Err(E::custom(
                        "`true` is not an action (expected one of deny, warn, audit, off)",
                    ))
                } else {
                    Ok(Action::Off)
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// Global rollout mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Warn,
    Audit,
}

impl Mode {
    /// The action a rule's configured action becomes under this mode.
    pub fn apply(self, action: Action) -> Action {
        match (self, action) {
            (Mode::Warn, Action::Deny) => Action::Warn,
            (Mode::Audit, Action::Deny | Action::Warn) => Action::Audit,
            (_, a) => a,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Warn => "warn",
            Mode::Audit => "audit",
        }
    }
}

/// Which emptyDir media `emptydir-size-limit-required` applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Disk,
    Memory,
}

/// A namespace glob (`*`, `?`).
#[derive(Debug, Clone)]
pub struct NsGlob(glob::Pattern);

impl NsGlob {
    pub fn matches(&self, ns: &str) -> bool {
        self.0.matches(ns)
    }
}

impl<'de> Deserialize<'de> for NsGlob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() {
            return Err(serde::de::Error::custom("empty namespace pattern"));
        }
        glob::Pattern::new(&s)
            .map(NsGlob)
            .map_err(|e| serde::de::Error::custom(format_args!("invalid glob {s:?}: {}", e.msg)))
    }
}

/// One rule's settings as written: every field optional, merged field by field.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RuleSpec {
    pub action: Option<Action>,
    pub paths: Option<Vec<PathPattern>>,
    pub allowed: Option<Vec<String>>,
    pub media: Option<Vec<MediaKind>>,
    pub max_disk: Option<Quantity>,
    pub max_memory: Option<Quantity>,
    pub max_total: Option<Quantity>,
}

impl RuleSpec {
    fn merge(&mut self, over: &RuleSpec) {
        macro_rules! take {
            ($($f:ident),*) => { $( if over.$f.is_some() { self.$f = over.$f.clone(); } )* };
        }
        take!(
            action, paths, allowed, media, max_disk, max_memory, max_total
        );
    }

    /// Names of the options set (other than `action`).
    fn options_set(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.paths.is_some() {
            v.push("paths");
        }
        if self.allowed.is_some() {
            v.push("allowed");
        }
        if self.media.is_some() {
            v.push("media");
        }
        if self.max_disk.is_some() {
            v.push("maxDisk");
        }
        if self.max_memory.is_some() {
            v.push("maxMemory");
        }
        if self.max_total.is_some() {
            v.push("maxTotal");
        }
        v
    }
}

/// A rule's effective settings for one namespace.
#[derive(Debug, Clone)]
pub struct RuleConfig {
    pub action: Action,
    pub paths: Vec<PathPattern>,
    pub allowed: Vec<String>,
    pub media: Vec<MediaKind>,
    pub max_disk: Quantity,
    pub max_memory: Quantity,
    pub max_total: Option<Quantity>,
}

impl RuleConfig {
    fn resolve(spec: &RuleSpec) -> Self {
        RuleConfig {
            action: spec.action.unwrap_or(Action::Off),
            paths: spec.paths.clone().unwrap_or_default(),
            allowed: spec.allowed.clone().unwrap_or_default(),
            media: spec.media.clone().unwrap_or_default(),
            max_disk: spec.max_disk.unwrap_or(Quantity::ZERO),
            max_memory: spec.max_memory.unwrap_or(Quantity::ZERO),
            max_total: spec.max_total,
        }
    }
}

/// The effective settings of every rule, indexed by `RuleId`.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<RuleConfig>,
}

impl RuleSet {
    pub fn get(&self, id: RuleId) -> &RuleConfig {
        &self.rules[id as usize]
    }
}

/// `policy.yaml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyFile {
    mode: Option<Mode>,
    exempt_namespaces: Option<Vec<NsGlob>>,
    allow_exemption_annotation: Option<bool>,
    rules: Option<BTreeMap<String, RuleSpec>>,
    namespace_overrides: Option<Vec<OverrideFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OverrideFile {
    namespaces: Vec<NsGlob>,
    #[serde(default)]
    rules: BTreeMap<String, RuleSpec>,
}

#[derive(Debug, Clone)]
struct Override {
    namespaces: Vec<NsGlob>,
    rules: Vec<(RuleId, RuleSpec)>,
}

/// A validated policy, ready to evaluate with. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub exempt_namespaces: Vec<NsGlob>,
    pub allow_exemption_annotation: bool,
    base_specs: Vec<RuleSpec>,
    base: RuleSet,
    overrides: Vec<Override>,
    /// Hex SHA-256 of the source text (first 16 hex digits), for metrics and logs.
    pub hash: String,
}

/// A policy that cannot be used, with the file, key path and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct PolicyError {
    pub file: String,
    pub path: String,
    pub message: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::parse(DEFAULT_POLICY_YAML, "default.yaml")
            .expect("the embedded default policy is valid")
    }
}

fn known_rules() -> String {
    RULES.iter().map(|r| r.name).collect::<Vec<_>>().join(", ")
}

impl Policy {
    /// Parses and validates a policy document. `file` names it in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let err = |path: String, message: String| PolicyError {
            file: file.to_owned(),
            path,
            message,
        };
        let parsed: PolicyFile = if is_blank_yaml(text) {
            PolicyFile::default()
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            match serde_path_to_error::deserialize(de) {
                Ok(p) => p,
                Err(e) => {
                    let path = e.path().to_string();
                    let inner = e.into_inner();
                    let (path, message) = explain_yaml_error(&path, &inner);
                    return Err(err(path, message));
                }
            }
        };

        let defaults = default_specs();
        let mut base_specs = defaults.clone();
        if let Some(rules) = &parsed.rules {
            for (id, spec) in resolve_rule_map(rules, "rules").map_err(|(p, m)| err(p, m))? {
                base_specs[id as usize].merge(&spec);
            }
        }
        let mut overrides = Vec::new();
        for (i, o) in parsed
            .namespace_overrides
            .unwrap_or_default()
            .into_iter()
            .enumerate()
        {
            if o.namespaces.is_empty() {
                return Err(err(
                    format!("namespaceOverrides[{i}].namespaces"),
                    "must list at least one namespace pattern".into(),
                ));
            }
            let rules = resolve_rule_map(&o.rules, &format!("namespaceOverrides[{i}].rules"))
                .map_err(|(p, m)| err(p, m))?;
            overrides.push(Override {
                namespaces: o.namespaces,
                rules,
            });
        }
        let policy = Policy {
            mode: parsed.mode.unwrap_or(Mode::Enforce),
            exempt_namespaces: parsed.exempt_namespaces.unwrap_or_else(|| {
                ["kube-system", "kube-public", "kube-node-lease"]
                    .iter()
                    .map(|s| NsGlob(glob::Pattern::new(s).expect("literal")))
                    .collect()
            }),
            allow_exemption_annotation: parsed.allow_exemption_annotation.unwrap_or(false),
            base: RuleSet {
                rules: base_specs.iter().map(RuleConfig::resolve).collect(),
            },
            base_specs,
            overrides,
            hash: hex16(text),
        };
        Ok(policy)
    }

    pub fn is_exempt_namespace(&self, ns: &str) -> bool {
        self.exempt_namespaces.iter().any(|g| g.matches(ns))
    }

    /// The rule settings in force for `namespace`: the base rules with every matching
    /// `namespaceOverrides` entry merged over them in order.
    pub fn rules_for(&self, namespace: &str) -> Cow<'_, RuleSet> {
        let matching: Vec<&Override> = self
            .overrides
            .iter()
            .filter(|o| o.namespaces.iter().any(|g| g.matches(namespace)))
            .collect();
        if matching.is_empty() {
            return Cow::Borrowed(&self.base);
        }
        let mut specs = self.base_specs.clone();
        for o in matching {
            for (id, spec) in &o.rules {
                specs[*id as usize].merge(spec);
            }
        }
        Cow::Owned(RuleSet {
            rules: specs.iter().map(RuleConfig::resolve).collect(),
        })
    }

    pub fn base_rules(&self) -> &RuleSet {
        &self.base
    }
}

fn default_specs() -> Vec<RuleSpec> {
    // The embedded default.yaml is the single source of truth for defaults.
    let file: PolicyFile =
        serde_yaml_ng::from_str(DEFAULT_POLICY_YAML).expect("embedded default parses");
    let rules = file.rules.unwrap_or_default();
    RULES
        .iter()
        .map(|r| rules.get(r.name).cloned().unwrap_or_default())
        .collect()
}

/// Maps rule names to IDs and checks each rule only sets the options it has.
fn resolve_rule_map(
    rules: &BTreeMap<String, RuleSpec>,
    at: &str,
) -> Result<Vec<(RuleId, RuleSpec)>, (String, String)> {
    let mut out = Vec::with_capacity(rules.len());
    for (name, spec) in rules {
        let Some(info) = RULES.iter().find(|r| r.name == name) else {
            return Err((
                format!("{at}.{name}"),
                format!("unknown rule (known: {})", known_rules()),
            ));
        };
        for opt in spec.options_set() {
            if !info.options.contains(&opt) {
                let has = if info.options.is_empty() {
                    "it has none besides action".to_owned()
                } else {
                    format!("it has: action, {}", info.options.join(", "))
                };
                return Err((
                    format!("{at}.{name}.{opt}"),
                    format!("not an option of this rule ({has})"),
                ));
            }
        }
        for (opt, q) in [
            ("maxDisk", spec.max_disk),
            ("maxMemory", spec.max_memory),
            ("maxTotal", spec.max_total),
        ] {
            if let Some(q) = q
                && !q.is_positive()
            {
                return Err((
                    format!("{at}.{name}.{opt}"),
                    format!("must be positive, got {q}"),
                ));
            }
        }
        if let Some(allowed) = &spec.allowed {
            for (i, key) in allowed.iter().enumerate() {
                if !VOLUME_SOURCES.contains(&key.as_str()) {
                    return Err((
                        format!("{at}.{name}.allowed[{i}]"),
                        format!(
                            "unknown volume type {key:?} (known: {})",
                            VOLUME_SOURCES.join(", ")
                        ),
                    ));
                }
            }
        }
        out.push((info.id, spec.clone()));
    }
    Ok(out)
}

/// True for a document that is empty or only comments (treated as `{}`).
fn is_blank_yaml(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t == "---"
    })
}

/// A YAML error's message without the " at line L column C" serde_yaml appends (callers
/// print the location their own way).
pub(crate) fn yaml_error_message(e: &serde_yaml_ng::Error) -> String {
    let mut msg = e.to_string();
    if let Some(i) = msg.find(" at line ") {
        msg.truncate(i);
    }
    msg
}

/// Turns serde's wording into `path: message` in the policy's own terms.
fn explain_yaml_error(path: &str, e: &serde_yaml_ng::Error) -> (String, String) {
    let mut msg = yaml_error_message(e);
    let location = e
        .location()
        .map(|l| format!(" (line {}, column {})", l.line(), l.column()));
    // serde_yaml may prefix its own "a.b: " path; we print ours.
    if let Some((head, rest)) = msg.split_once(": ")
        && !head.contains(' ')
    {
        msg = rest.to_owned();
    }
    let path = if path == "." || path.is_empty() {
        "(document)".to_owned()
    } else {
        path.to_owned()
    };
    if let Some(rest) = msg.strip_prefix("unknown field `")
        && let Some((_, expected)) = rest.split_once('`')
    {
        let expected = expected.trim_start_matches(", ").replace('`', "");
        return (
            path,
            format!("unknown key ({expected}){}", location.unwrap_or_default()),
        );
    }
    (path, format!("{msg}{}", location.unwrap_or_default()))
}

fn hex16(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn empty_and_default_are_the_same_policy() {
        let empty = Policy::parse("{}", "p.yaml").unwrap();
        let blank = Policy::parse("# nothing\n", "p.yaml").unwrap();
        let default = Policy::default();
        for r in &RULES {
            assert_eq!(
                empty.base.get(r.id).action,
                default.base.get(r.id).action,
                "{}",
                r.name
            );
            assert_eq!(
                blank.base.get(r.id).action,
                default.base.get(r.id).action,
                "{}",
                r.name
            );
        }
        assert_eq!(default.mode, Mode::Enforce);
        assert!(default.is_exempt_namespace("kube-system"));
        assert!(!default.is_exempt_namespace("default"));
        assert!(!default.allow_exemption_annotation);
    }

    #[test]
    fn defaults_match_the_catalogue() {
        let p = Policy::default();
        let r = p.base_rules();
        assert_eq!(r.get(RuleId::MountPathAbsolute).action, Action::Warn);
        assert_eq!(r.get(RuleId::VolumeTypeAllowed).action, Action::Off);
        assert_eq!(
            r.get(RuleId::EmptydirEphemeralStorageDeclared).action,
            Action::Off
        );
        assert_eq!(
            r.get(RuleId::EmptydirSizeLimitMax).max_disk,
            Quantity::parse("10Gi").unwrap()
        );
        assert_eq!(
            r.get(RuleId::EmptydirSizeLimitMax).max_memory,
            Quantity::parse("2Gi").unwrap()
        );
        assert_eq!(r.get(RuleId::EmptydirSizeLimitMax).max_total, None);
        assert_eq!(r.get(RuleId::MountPathReserved).paths.len(), 9);
        assert_eq!(
            r.get(RuleId::EmptydirSizeLimitRequired).media,
            vec![MediaKind::Disk, MediaKind::Memory]
        );
    }

    #[test]
    fn the_issue_example_parses_and_overrides_merge_field_by_field() {
        let p = Policy::parse(
            r#"
mode: enforce
exemptNamespaces: [kube-system, kube-public, kube-node-lease]
allowExemptionAnnotation: false
rules:
  emptydir-size-limit-max: {action: deny, maxDisk: 10Gi, maxMemory: 2Gi}
  mount-path-reserved: {action: deny, paths: ["/", "/proc/**"]}
namespaceOverrides:
  - namespaces: ["batch-*"]
    rules:
      emptydir-size-limit-max: {maxDisk: 50Gi}
  - namespaces: ["batch-?2"]
    rules:
      emptydir-size-limit-max: {action: warn}
"#,
            "policy.yaml",
        )
        .unwrap();
        let base = p.rules_for("web");
        assert!(matches!(base, Cow::Borrowed(_)));
        assert_eq!(
            base.get(RuleId::EmptydirSizeLimitMax).max_disk,
            Quantity::parse("10Gi").unwrap()
        );
        let batch = p.rules_for("batch-a");
        let max = batch.get(RuleId::EmptydirSizeLimitMax);
        assert_eq!(max.max_disk, Quantity::parse("50Gi").unwrap());
        assert_eq!(max.max_memory, Quantity::parse("2Gi").unwrap());
        assert_eq!(max.action, Action::Deny);
        let both = p.rules_for("batch-x2");
        let max = both.get(RuleId::EmptydirSizeLimitMax);
        assert_eq!(max.max_disk, Quantity::parse("50Gi").unwrap());
        assert_eq!(max.action, Action::Warn);
    }

    #[rstest]
    #[case::unknown_rule(
        "rules:\n  no-such-rule: {action: deny}\n",
        "rules.no-such-rule",
        "unknown rule (known: mount-volume-exists"
    )]
    #[case::unknown_top_key("mdoe: warn\n", "mdoe", "unknown key (expected one of mode")]
    #[case::unknown_rule_key(
        "rules:\n  volume-unused: {acton: deny}\n",
        "rules.volume-unused.acton",
        "unknown key"
    )]
    #[case::bad_action(
        "rules:\n  volume-unused: {action: block}\n",
        "rules.volume-unused.action",
        "unknown action \"block\""
    )]
    #[case::bad_mode("mode: strict\n", "mode", "unknown variant `strict`")]
    #[case::bad_quantity(
        "rules:\n  emptydir-size-limit-max: {maxDisk: lots}\n",
        "rules.emptydir-size-limit-max.maxDisk",
        "\"lots\" is not a valid quantity"
    )]
    #[case::zero_quantity(
        "rules:\n  emptydir-size-limit-max: {maxDisk: 0}\n",
        "rules.emptydir-size-limit-max.maxDisk",
        "must be positive"
    )]
    #[case::bad_glob(
        "exemptNamespaces: [\"kube-[\"]\n",
        "exemptNamespaces[0]",
        "invalid glob"
    )]
    #[case::option_of_other_rule(
        "rules:\n  volume-unused: {maxDisk: 1Gi}\n",
        "rules.volume-unused.maxDisk",
        "not an option of this rule"
    )]
    #[case::bad_reserved_path(
        "rules:\n  mount-path-reserved: {paths: [etc]}\n",
        "rules.mount-path-reserved.paths[0]",
        "not a valid reserved path"
    )]
    #[case::bad_volume_type(
        "rules:\n  volume-type-allowed: {allowed: [hostpath]}\n",
        "rules.volume-type-allowed.allowed[0]",
        "unknown volume type \"hostpath\""
    )]
    #[case::bad_media(
        "rules:\n  emptydir-size-limit-required: {media: [ssd]}\n",
        "rules.emptydir-size-limit-required.media[0]",
        "unknown variant `ssd`"
    )]
    #[case::override_unknown_rule(
        "namespaceOverrides:\n  - namespaces: [a]\n    rules: {nope: {}}\n",
        "namespaceOverrides[0].rules.nope",
        "unknown rule"
    )]
    #[case::override_no_namespaces(
        "namespaceOverrides:\n  - namespaces: []\n",
        "namespaceOverrides[0].namespaces",
        "at least one"
    )]
    #[case::wrong_type(
        "allowExemptionAnnotation: maybe\n",
        "allowExemptionAnnotation",
        "invalid type"
    )]
    #[case::not_a_map("- a\n- b\n", "(document)", "invalid type")]
    fn rejects(#[case] text: &str, #[case] path: &str, #[case] contains: &str) {
        let e = Policy::parse(text, "policy.yaml").unwrap_err();
        assert_eq!(e.file, "policy.yaml");
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(contains), "{e}");
        assert!(
            e.to_string().starts_with(&format!("policy.yaml: {path}: ")),
            "{e}"
        );
    }

    #[test]
    fn yaml_syntax_error_names_a_line() {
        let e = Policy::parse("rules:\n  a: [\n", "p.yaml").unwrap_err();
        assert!(e.message.contains("line"), "{e}");
    }

    #[test]
    fn bare_off_from_yaml_1_1_tools_means_off() {
        let p = Policy::parse("rules:\n  volume-unused: {action: false}\n", "p").unwrap();
        assert_eq!(p.base_rules().get(RuleId::VolumeUnused).action, Action::Off);
        assert!(Policy::parse("rules:\n  volume-unused: {action: true}\n", "p").is_err());
    }

    #[test]
    fn modes_map_actions() {
        assert_eq!(Mode::Warn.apply(Action::Deny), Action::Warn);
        assert_eq!(Mode::Warn.apply(Action::Audit), Action::Audit);
        assert_eq!(Mode::Audit.apply(Action::Deny), Action::Audit);
        assert_eq!(Mode::Audit.apply(Action::Warn), Action::Audit);
        assert_eq!(Mode::Audit.apply(Action::Off), Action::Off);
        assert_eq!(Mode::Enforce.apply(Action::Deny), Action::Deny);
    }

    #[test]
    fn hash_changes_with_text() {
        let a = Policy::parse("{}", "p").unwrap();
        let b = Policy::parse("mode: warn", "p").unwrap();
        assert_ne!(a.hash, b.hash);
        assert_eq!(a.hash.len(), 16);
    }
}
