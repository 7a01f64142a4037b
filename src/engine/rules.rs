//! The rule catalogue: one registry line per rule, one file per rule.
//!
//! Each rule file declares, once, everything about its rule: `META` (ID, default action,
//! summary, explanation, the documentation of its options), `Options` (its typed options
//! with their defaults; `NoOptions` when it has none) and `check` (a pure function of the
//! Pod context that appends violations). The [`registry!`] line below wires the file in:
//! the `RuleId` variant, the `RULES` table, the typed options enum and the dispatch are all
//! generated from it, and the policy schema, `volguard rules`, the README table and the
//! embedded default policy are checked against it by tests.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::engine::model::{Container, EmptyDir, Medium, Spec, Volume, VolumeMount};
use crate::engine::paths::{self, PathStyle};
use crate::engine::quantity::{Quantity, QuantityError};
use crate::engine::resources;

#[cfg(test)]
pub(crate) mod testutil;

/// What a rule's violations do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
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

/// What a rule file declares about its rule (besides its options' types and defaults).
pub struct RuleMeta {
    /// The stable kebab-case ID used in policies, messages, metrics and reports.
    pub name: &'static str,
    pub default_action: Action,
    /// One line: what the rule flags.
    pub summary: &'static str,
    /// A paragraph: why it matters and what exactly is compared.
    pub explanation: &'static str,
    /// Each option besides `action`: name, JSON schema, help. Tests check these match the
    /// fields of the rule's `Options`.
    pub options: &'static [OptionDoc],
    /// What of this the apiserver already rejects itself, before any webhook runs ("" when
    /// nothing): where volguard adds value (StatefulSets, offline `check`, normalised
    /// paths). See tests/data/kubelet/NOTES.md §3 and §5.
    pub apiserver: &'static str,
}

/// Where the apiserver's own validation of volumes and mounts (`ValidatePodSpec`) runs: Pods,
/// and the templates of Deployments, ReplicaSets, DaemonSets, Jobs, CronJobs,
/// ReplicationControllers and PodTemplates (`ValidatePodTemplateSpec`). Not StatefulSet
/// templates: `ValidatePodTemplateSpecForStatefulSet` skips the Pod spec (until 1.34, and
/// from then on create only).
pub const APISERVER_SCOPE: &str = "Pods and the templates of every workload kind except StatefulSet (not validated until 1.34, then on create only)";

/// One option of a rule, for `volguard rules`, the policy schema and the README.
pub struct OptionDoc {
    /// The key in the policy (camelCase).
    pub name: &'static str,
    /// JSON schema of the value.
    pub schema: fn() -> serde_json::Value,
    pub help: &'static str,
}

/// Options of a rule that has none besides `action`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoOptions {}

/// JSON schema of a Kubernetes quantity option (the policy parser itself is stricter: the
/// exact `ParseQuantity` grammar and, where the option says so, a positive value).
pub fn quantity_schema() -> serde_json::Value {
    serde_json::json!({
        "description": "Kubernetes quantity, e.g. 10Gi",
        "oneOf": [
            {"type": "string", "pattern": "^[+]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$"},
            {"type": "number", "exclusiveMinimum": 0}
        ]
    })
}

/// Declares the rules: `Variant => module`. Generates `mod module;`, the `RuleId` enum, the
/// `RULES` table, the `RuleOptions` enum of typed options, the dispatch, and a typed accessor
/// per rule on `RuleSet`. A rule's `check(ctx, options, out)` sees its own options only; the
/// rare rule that reads another rule's settings is marked `reads_rules` and gets the
/// `RuleSet` as well: `check(ctx, options, rules, out)`.
macro_rules! registry {
    ($($variant:ident => $module:ident $($reads:ident)?,)*) => {
        $(pub mod $module;)*

        /// Stable rule identifiers; the discriminant indexes `RULES` and `RuleSet`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum RuleId { $($variant,)* }

        /// The catalogue, in `RuleId` order.
        pub static RULES: &[RuleInfo] = &[$(RuleInfo { id: RuleId::$variant, meta: &$module::META },)*];

        /// A rule's typed options.
        #[derive(Debug, Clone)]
        pub enum RuleOptions { $($variant($module::Options),)* }

        impl RuleOptions {
            /// The rule's options with their defaults.
            pub fn default_for(id: RuleId) -> Self {
                match id { $(RuleId::$variant => RuleOptions::$variant(Default::default()),)* }
            }

            /// Reads a rule's options from a policy mapping (without `action`), strictly.
            pub fn from_value(
                id: RuleId,
                value: serde_yaml_ng::Value,
            ) -> Result<Self, serde_path_to_error::Error<serde_yaml_ng::Error>> {
                Ok(match id { $(RuleId::$variant => RuleOptions::$variant(parse_options(value)?),)* })
            }

            /// The options as a policy mapping.
            pub fn to_value(&self) -> serde_yaml_ng::Value {
                match self { $(RuleOptions::$variant(o) => to_value(o),)* }
            }
        }

        /// Runs one rule with its options.
        fn dispatch(ctx: &PodCtx<'_>, options: &RuleOptions, rules: &RuleSet, out: &mut Vec<Violation>) {
            match options {
                $(RuleOptions::$variant(o) => check_rule!($module $($reads)?, ctx, o, rules, out),)*
            }
        }

        #[allow(dead_code)]
        impl RuleSet {
            $(
            /// This rule's options in force.
            pub fn $module(&self) -> &$module::Options {
                match &self.get(RuleId::$variant).options {
                    RuleOptions::$variant(o) => o,
                    _ => unreachable!("RuleSet entries are built in RuleId order"),
                }
            }
            )*
        }
    };
}

/// One dispatch arm of [`registry!`]: with or without the `RuleSet`.
macro_rules! check_rule {
    ($module:ident, $ctx:ident, $o:ident, $rules:ident, $out:ident) => {
        $module::check($ctx, $o, $out)
    };
    ($module:ident reads_rules, $ctx:ident, $o:ident, $rules:ident, $out:ident) => {
        $module::check($ctx, $o, $rules, $out)
    };
}

registry! {
    MountVolumeExists => mount_volume_exists,
    VolumeNameUnique => volume_name_unique,
    MountPathUnique => mount_path_unique,
    MountPathAbsolute => mount_path_absolute,
    MountPathNested => mount_path_nested,
    MountPathReserved => mount_path_reserved,
    VolumeUnused => volume_unused,
    MountReadonlySource => mount_readonly_source,
    VolumeTypeAllowed => volume_type_allowed,
    EmptydirSizeLimitRequired => emptydir_size_limit_required reads_rules,
    EmptydirSizeLimitMax => emptydir_size_limit_max,
    EmptydirMediumValid => emptydir_medium_valid,
    EmptydirMemoryWithinLimits => emptydir_memory_within_limits,
    EmptydirWithinEphemeralStorage => emptydir_within_ephemeral_storage,
    EmptydirEphemeralStorageDeclared => emptydir_ephemeral_storage_declared,
    HostpathAllowed => hostpath_allowed,
}

fn parse_options<T: DeserializeOwned>(
    value: serde_yaml_ng::Value,
) -> Result<T, serde_path_to_error::Error<serde_yaml_ng::Error>> {
    serde_path_to_error::deserialize(value)
}

fn to_value<T: Serialize>(o: &T) -> serde_yaml_ng::Value {
    serde_yaml_ng::to_value(o).expect("rule options serialise")
}

/// One entry of the catalogue.
pub struct RuleInfo {
    pub id: RuleId,
    pub meta: &'static RuleMeta,
}

impl RuleInfo {
    pub fn name(&self) -> &'static str {
        self.meta.name
    }
}

impl RuleId {
    pub fn name(self) -> &'static str {
        RULES[self as usize].meta.name
    }

    pub fn from_name(name: &str) -> Option<RuleId> {
        RULES.iter().find(|r| r.meta.name == name).map(|r| r.id)
    }

    pub fn meta(self) -> &'static RuleMeta {
        RULES[self as usize].meta
    }
}

impl fmt::Display for RuleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for RuleId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// One rule's settings in force: its action and its options.
#[derive(Debug, Clone)]
pub struct RuleSetting {
    pub action: Action,
    pub options: RuleOptions,
}

/// The settings of every rule, indexed by `RuleId`.
#[derive(Debug, Clone)]
pub struct RuleSet {
    settings: Vec<RuleSetting>,
}

impl RuleSet {
    /// Every rule with its registry defaults.
    pub fn defaults() -> Self {
        RuleSet {
            settings: RULES
                .iter()
                .map(|r| RuleSetting {
                    action: r.meta.default_action,
                    options: RuleOptions::default_for(r.id),
                })
                .collect(),
        }
    }

    pub fn get(&self, id: RuleId) -> &RuleSetting {
        &self.settings[id as usize]
    }

    pub fn set(&mut self, id: RuleId, setting: RuleSetting) {
        self.settings[id as usize] = setting;
    }
}

/// One finding of one rule, before the policy decides what it does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: RuleId,
    /// Field path inside the object as written, e.g. `spec.template.spec.volumes[0].emptyDir`.
    pub path: String,
    /// What is wrong, naming the volume or container, and how to fix it.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}: {}", self.rule, self.path, self.message)
    }
}

/// Which list of the PodSpec a container sits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerKind {
    Regular,
    Init,
    Ephemeral,
}

impl ContainerKind {
    pub fn field(self) -> &'static str {
        match self {
            ContainerKind::Regular => "containers",
            ContainerKind::Init => "initContainers",
            ContainerKind::Ephemeral => "ephemeralContainers",
        }
    }
}

/// A container with its position and its normalised mount paths.
pub struct ContainerRef<'a> {
    pub kind: ContainerKind,
    pub index: usize,
    pub c: &'a Container<'a>,
    /// Each volumeMount's mountPath (a filesystem path) normalised for its style
    /// (`paths::normalize_in`), in order.
    pub normalized_mount_paths: Vec<Cow<'a, str>>,
    /// Each volumeDevice's devicePath, normalised the same way, in order.
    pub normalized_device_paths: Vec<Cow<'a, str>>,
}

/// Field paths (where in the object a finding points), not filesystem paths.
impl ContainerRef<'_> {
    pub fn field(&self, prefix: &str) -> String {
        format!("{prefix}{}[{}]", self.kind.field(), self.index)
    }
    pub fn mount_field(&self, prefix: &str, j: usize) -> String {
        format!(
            "{prefix}{}[{}].volumeMounts[{j}]",
            self.kind.field(),
            self.index
        )
    }
    pub fn device_field(&self, prefix: &str, j: usize) -> String {
        format!(
            "{prefix}{}[{}].volumeDevices[{j}]",
            self.kind.field(),
            self.index
        )
    }
}

/// Everything the rules read about one Pod spec, computed once per evaluation.
pub struct PodCtx<'a> {
    /// Field-path prefix of the PodSpec, e.g. `spec.` or `spec.template.spec.`.
    pub prefix: &'static str,
    pub spec: &'a Spec<'a>,
    /// Windows when `spec.os.name` is `windows`: every path of the Pod then has Windows
    /// semantics (a path with a drive letter or UNC prefix has them in any Pod).
    pub style: PathStyle,
    pub containers: Vec<ContainerRef<'a>>,
    /// StatefulSet volumeClaimTemplates names (they count as volumes for mounts).
    claim_templates: HashSet<&'a str>,
    /// The same names in `spec.volumeClaimTemplates` order ("" for an unnamed one).
    pub claim_template_list: Vec<&'a str>,
    /// First index of each volume name.
    volume_index: HashMap<&'a str, usize>,
    /// Parsed `emptyDir.sizeLimit` per volume (None: no emptyDir or no sizeLimit).
    size_limits: Vec<Option<Result<Quantity, QuantityError>>>,
    memory_limit: OnceCell<Option<Quantity>>,
    memory_limit_somewhere: OnceCell<Option<Quantity>>,
    ephemeral_limit: OnceCell<Option<Quantity>>,
}

impl<'a> PodCtx<'a> {
    /// Windows when `spec.os.name` is `windows` (the kubelet refuses a Pod for another OS,
    /// `rejectPodAdmissionBasedOnOSField`); a path with a drive letter or UNC prefix is
    /// Windows in any Pod (`paths::normalize_in`).
    pub fn path_style(spec: &Spec) -> PathStyle {
        match spec.os.as_ref().and_then(|o| o.name.as_deref()) {
            Some("windows") => PathStyle::Windows,
            _ => PathStyle::Linux,
        }
    }

    pub fn new(prefix: &'static str, spec: &'a Spec, claim_templates: Vec<&'a str>) -> Self {
        let mut volume_index = HashMap::with_capacity(spec.volumes.len());
        for (i, v) in spec.volumes.iter().enumerate() {
            volume_index.entry(&*v.name).or_insert(i);
        }
        let style = Self::path_style(spec);
        let lists = [
            (ContainerKind::Regular, &spec.containers),
            (ContainerKind::Init, &spec.init_containers),
            (ContainerKind::Ephemeral, &spec.ephemeral_containers),
        ];
        let containers = lists
            .into_iter()
            .flat_map(|(kind, list)| {
                list.iter().enumerate().map(move |(index, c)| ContainerRef {
                    kind,
                    index,
                    c,
                    normalized_mount_paths: c
                        .volume_mounts
                        .iter()
                        .map(|m| paths::normalize_in(&m.mount_path, style))
                        .collect(),
                    normalized_device_paths: c
                        .volume_devices
                        .iter()
                        .map(|d| paths::normalize_in(&d.device_path, style))
                        .collect(),
                })
            })
            .collect();
        let size_limits = spec
            .volumes
            .iter()
            .map(|v| {
                let raw = v.empty_dir.as_ref()?.size_limit.as_ref()?;
                Some(Quantity::parse(&raw.0))
            })
            .collect();
        PodCtx {
            prefix,
            spec,
            style,
            claim_templates: claim_templates
                .iter()
                .copied()
                .filter(|n| !n.is_empty())
                .collect(),
            claim_template_list: claim_templates,
            containers,
            volume_index,
            size_limits,
            memory_limit: OnceCell::new(),
            memory_limit_somewhere: OnceCell::new(),
            ephemeral_limit: OnceCell::new(),
        }
    }

    pub fn volumes(&self) -> &'a [Volume<'a>] {
        &self.spec.volumes
    }

    /// The volume a mount or device name refers to (first one of that name).
    pub fn volume(&self, name: &str) -> Option<(usize, &'a Volume<'a>)> {
        self.volume_index
            .get(name)
            .map(|&i| (i, &self.spec.volumes[i]))
    }

    pub fn is_claim_template(&self, name: &str) -> bool {
        self.claim_templates.contains(name)
    }

    /// Field path of volume `i`.
    pub fn volume_field(&self, i: usize) -> String {
        format!("{}volumes[{i}]", self.prefix)
    }

    /// Every volumeMount of every container, with its container and its index there.
    pub fn mounts(&self) -> impl Iterator<Item = (&ContainerRef<'a>, usize, &'a VolumeMount<'a>)> {
        self.containers.iter().flat_map(|c| {
            let mounts: &'a [VolumeMount<'a>] = &c.c.volume_mounts;
            mounts.iter().enumerate().map(move |(j, m)| (c, j, m))
        })
    }

    pub fn regular_containers(&self) -> impl Iterator<Item = &ContainerRef<'a>> {
        self.containers
            .iter()
            .filter(|c| c.kind == ContainerKind::Regular)
    }

    /// Every emptyDir volume with its index and medium. (A StatefulSet template volume that
    /// a same-named volumeClaimTemplate replaces is a PVC by then: see `model`.)
    pub fn empty_dirs(
        &self,
    ) -> impl Iterator<Item = (usize, &'a Volume<'a>, &'a EmptyDir<'a>, Medium)> {
        self.spec
            .volumes
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.empty_dir.as_ref().map(|e| (i, v, e, e.medium())))
    }

    /// The parsed sizeLimit of volume `i`: `None` when unset (or not an emptyDir).
    pub fn size_limit(&self, i: usize) -> Option<&Result<Quantity, QuantityError>> {
        self.size_limits.get(i).and_then(Option::as_ref)
    }

    /// The Pod cgroup's memory limit where it bounds a tmpfs on every supported kubelet
    /// minor (`resources::memory_cgroup_limit`: `None` when some minor sets none), computed
    /// once per evaluation.
    pub fn memory_limit(&self) -> Option<Quantity> {
        *self
            .memory_limit
            .get_or_init(|| resources::memory_cgroup_limit(self.spec))
    }

    /// The Pod cgroup's memory limit on the minors that set one
    /// (`resources::memory_cgroup_limit_on_some_minor`): what a tmpfs can outgrow somewhere.
    pub fn memory_limit_on_some_minor(&self) -> Option<Quantity> {
        *self
            .memory_limit_somewhere
            .get_or_init(|| resources::memory_cgroup_limit_on_some_minor(self.spec))
    }

    /// The Pod's ephemeral-storage limit the eviction manager enforces
    /// (`resources::ephemeral_storage_limit`), computed once per evaluation.
    pub fn ephemeral_storage_limit(&self) -> Option<Quantity> {
        *self
            .ephemeral_limit
            .get_or_init(|| resources::ephemeral_storage_limit(self.spec))
    }
}

/// The first emptyDir at which the running sum of valid, positive sizeLimits exceeds `limit`,
/// with that sum.
pub fn first_over<'v>(
    ctx: &PodCtx<'_>,
    dirs: impl Iterator<Item = (usize, &'v Volume<'v>, &'v EmptyDir<'v>, Medium)>,
    limit: Quantity,
) -> Option<(usize, &'v Volume<'v>, Quantity)> {
    let mut sum = Quantity::ZERO;
    for (i, v, _, _) in dirs {
        if let Some(Ok(q)) = ctx.size_limit(i)
            && q.is_positive()
        {
            let q = *q;
            sum = sum.checked_add(q)?;
            if sum > limit {
                return Some((i, v, sum));
            }
        }
    }
    None
}

/// `"a", "b" and 2 more` for messages.
pub fn name_list(names: &[&str]) -> String {
    let shown: Vec<String> = names
        .iter()
        .take(2)
        .map(|n| quoted(n).to_string())
        .collect();
    match names.len() {
        0 => "none".to_owned(),
        1 | 2 => shown.join(" and "),
        n => format!("{} and {} more", shown.join(", "), n - 2),
    }
}

/// Quotes a user-supplied string for a message, whole (escaped as Rust's `{:?}` does, so a
/// newline cannot end a line), without allocating: a `format!` argument. Offline output
/// prints it as is; at admission `admission::line` shortens the explanation, never the
/// rule, the path or the fix.
pub fn quoted(s: &str) -> Quoted<'_> {
    Quoted(s)
}

/// See [`quoted`].
pub struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Appended to a finding that `oldObject` already had (UPDATE).
pub const PREEXISTING_SUFFIX: &str = " (present before this update)";

/// Cuts `s` to at most `max` bytes (`max` >= 3), on a char boundary, ending in `...` when
/// it cuts. Messages here and warning lines in `admission` share it.
pub fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max - 3;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
}

/// Runs one rule, whatever its action (for the rules' table tests).
#[cfg(test)]
pub(crate) fn run_one(ctx: &PodCtx<'_>, id: RuleId, rules: &RuleSet, out: &mut Vec<Violation>) {
    dispatch(ctx, &rules.get(id).options, rules, out);
}

/// Runs every enabled rule over one Pod view.
pub(crate) fn run_all(
    ctx: &PodCtx<'_>,
    rules: &RuleSet,
    skip: &dyn Fn(RuleId) -> bool,
    out: &mut Vec<Violation>,
) {
    for info in RULES {
        let setting = rules.get(info.id);
        if setting.action == Action::Off || skip(info.id) {
            continue;
        }
        dispatch(ctx, &setting.options, rules, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_in_id_order_with_unique_kebab_names() {
        for (i, r) in RULES.iter().enumerate() {
            assert_eq!(r.id as usize, i, "{}", r.name());
            assert!(
                r.name().chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{}",
                r.name()
            );
            assert_eq!(RuleId::from_name(r.name()), Some(r.id));
        }
        let mut names: Vec<_> = RULES.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), RULES.len());
    }

    /// Every option a rule documents is a field of its `Options` (with a default), and every
    /// field is documented: the schema, `volguard rules` and the README cannot drift from the
    /// code.
    #[test]
    fn documented_options_are_the_options_fields() {
        for r in RULES {
            let defaults = RuleOptions::default_for(r.id).to_value();
            let mut fields: Vec<String> = match defaults {
                serde_yaml_ng::Value::Mapping(m) => m
                    .keys()
                    .map(|k| k.as_str().expect("string keys").to_owned())
                    .collect(),
                other => panic!("{}: options are not a mapping: {other:?}", r.name()),
            };
            fields.sort();
            let mut documented: Vec<String> =
                r.meta.options.iter().map(|o| o.name.to_owned()).collect();
            documented.sort();
            assert_eq!(fields, documented, "{}", r.name());
            for o in r.meta.options {
                assert!((o.schema)().is_object(), "{}.{}", r.name(), o.name);
                assert!(!o.help.is_empty(), "{}.{}", r.name(), o.name);
            }
        }
    }

    /// Offline output has no length limit: names and paths are quoted whole.
    #[test]
    fn quoting_keeps_whole_names() {
        assert_eq!(quoted("data").to_string(), "\"data\"");
        let long = "x".repeat(200);
        assert_eq!(quoted(&long).to_string(), format!("{long:?}"));
        assert_eq!(quoted("a\nb").to_string(), "\"a\\nb\"");
    }
}
