//! The policy: a strictly parsed YAML document, validated once, resolved per namespace.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::engine::quantity::PositiveQuantity;
use crate::engine::rules::{Action, RULES, RuleId, RuleOptions, RuleSet, RuleSetting};

mod depth;

/// The embedded default policy, printed by `volguard policy default`.
pub const DEFAULT_POLICY_YAML: &str = include_str!("policy/default.yaml");

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

/// What happens to an object created by a trusted workload controller (with a controller
/// `ownerReference`) that the policy would deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ControllerObjects {
    /// Denials become warnings: the workload the user wrote is where the verdict belongs.
    Warn,
    /// Judged like any other object.
    Enforce,
}

/// The identities kube-controller-manager's workload controllers create objects as: each
/// controller's service account (`--use-service-account-credentials`, the default of
/// kubeadm and managed clusters) or the manager's own credentials
/// (`cmd/kube-controller-manager/app/{apps,batch,core}.go`: `ClientOrDie("<name>")`; see
/// tests/data/kubelet/NOTES.md §9).
pub const DEFAULT_TRUSTED_CONTROLLERS: &[&str] = &[
    "system:serviceaccount:kube-system:replicaset-controller",
    "system:serviceaccount:kube-system:deployment-controller",
    "system:serviceaccount:kube-system:statefulset-controller",
    "system:serviceaccount:kube-system:daemon-set-controller",
    "system:serviceaccount:kube-system:job-controller",
    "system:serviceaccount:kube-system:cronjob-controller",
    "system:serviceaccount:kube-system:replication-controller",
    "system:kube-controller-manager",
];

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

/// `policy.yaml` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyFile {
    mode: Option<Mode>,
    exempt_namespaces: Option<Vec<NsGlob>>,
    allow_exemption_annotation: Option<bool>,
    controller_objects: Option<ControllerObjects>,
    trusted_controllers: Option<Vec<Username>>,
    rules: Option<BTreeMap<String, RuleMap>>,
    namespace_overrides: Option<Vec<OverrideFile>>,
    defaults: Option<Defaults>,
}

/// `defaults`: what the mutating endpoint (`/mutate`) fills in when an object leaves it out.
/// Empty (nothing is ever added) unless the policy sets it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Defaults {
    #[serde(default)]
    pub empty_dir: EmptyDirDefaults,
}

/// `defaults.emptyDir`: the `sizeLimit` given to an emptyDir that has none, per medium.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmptyDirDefaults {
    /// For `medium: ""` (disk-backed).
    #[serde(default)]
    pub disk_size_limit: Option<PositiveQuantity>,
    /// For `medium: Memory` (tmpfs).
    #[serde(default)]
    pub memory_size_limit: Option<PositiveQuantity>,
}

impl Defaults {
    /// Whether any default is set (otherwise `/mutate` never patches).
    pub fn is_empty(&self) -> bool {
        self.empty_dir.disk_size_limit.is_none() && self.empty_dir.memory_size_limit.is_none()
    }
}

/// A Kubernetes username, exactly as in `userInfo.username` (non-empty, no surrounding spaces).
#[derive(Debug)]
struct Username(String);

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.trim() != s {
            return Err(serde::de::Error::custom(format_args!(
                "{s:?} is not a username (expected e.g. system:serviceaccount:argo-rollouts:argo-rollouts)"
            )));
        }
        Ok(Username(s))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct OverrideFile {
    namespaces: Vec<NsGlob>,
    #[serde(default)]
    rules: BTreeMap<String, RuleMap>,
}

/// One rule's settings as written (`action` and options), merged key by key.
type RuleMap = serde_yaml_ng::Mapping;

#[derive(Debug, Clone)]
struct Override {
    namespaces: Vec<NsGlob>,
    rules: Vec<(RuleId, RuleMap)>,
    /// The base rules with only this override merged (the usual case: one match).
    alone: RuleSet,
}

/// A validated policy, ready to evaluate with. Cheap to share behind an `Arc`.
#[derive(Debug, Clone)]
pub struct Policy {
    pub mode: Mode,
    pub exempt_namespaces: Vec<NsGlob>,
    pub allow_exemption_annotation: bool,
    /// Denials of objects created by a trusted controller: `warn` (default) or `enforce`.
    pub controller_objects: ControllerObjects,
    /// Usernames whose objects with a controller `ownerReference` are controller-created.
    pub trusted_controllers: Vec<String>,
    /// Each rule's merged settings as written (defaults, then `rules`), for overrides.
    base_maps: Vec<RuleMap>,
    base: RuleSet,
    overrides: Vec<Override>,
    /// What `/mutate` adds to objects that leave it out (`defaults`).
    pub defaults: Defaults,
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
    RULES
        .iter()
        .map(|r| r.name())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Policy {
    /// Parses and validates a policy document. `file` names it in error messages.
    pub fn parse(text: &str, file: &str) -> Result<Policy, PolicyError> {
        let err = |path: String, message: String| PolicyError {
            file: file.to_owned(),
            path,
            message,
        };
        let parsed = read_document(text).map_err(|(p, m)| err(p, m))?;
        let mut base_maps = default_maps();
        if let Some(rules) = &parsed.rules {
            for (id, map) in resolve_rule_map(rules, "rules").map_err(|(p, m)| err(p, m))? {
                merge(&mut base_maps[id as usize], &map);
            }
        }
        let base = resolve(&base_maps, "rules").map_err(|(p, m)| err(p, m))?;
        let overrides =
            resolve_overrides(parsed.namespace_overrides.unwrap_or_default(), &base_maps)
                .map_err(|(p, m)| err(p, m))?;
        let defaults = parsed.defaults.unwrap_or_default();
        check_defaults_within_maxima(&defaults, &base, &overrides).map_err(|(p, m)| err(p, m))?;
        let policy = Policy {
            mode: parsed.mode.unwrap_or(Mode::Enforce),
            exempt_namespaces: parsed.exempt_namespaces.unwrap_or_else(|| {
                ["kube-system", "kube-public", "kube-node-lease"]
                    .iter()
                    .map(|s| NsGlob(glob::Pattern::new(s).expect("literal")))
                    .collect()
            }),
            allow_exemption_annotation: parsed.allow_exemption_annotation.unwrap_or(false),
            controller_objects: parsed.controller_objects.unwrap_or(ControllerObjects::Warn),
            trusted_controllers: match parsed.trusted_controllers {
                Some(list) => list.into_iter().map(|u| u.0).collect(),
                None => DEFAULT_TRUSTED_CONTROLLERS
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect(),
            },
            base,
            base_maps,
            overrides,
            defaults,
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
        let mut matching = self
            .overrides
            .iter()
            .filter(|o| o.namespaces.iter().any(|g| g.matches(namespace)));
        let Some(first) = matching.next() else {
            return Cow::Borrowed(&self.base);
        };
        let Some(second) = matching.next() else {
            return Cow::Borrowed(&first.alone);
        };
        let mut maps = self.base_maps.clone();
        for o in [first, second].into_iter().chain(matching) {
            for (id, map) in &o.rules {
                merge(&mut maps[*id as usize], map);
            }
        }
        // Each override was validated merged over the base; their keys are independent, so
        // the combination is valid too. Should that ever not hold, the first match stands.
        match resolve(&maps, "namespaceOverrides") {
            Ok(set) => Cow::Owned(set),
            Err(_) => Cow::Borrowed(&first.alone),
        }
    }

    /// Whether `username` is one of `trustedControllers`.
    pub fn is_trusted_controller(&self, username: &str) -> bool {
        self.trusted_controllers.iter().any(|u| u == username)
    }

    pub fn base_rules(&self) -> &RuleSet {
        &self.base
    }
}

/// The document as written: its nesting checked before the YAML parser (whose scanner is
/// quadratic on deep nesting), then decoded strictly; a blank document is `{}`.
fn read_document(text: &str) -> Result<PolicyFile, (String, String)> {
    if let Err(d) = depth::check(text, depth::MAX_DEPTH) {
        return Err((
            d.path,
            format!(
                "nested deeper than {} levels (line {}, column {}); a policy is a few levels deep",
                depth::MAX_DEPTH,
                d.line,
                d.column
            ),
        ));
    }
    if is_blank_yaml(text) {
        return Ok(PolicyFile::default());
    }
    let de = serde_yaml_ng::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        explain_yaml_error(&path, &inner)
    })
}

/// Each `namespaceOverrides` entry, checked and resolved merged over the base rules alone.
fn resolve_overrides(
    entries: Vec<OverrideFile>,
    base_maps: &[RuleMap],
) -> Result<Vec<Override>, (String, String)> {
    let mut overrides = Vec::new();
    for (i, o) in entries.into_iter().enumerate() {
        let at = format!("namespaceOverrides[{i}]");
        if o.namespaces.is_empty() {
            return Err((
                format!("{at}.namespaces"),
                "must list at least one namespace pattern".into(),
            ));
        }
        let at = format!("{at}.rules");
        let rules = resolve_rule_map(&o.rules, &at)?;
        let mut maps = base_maps.to_vec();
        for (id, map) in &rules {
            merge(&mut maps[*id as usize], map);
        }
        let alone = resolve(&maps, &at)?;
        overrides.push(Override {
            namespaces: o.namespaces,
            rules,
            alone,
        });
    }
    Ok(overrides)
}

/// A default `sizeLimit` that `emptydir-size-limit-max` would deny (above `maxDisk`/`maxMemory`
/// or `maxTotal`, in the base rules or any namespace override) is refused: volguard would
/// deny what it wrote itself. Checked whatever the rule's action, so turning the rule on later
/// cannot start denying patched objects.
fn check_defaults_within_maxima(
    defaults: &Defaults,
    base: &RuleSet,
    overrides: &[Override],
) -> Result<(), (String, String)> {
    let sets = std::iter::once(("rules".to_owned(), base)).chain(
        overrides
            .iter()
            .enumerate()
            .map(|(i, o)| (format!("namespaceOverrides[{i}].rules"), &o.alone)),
    );
    for (at, set) in sets {
        let max = set.emptydir_size_limit_max();
        let e = &defaults.empty_dir;
        for (key, value, per_medium, per_medium_key) in [
            ("diskSizeLimit", e.disk_size_limit, max.max_disk, "maxDisk"),
            (
                "memorySizeLimit",
                e.memory_size_limit,
                max.max_memory,
                "maxMemory",
            ),
        ] {
            let Some(value) = value else { continue };
            let limits = std::iter::once((per_medium, per_medium_key))
                .chain(max.max_total.map(|t| (t, "maxTotal")));
            for (limit, limit_key) in limits {
                if *value > *limit {
                    return Err((
                        format!("defaults.emptyDir.{key}"),
                        format!(
                            "{} is above {at}.emptydir-size-limit-max.{limit_key} ({}): objects patched with it would be denied; lower the default or raise the maximum",
                            *value, *limit
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Every rule's registry defaults as a policy mapping (`action` plus options).
fn default_maps() -> Vec<RuleMap> {
    RULES
        .iter()
        .map(|r| {
            let mut map = match RuleOptions::default_for(r.id).to_value() {
                serde_yaml_ng::Value::Mapping(m) => m,
                _ => RuleMap::new(),
            };
            map.insert(
                "action".into(),
                r.meta.default_action.as_str().to_owned().into(),
            );
            map
        })
        .collect()
}

/// Merges `over` into `base` key by key (lists and values are replaced whole).
fn merge(base: &mut RuleMap, over: &RuleMap) {
    for (k, v) in over {
        base.insert(k.clone(), v.clone());
    }
}

/// Checks rule names and that each rule only sets `action` and its own options.
fn resolve_rule_map(
    rules: &BTreeMap<String, RuleMap>,
    at: &str,
) -> Result<Vec<(RuleId, RuleMap)>, (String, String)> {
    let mut out = Vec::with_capacity(rules.len());
    for (name, map) in rules {
        let Some(id) = RuleId::from_name(name) else {
            return Err((
                format!("{at}.{name}"),
                format!("unknown rule (known: {})", known_rules()),
            ));
        };
        for key in map.keys() {
            let Some(key) = key.as_str() else {
                return Err((format!("{at}.{name}"), "keys must be strings".into()));
            };
            if key == "action" || id.meta().options.iter().any(|o| o.name == key) {
                continue;
            }
            let own: Vec<&str> = id.meta().options.iter().map(|o| o.name).collect();
            let has = if own.is_empty() {
                "it has none besides action".to_owned()
            } else {
                format!("it has: action, {}", own.join(", "))
            };
            let other_rules = RULES
                .iter()
                .any(|r| r.meta.options.iter().any(|o| o.name == key));
            let message = if other_rules {
                format!("not an option of this rule ({has})")
            } else {
                format!("unknown key ({has})")
            };
            return Err((format!("{at}.{name}.{key}"), message));
        }
        out.push((id, map.clone()));
    }
    Ok(out)
}

/// Turns merged mappings into typed settings; errors name `at.rule.key`.
fn resolve(maps: &[RuleMap], at: &str) -> Result<RuleSet, (String, String)> {
    let mut set = RuleSet::defaults();
    for (r, map) in RULES.iter().zip(maps) {
        let mut map = map.clone();
        let action = match map.remove("action") {
            None => r.meta.default_action,
            Some(v) => serde_yaml_ng::from_value::<Action>(v)
                .map_err(|e| (format!("{at}.{}.action", r.name()), yaml_error_message(&e)))?,
        };
        let options =
            RuleOptions::from_value(r.id, serde_yaml_ng::Value::Mapping(map)).map_err(|e| {
                let key = e.path().to_string();
                (
                    format!("{at}.{}.{key}", r.name()),
                    yaml_error_message(e.inner()),
                )
            })?;
        set.set(r.id, RuleSetting { action, options });
    }
    Ok(set)
}

/// The JSON schema of a policy document, generated from the rule registry (printed by
/// `volguard policy schema`; the chart's `values.schema.json` embeds it under `policy`).
pub fn schema() -> serde_json::Value {
    use serde_json::json;
    let rules = rules_schema();
    let globs = json!({"type": "array", "items": {"type": "string", "minLength": 1}});
    json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "volguard policy",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "mode": {"type": "string", "enum": ["enforce", "warn", "audit"]},
            "exemptNamespaces": globs,
            "allowExemptionAnnotation": {"type": "boolean"},
            "controllerObjects": {
                "description": "Objects created by a trusted controller with a controller ownerReference (Pods of ReplicaSets, ReplicaSets of Deployments, Jobs of CronJobs, ...): warn turns their denials into warnings, enforce judges them like any object.",
                "type": "string",
                "enum": ["warn", "enforce"]
            },
            "trustedControllers": {
                "description": "Usernames (userInfo.username) of the controllers whose objects controllerObjects applies to; replaces the default list (kube-controller-manager's workload controllers).",
                "type": "array",
                "items": {"type": "string", "minLength": 1}
            },
            "defaults": defaults_schema(),
            "rules": rules,
            "namespaceOverrides": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["namespaces"],
                    "properties": {
                        "namespaces": {
                            "type": "array",
                            "minItems": 1,
                            "items": {"type": "string", "minLength": 1}
                        },
                        "rules": rules,
                    }
                }
            }
        }
    })
}

/// `rules` (and an override's `rules`): one object per rule of the registry, its `action`
/// and its own options.
fn rules_schema() -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let mut rules = Map::new();
    for r in RULES {
        let mut props = Map::new();
        props.insert(
            "action".into(),
            json!({
                "description": "Quote \"off\": a bare off is YAML 1.1 for false.",
                "type": ["string", "boolean"],
                "enum": ["deny", "warn", "audit", "off", false]
            }),
        );
        for o in r.meta.options {
            let mut schema = (o.schema)();
            if let Value::Object(m) = &mut schema {
                m.entry("description").or_insert_with(|| o.help.into());
            }
            props.insert(o.name.into(), schema);
        }
        rules.insert(
            r.name().into(),
            json!({
                "type": "object",
                "description": r.meta.summary,
                "additionalProperties": false,
                "properties": props,
            }),
        );
    }
    json!({
        "type": "object",
        "additionalProperties": false,
        "properties": rules,
    })
}

/// `defaults`: what `/mutate` adds.
fn defaults_schema() -> serde_json::Value {
    let described = |d: &str| {
        let mut s = crate::engine::rules::quantity_schema();
        s["description"] = d.into();
        s
    };
    serde_json::json!({
        "description": "What the mutating endpoint (/mutate, chart value mutating.enabled) adds to objects that leave it out; nothing unless set.",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "emptyDir": {
                "description": "sizeLimit given to an emptyDir without one, by medium (HugePages and unknown media are never changed). At most emptydir-size-limit-max's maxima.",
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "diskSizeLimit": described(
                        "sizeLimit added to a disk-backed emptyDir (medium \"\") without one; at most emptydir-size-limit-max.maxDisk"
                    ),
                    "memorySizeLimit": described(
                        "sizeLimit added to a memory-backed emptyDir (medium Memory) without one; at most emptydir-size-limit-max.maxMemory"
                    ),
                }
            }
        }
    })
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
    use crate::engine::quantity::Quantity;
    use rstest::rstest;

    #[test]
    fn empty_and_default_are_the_same_policy() {
        let empty = Policy::parse("{}", "p.yaml").unwrap();
        let blank = Policy::parse("# nothing\n", "p.yaml").unwrap();
        let default = Policy::default();
        for r in RULES {
            for p in [&empty, &blank] {
                let (a, b) = (p.base.get(r.id), default.base.get(r.id));
                assert_eq!(a.action, b.action, "{}", r.name());
                assert_eq!(a.options.to_value(), b.options.to_value(), "{}", r.name());
            }
        }
        assert_eq!(default.mode, Mode::Enforce);
        assert!(default.is_exempt_namespace("kube-system"));
        assert!(!default.is_exempt_namespace("default"));
        assert!(!default.allow_exemption_annotation);
        assert_eq!(default.controller_objects, ControllerObjects::Warn);
        assert_eq!(default.trusted_controllers, DEFAULT_TRUSTED_CONTROLLERS);
        assert!(default.is_trusted_controller("system:kube-controller-manager"));
        assert!(!default.is_trusted_controller("kubernetes-admin"));
        for p in [&empty, &blank] {
            assert_eq!(p.trusted_controllers, default.trusted_controllers);
            assert_eq!(p.controller_objects, default.controller_objects);
        }
    }

    #[test]
    fn controller_settings_parse() {
        let p = Policy::parse(
            "controllerObjects: enforce\ntrustedControllers: [\"system:serviceaccount:argo-rollouts:argo-rollouts\"]\n",
            "p.yaml",
        )
        .unwrap();
        assert_eq!(p.controller_objects, ControllerObjects::Enforce);
        assert!(p.is_trusted_controller("system:serviceaccount:argo-rollouts:argo-rollouts"));
        assert!(!p.is_trusted_controller("system:kube-controller-manager"));
        let none = Policy::parse("trustedControllers: []\n", "p.yaml").unwrap();
        assert!(none.trusted_controllers.is_empty());
    }

    /// The embedded default.yaml (what `volguard policy default` prints) says exactly what
    /// the registry declares: same actions, same options.
    #[test]
    fn embedded_default_matches_the_registry() {
        let p = Policy::default();
        let registry = RuleSet::defaults();
        for r in RULES {
            let (got, want) = (p.base_rules().get(r.id), registry.get(r.id));
            assert_eq!(got.action, want.action, "{}", r.name());
            assert_eq!(
                got.options.to_value(),
                want.options.to_value(),
                "{}",
                r.name()
            );
        }
        let file: PolicyFile = serde_yaml_ng::from_str(DEFAULT_POLICY_YAML).unwrap();
        let listed: Vec<&str> = file
            .rules
            .as_ref()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut all: Vec<&str> = RULES.iter().map(|r| r.name()).collect();
        all.sort();
        assert_eq!(listed, all, "default.yaml lists every rule");
    }

    #[test]
    fn defaults_match_the_catalogue() {
        let p = Policy::default();
        let r = p.base_rules();
        assert_eq!(r.get(RuleId::MountPathAbsolute).action, Action::Warn);
        assert_eq!(r.get(RuleId::VolumeTypeAllowed).action, Action::Off);
        let max = r.emptydir_size_limit_max();
        assert_eq!(*max.max_disk, Quantity::parse("10Gi").unwrap());
        assert_eq!(*max.max_memory, Quantity::parse("2Gi").unwrap());
        assert_eq!(max.max_total, None);
        assert_eq!(r.mount_path_reserved().paths.len(), 9);
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
        let gi = |s| Quantity::parse(s).unwrap();
        let base = p.rules_for("web");
        assert!(matches!(base, Cow::Borrowed(_)));
        assert_eq!(*base.emptydir_size_limit_max().max_disk, gi("10Gi"));
        let batch = p.rules_for("batch-a");
        let max = batch.emptydir_size_limit_max();
        assert_eq!(*max.max_disk, gi("50Gi"));
        assert_eq!(*max.max_memory, gi("2Gi"));
        assert_eq!(batch.get(RuleId::EmptydirSizeLimitMax).action, Action::Deny);
        let both = p.rules_for("batch-x2");
        assert_eq!(*both.emptydir_size_limit_max().max_disk, gi("50Gi"));
        assert_eq!(both.get(RuleId::EmptydirSizeLimitMax).action, Action::Warn);
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
    #[case::bad_controller_objects(
        "controllerObjects: allow\n",
        "controllerObjects",
        "unknown variant `allow`"
    )]
    #[case::defaults_unknown_key(
        "defaults:\n  emptyDir: {diskSize: 1Gi}\n",
        "defaults.emptyDir.diskSize",
        "unknown key (expected diskSizeLimit or memorySizeLimit)"
    )]
    #[case::defaults_unknown_section(
        "defaults:\n  hostPath: {}\n",
        "defaults.hostPath",
        "unknown key (expected emptyDir)"
    )]
    #[case::defaults_bad_quantity(
        "defaults:\n  emptyDir: {diskSizeLimit: big}\n",
        "defaults.emptyDir.diskSizeLimit",
        "\"big\" is not a valid quantity"
    )]
    #[case::defaults_zero(
        "defaults:\n  emptyDir: {memorySizeLimit: 0Mi}\n",
        "defaults.emptyDir.memorySizeLimit",
        "must be positive"
    )]
    #[case::defaults_negative(
        "defaults:\n  emptyDir: {diskSizeLimit: -1Gi}\n",
        "defaults.emptyDir.diskSizeLimit",
        "must be positive"
    )]
    #[case::defaults_above_max_disk(
        "defaults:\n  emptyDir: {diskSizeLimit: 11Gi}\n",
        "defaults.emptyDir.diskSizeLimit",
        "11Gi is above rules.emptydir-size-limit-max.maxDisk (10Gi)"
    )]
    #[case::defaults_above_max_memory_even_when_off(
        "defaults:\n  emptyDir: {memorySizeLimit: 3Gi}\nrules:\n  emptydir-size-limit-max: {action: \"off\"}\n",
        "defaults.emptyDir.memorySizeLimit",
        "3Gi is above rules.emptydir-size-limit-max.maxMemory (2Gi)"
    )]
    #[case::defaults_above_max_total(
        "defaults:\n  emptyDir: {diskSizeLimit: 2Gi}\nrules:\n  emptydir-size-limit-max: {maxTotal: 1Gi}\n",
        "defaults.emptyDir.diskSizeLimit",
        "above rules.emptydir-size-limit-max.maxTotal (1Gi)"
    )]
    #[case::defaults_above_an_override(
        "defaults:\n  emptyDir: {diskSizeLimit: 1Gi}\nnamespaceOverrides:\n  - namespaces: [tiny]\n    rules: {emptydir-size-limit-max: {maxDisk: 512Mi}}\n",
        "defaults.emptyDir.diskSizeLimit",
        "1Gi is above namespaceOverrides[0].rules.emptydir-size-limit-max.maxDisk (512Mi)"
    )]
    #[case::empty_username(
        "trustedControllers: [\"\"]\n",
        "trustedControllers[0]",
        "is not a username"
    )]
    #[case::deep_flow_nesting(
        &format!("rules:\n  volume-unused: {}", "[".repeat(100_000)),
        "rules.volume-unused",
        "nested deeper than 64 levels (line 2, column 80)"
    )]
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
    fn defaults_parse_and_are_empty_by_default() {
        assert!(Policy::default().defaults.is_empty());
        assert!(
            Policy::parse("defaults: {}\n", "p")
                .unwrap()
                .defaults
                .is_empty()
        );
        let p = Policy::parse(
            "defaults:\n  emptyDir: {diskSizeLimit: 1024Mi, memorySizeLimit: 256Mi}\n",
            "p",
        )
        .unwrap();
        let e = &p.defaults.empty_dir;
        assert_eq!(*e.disk_size_limit.unwrap(), Quantity::parse("1Gi").unwrap());
        assert_eq!(
            *e.memory_size_limit.unwrap(),
            Quantity::parse("256Mi").unwrap()
        );
        // Exactly the maximum is fine.
        let p = Policy::parse("defaults:\n  emptyDir: {diskSizeLimit: 10Gi}\n", "p").unwrap();
        assert!(!p.defaults.is_empty());
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
