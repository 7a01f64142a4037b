//! From violations to a decision: actions, mode, exemptions, UPDATE semantics (a violation
//! is matched with `oldObject`'s by what it is about, never by array index) and who created
//! the object (controllers, mirror Pods).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;

use crate::engine::model::{Meta, Object, Spec};
use crate::engine::paths;
use crate::engine::policy::{ControllerObjects, Policy};
use crate::engine::rules::{self, Action, PodCtx, RuleId, Violation};
use crate::engine::workload;

/// The admission operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Update,
    Delete,
    Connect,
}

impl Operation {
    /// The admission.k8s.io spelling: `CREATE`, `UPDATE`, `DELETE`, `CONNECT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// What the engine is asked to judge.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The object's kind (from the AdmissionReview's `kind`, or the manifest's).
    pub kind: &'a str,
    pub namespace: &'a str,
    pub operation: Operation,
    pub object: &'a Object<'a>,
    /// The object before an UPDATE.
    pub old_object: Option<&'a Object<'a>>,
}

impl<'a> Request<'a> {
    /// A CREATE of `object` (what `check`, the audit and tests judge: no old object).
    pub fn create(kind: &'a str, namespace: &'a str, object: &'a Object<'a>) -> Self {
        Request {
            kind,
            namespace,
            operation: Operation::Create,
            object,
            old_object: None,
        }
    }
}

/// Who sent the request: AdmissionReview `userInfo` (absent for manifests checked offline).
#[derive(Debug, Clone, Copy, Default)]
pub struct Requester<'a> {
    pub username: &'a str,
    pub groups: &'a [Cow<'a, str>],
}

/// Who created the object, as far as the verdict is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// A user, or anyone not listed below: judged as written.
    User,
    /// A trusted controller (`trustedControllers`) creating or changing an object that has a
    /// controller `ownerReference`: the workload it came from is where the verdict belongs.
    Controller,
    /// A node (`system:node:*` in group `system:nodes`) creating the mirror of a static Pod
    /// (annotation `kubernetes.io/config.mirror`): the Pod runs whatever the verdict.
    Mirror,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::User => "user",
            Origin::Controller => "controller",
            Origin::Mirror => "mirror",
        }
    }

    /// Appended to a denial this origin turned into a warning.
    pub fn suffix(self) -> &'static str {
        match self {
            Origin::User => "",
            Origin::Controller => " (created by its controller)",
            Origin::Mirror => " (mirror of a static Pod)",
        }
    }
}

/// A violation with the action the policy gives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    pub rule: RuleId,
    pub action: Action,
    pub path: String,
    pub message: String,
    /// On UPDATE: `oldObject` already had this violation (same rule, same volume, container
    /// or mount, wherever it sits in the arrays); it never denies.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub preexisting: bool,
    /// A denial turned into a warning because of who created the object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub downgraded: Option<Origin>,
}

impl Finding {
    /// What is appended to the message: why a denial became a warning, if it did.
    pub fn note(&self) -> &'static str {
        if self.preexisting {
            rules::PREEXISTING_SUFFIX
        } else {
            self.downgraded.map_or("", Origin::suffix)
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] {}: {}{}",
            self.rule,
            self.path,
            self.message,
            self.note()
        )
    }
}

/// Why an object was not checked at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skipped {
    /// Not a kind that carries a Pod spec, or an operation we do not judge.
    NotApplicable,
    /// The namespace matches `exemptNamespaces`.
    ExemptNamespace,
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Sorted by path (numbers in natural order), then rule. `off` findings are never present.
    pub findings: Vec<Finding>,
    pub skipped: Option<Skipped>,
    /// Who created the object (decides whether denials become warnings).
    pub origin: Origin,
}

impl Verdict {
    /// Allowed without looking: a kind, subresource or operation the engine does not judge.
    pub fn not_applicable() -> Self {
        Verdict::skip(Skipped::NotApplicable)
    }

    fn skip(why: Skipped) -> Self {
        Verdict {
            allowed: true,
            findings: Vec::new(),
            skipped: Some(why),
            origin: Origin::User,
        }
    }

    pub fn with_action(&self, action: Action) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(move |f| f.action == action)
    }

    /// Findings that would have denied but for who created the object.
    pub fn downgraded(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.downgraded.is_some())
    }

    /// `allow`, `warn`, `audit` or `deny`: the strongest action among the findings.
    pub fn outcome(&self) -> &'static str {
        match self.findings.iter().map(|f| f.action).max() {
            _ if !self.allowed => "deny",
            Some(Action::Warn) => "warn",
            Some(Action::Audit) => "audit",
            _ => "allow",
        }
    }
}

/// Evaluates one object against the policy, as sent by a user. Pure: no I/O, no clock.
pub fn evaluate(policy: &Policy, req: &Request<'_>) -> Verdict {
    evaluate_as(policy, req, None)
}

/// Who created the object: a mirror Pod from its node, an object with a controller
/// `ownerReference` from a trusted controller, or anyone else (a made-up ownerReference
/// from a user changes nothing).
pub fn origin(policy: &Policy, req: &Request<'_>, requester: Option<&Requester<'_>>) -> Origin {
    let Some(r) = requester else {
        return Origin::User;
    };
    let meta = &req.object.metadata;
    // NodeRestriction (plugin/pkg/admission/noderestriction/admission.go:admitPodCreate) lets
    // a node create only mirror Pods; nodeidentifier requires the name prefix and the group.
    if req.kind == "Pod"
        && meta.annotations.mirror
        && r.username.starts_with("system:node:")
        && r.groups.iter().any(|g| g == "system:nodes")
    {
        return Origin::Mirror;
    }
    if meta.controller().is_some() && policy.is_trusted_controller(r.username) {
        return Origin::Controller;
    }
    Origin::User
}

/// Evaluates one object sent by `requester` (`None`: a manifest, judged as a user's).
pub fn evaluate_as(
    policy: &Policy,
    req: &Request<'_>,
    requester: Option<&Requester<'_>>,
) -> Verdict {
    if matches!(req.operation, Operation::Delete | Operation::Connect) {
        return Verdict::not_applicable();
    }
    let Some(view) = workload::pod_view(req.kind, req.object) else {
        return Verdict::not_applicable();
    };
    if policy.is_exempt_namespace(req.namespace) {
        return Verdict::skip(Skipped::ExemptNamespace);
    }
    let rules = policy.rules_for(req.namespace);
    let exempt: Vec<&str> = if policy.allow_exemption_annotation {
        exempted_rules(&req.object.metadata, view.template_meta)
    } else {
        Vec::new()
    };
    let skip = |id: RuleId| exempt.iter().any(|e| *e == "*" || *e == id.name());

    let mut violations = Vec::new();
    let ctx = PodCtx::new(view.prefix, view.spec, view.claim_templates);
    rules::run_all(&ctx, &rules, &skip, &mut violations);

    let mut old = if violations.is_empty() {
        HashMap::new()
    } else {
        old_subjects(req, &rules, &skip)
    };

    let who = origin(policy, req, requester);
    let relaxed_by = relaxed_by_origin(policy, who);
    let mut findings: Vec<Finding> = violations
        .into_iter()
        .map(|v: Violation| {
            let preexisting = !old.is_empty()
                && old
                    .get_mut(&(v.rule, subject(view.spec, view.prefix, v.rule, &v.path)))
                    .is_some_and(|n| {
                        let had = *n > 0;
                        *n = n.saturating_sub(1);
                        had
                    });
            let mut action = policy.mode.apply(rules.get(v.rule).action);
            let mut downgraded = None;
            if action == Action::Deny && preexisting {
                action = Action::Warn;
            } else if action == Action::Deny && relaxed_by.is_some() {
                action = Action::Warn;
                downgraded = relaxed_by;
            }
            Finding {
                rule: v.rule,
                action,
                path: v.path,
                message: v.message,
                preexisting,
                downgraded,
            }
        })
        .collect();
    findings.sort_by(|a, b| natural_cmp(&a.path, &b.path).then(a.rule.cmp(&b.rule)));
    let allowed = !findings.iter().any(|f| f.action == Action::Deny);
    Verdict {
        allowed,
        findings,
        skipped: None,
        origin: who,
    }
}

/// On UPDATE, how many times `oldObject` had each (rule, subject): a new violation
/// matching one of them is pre-existing (a multiset, so a third duplicate is still new).
/// Empty otherwise.
fn old_subjects(
    req: &Request<'_>,
    rules: &rules::RuleSet,
    skip: &dyn Fn(RuleId) -> bool,
) -> HashMap<(RuleId, String), usize> {
    let mut old: HashMap<(RuleId, String), usize> = HashMap::new();
    if let (Operation::Update, Some(old_obj)) = (req.operation, req.old_object)
        && let Some(old_view) = workload::pod_view(req.kind, old_obj)
    {
        let mut old_violations = Vec::new();
        let old_ctx = PodCtx::new(old_view.prefix, old_view.spec, old_view.claim_templates);
        rules::run_all(&old_ctx, rules, skip, &mut old_violations);
        for v in old_violations {
            let key = (
                v.rule,
                subject(old_view.spec, old_view.prefix, v.rule, &v.path),
            );
            *old.entry(key).or_default() += 1;
        }
    }
    old
}

/// Who a denial becomes a warning for (with `downgraded` set to it): a node's mirror Pods
/// always, a trusted controller's objects under `controllerObjects: warn`.
fn relaxed_by_origin(policy: &Policy, who: Origin) -> Option<Origin> {
    match who {
        Origin::Mirror => Some(Origin::Mirror),
        Origin::Controller if policy.controller_objects == ControllerObjects::Warn => {
            Some(Origin::Controller)
        }
        _ => None,
    }
}

/// What a violation is about, independent of array positions: its field path with each
/// index replaced by the element's identity (`volumes[i]` by the volume's name,
/// `containers[i]` by the container's name, `volumeMounts[j]` by volume name and mountPath,
/// `volumeDevices[j]` by volume name and devicePath). Two rules compare something else:
/// `mount-path-unique` is about a (normalised) path used twice in a container, whichever
/// mount comes second; the emptyDir sum rules are about the Pod as a whole (which volume
/// tips the sum over depends on the order). A path that does not resolve is its own
/// subject.
fn subject(spec: &Spec, prefix: &str, rule: RuleId, path: &str) -> String {
    if matches!(
        rule,
        RuleId::EmptydirMemoryWithinLimits | RuleId::EmptydirWithinEphemeralStorage
    ) {
        return "pod".to_owned();
    }
    path.strip_prefix(prefix)
        .and_then(|rest| resolve_subject(spec, rule, rest))
        .unwrap_or_else(|| path.to_owned())
}

fn resolve_subject(spec: &Spec, rule: RuleId, rest: &str) -> Option<String> {
    let (field, i, tail) = split_index(rest)?;
    let containers = match field {
        "volumes" => return Some(format!("volumes[{:?}]{tail}", spec.volumes.get(i)?.name)),
        "containers" => &spec.containers,
        "initContainers" => &spec.init_containers,
        "ephemeralContainers" => &spec.ephemeral_containers,
        _ => return None,
    };
    let c = containers.get(i)?;
    let mut out = format!("{field}[{:?}]", c.name);
    // A mount or device is what it mounts where; for mount-path-unique only where (which of
    // two colliding entries is reported depends on their order).
    let entry = match tail.strip_prefix('.').and_then(split_index) {
        Some(("volumeMounts", j, rest)) => c
            .volume_mounts
            .get(j)
            .map(|m| ("volumeMounts", &m.name, &m.mount_path, rest)),
        Some(("volumeDevices", j, rest)) => c
            .volume_devices
            .get(j)
            .map(|d| ("volumeDevices", &d.name, &d.device_path, rest)),
        _ => {
            out.push_str(tail);
            return Some(out);
        }
    };
    let (list, name, at, rest) = entry?;
    if rule == RuleId::MountPathUnique {
        // Normalised as the rule compares them (Windows-aware), so two entries that collide
        // have one identity whichever of them is reported.
        let style = PodCtx::path_style(spec);
        out.push_str(&format!(".path[{:?}]", paths::normalize_in(at, style)));
    } else {
        out.push_str(&format!(".{list}[{name:?} at {at:?}]"));
    }
    out.push_str(rest);
    Some(out)
}

/// `volumes[3].emptyDir` -> (`volumes`, 3, `.emptyDir`).
fn split_index(s: &str) -> Option<(&str, usize, &str)> {
    let (field, rest) = s.split_once('[')?;
    let (index, tail) = rest.split_once(']')?;
    Some((field, index.parse().ok()?, tail))
}

/// Rule names listed in `volguard.io/exempt` on the object and on its Pod template.
pub(crate) fn exempted_rules<'a>(meta: &'a Meta, template: Option<&'a Meta>) -> Vec<&'a str> {
    [Some(meta), template]
        .into_iter()
        .flatten()
        .filter_map(|m| m.annotations.exempt.as_deref())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Orders `volumes[10]` after `volumes[9]`: digit runs compare as numbers.
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
                let ord = da.len().cmp(&db.len()).then_with(|| da.cmp(db));
                if ord != Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|c| **c == b'0').count();
    &d[z.min(d.len().saturating_sub(1))..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned object (through an owned `Value`), so tests can build it from temporaries.
    fn obj(yaml: &str) -> Object<'static> {
        use serde::Deserialize;
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        Object::deserialize(v).unwrap()
    }

    fn eval(policy: &str, ns: &str, op: Operation, new: &Object, old: Option<&Object>) -> Verdict {
        let p = Policy::parse(policy, "p.yaml").unwrap();
        evaluate(
            &p,
            &Request {
                kind: &new.kind,
                namespace: ns,
                operation: op,
                object: new,
                old_object: old,
            },
        )
    }

    const SEED: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: seed}
spec:
  containers:
  - name: writer
    image: busybox
    volumeMounts: [{name: temp-volume, mountPath: /temp}]
  - name: reader
    image: busybox
    volumeMounts: [{name: temp-volume, mountPath: /storages/files}]
  volumes:
  - name: temp-volume
    emptyDir: {}
"#;

    #[test]
    fn seed_is_denied_then_allowed_with_a_size_limit() {
        let v = eval("{}", "default", Operation::Create, &obj(SEED), None);
        assert!(!v.allowed);
        assert_eq!(v.findings.len(), 1, "{:?}", v.findings);
        assert_eq!(v.findings[0].rule, RuleId::EmptydirSizeLimitRequired);
        assert!(v.findings[0].path.starts_with("spec.volumes[0]"));
        let fixed = SEED.replace("emptyDir: {}", "emptyDir: {sizeLimit: 500Mi}");
        let v = eval("{}", "default", Operation::Create, &obj(&fixed), None);
        assert!(v.allowed && v.findings.is_empty(), "{:?}", v.findings);
    }

    #[test]
    fn modes_downgrade() {
        let v = eval("mode: warn", "default", Operation::Create, &obj(SEED), None);
        assert!(v.allowed);
        assert_eq!(v.findings[0].action, Action::Warn);
        assert_eq!(v.outcome(), "warn");
        let v = eval(
            "mode: audit",
            "default",
            Operation::Create,
            &obj(SEED),
            None,
        );
        assert!(v.allowed);
        assert_eq!(v.findings[0].action, Action::Audit);
        assert_eq!(v.outcome(), "audit");
    }

    #[test]
    fn exempt_namespaces_use_globs() {
        let p = "exemptNamespaces: [\"team-?\", \"sandbox-*\"]";
        for ns in ["team-a", "sandbox-42"] {
            let v = eval(p, ns, Operation::Create, &obj(SEED), None);
            assert!(v.allowed && v.findings.is_empty());
            assert_eq!(v.skipped, Some(Skipped::ExemptNamespace));
        }
        assert!(!eval(p, "team-ab", Operation::Create, &obj(SEED), None).allowed);
        assert!(!eval(p, "kube-system", Operation::Create, &obj(SEED), None).allowed);
        assert!(eval("{}", "kube-system", Operation::Create, &obj(SEED), None).allowed);
    }

    #[test]
    fn exemption_annotation_only_when_allowed() {
        let annotated = SEED.replace(
            "metadata: {name: seed}",
            "metadata: {name: seed, annotations: {volguard.io/exempt: \"emptydir-size-limit-required, volume-unused\"}}",
        );
        assert!(!eval("{}", "default", Operation::Create, &obj(&annotated), None).allowed);
        let v = eval(
            "allowExemptionAnnotation: true",
            "default",
            Operation::Create,
            &obj(&annotated),
            None,
        );
        assert!(v.allowed && v.findings.is_empty());
    }

    #[test]
    fn exemption_annotation_on_pod_template() {
        let dep = r#"
kind: Deployment
metadata: {name: d}
spec:
  template:
    metadata: {annotations: {volguard.io/exempt: "*"}}
    spec:
      containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}]}]
      volumes: [{name: t, emptyDir: {}}]
"#;
        assert!(!eval("{}", "default", Operation::Create, &obj(dep), None).allowed);
        assert!(
            eval(
                "allowExemptionAnnotation: true",
                "default",
                Operation::Create,
                &obj(dep),
                None
            )
            .allowed
        );
    }

    #[test]
    fn update_with_preexisting_violation_is_warned_not_denied() {
        let old = obj(SEED);
        let relabelled = obj(&SEED.replace(
            "metadata: {name: seed}",
            "metadata: {name: seed, labels: {a: b}}",
        ));
        let v = eval("{}", "default", Operation::Update, &relabelled, Some(&old));
        assert!(v.allowed);
        assert_eq!(v.findings[0].action, Action::Warn);
        assert!(v.findings[0].preexisting);
        assert!(
            v.findings[0]
                .to_string()
                .ends_with("(present before this update)")
        );
        // A new violation introduced by the update still denies.
        let worse = obj(&SEED.replace("mountPath: /temp", "mountPath: /etc"));
        let v = eval("{}", "default", Operation::Update, &worse, Some(&old));
        assert!(!v.allowed);
        let deny: Vec<_> = v.with_action(Action::Deny).map(|f| f.rule).collect();
        assert_eq!(deny, [RuleId::MountPathReserved]);
    }

    /// A Deployment `web` with these containers and one unsized emptyDir `cache`.
    fn web(containers: &[&str]) -> String {
        format!(
            "kind: Deployment\nmetadata: {{name: web}}\nspec:\n  template:\n    spec:\n      containers:\n{}      volumes:\n      - name: cache\n        emptyDir: {{}}\n",
            containers.concat()
        )
    }
    const APP: &str = "      - name: app\n        volumeMounts: [{name: cache, mountPath: /cache}, {name: cache, mountPath: /cache/}]\n";
    const SIDECAR: &str =
        "      - name: sidecar\n        volumeMounts: [{name: cache, mountPath: /tmp}]\n";

    fn denied_rules(v: &Verdict) -> Vec<RuleId> {
        v.with_action(Action::Deny).map(|f| f.rule).collect()
    }

    #[test]
    fn update_matches_violations_by_identity_not_index() {
        // As created before the policy.
        let grandfathered = web(&[APP, SIDECAR]);
        let old = obj(&grandfathered);
        assert_eq!(
            denied_rules(&eval("{}", "default", Operation::Create, &old, None)),
            [RuleId::MountPathUnique, RuleId::EmptydirSizeLimitRequired]
        );
        // A volume added in front: the emptyDir moves from volumes[0] to volumes[1].
        let shifted = obj(&grandfathered.replace(
            "      volumes:\n",
            "      volumes:\n      - {name: conf, configMap: {name: c}}\n",
        ));
        let v = eval("{}", "default", Operation::Update, &shifted, Some(&old));
        assert!(v.allowed, "{:?}", v.findings);
        let f = v
            .findings
            .iter()
            .find(|f| f.rule == RuleId::EmptydirSizeLimitRequired)
            .unwrap();
        assert_eq!(f.path, "spec.template.spec.volumes[1].emptyDir");
        assert!(f.preexisting && f.action == Action::Warn);
        // Containers reordered, and the two mounts of the same path swapped: the
        // duplicate is now reported on the other mount, which is the same violation.
        let swapped = "      - name: app\n        volumeMounts: [{name: cache, mountPath: /cache/}, {name: cache, mountPath: /cache}]\n";
        let reordered = obj(&web(&[SIDECAR, swapped]));
        let v = eval("{}", "default", Operation::Update, &reordered, Some(&old));
        assert!(v.allowed, "{:?}", v.findings);
        assert!(v.findings.iter().all(|f| f.preexisting), "{:?}", v.findings);
        assert!(
            v.findings
                .iter()
                .any(|f| f.path == "spec.template.spec.containers[1].volumeMounts[1]")
        );
    }

    /// Windows paths collide case-insensitively with `\` and `/` equal (the kubelet's
    /// Windows `makeMounts`): swapping the two colliding mounts moves the report to the
    /// other one, which is still the same violation.
    #[test]
    fn update_identity_of_colliding_windows_mounts() {
        let pod = |a: &str, b: &str| {
            obj(&format!(
                "kind: Pod\nmetadata: {{name: w}}\nspec:\n  os: {{name: windows}}\n  containers:\n  - name: app\n    volumeMounts: [{{name: d, mountPath: '{a}'}}, {{name: d, mountPath: '{b}'}}]\n  volumes: [{{name: d, emptyDir: {{sizeLimit: 1Gi}}}}]\n"
            ))
        };
        let old = pod("C:\\data", "c:/data/");
        assert_eq!(
            denied_rules(&eval("{}", "default", Operation::Create, &old, None)),
            [RuleId::MountPathUnique]
        );
        let swapped = pod("c:/data/", "C:\\data");
        let v = eval("{}", "default", Operation::Update, &swapped, Some(&old));
        assert!(v.allowed, "{:?}", v.findings);
        assert!(v.findings.iter().all(|f| f.preexisting), "{:?}", v.findings);
    }

    #[test]
    fn update_counts_each_old_violation_once() {
        let pod = |n: usize| {
            let vols: String = (0..n)
                .map(|_| "  - {name: x, emptyDir: {sizeLimit: 1Gi}}\n".to_owned())
                .collect();
            obj(&format!(
                "kind: Pod\nspec:\n  containers: [{{name: c, volumeMounts: [{{name: x, mountPath: /x}}]}}]\n  volumes:\n{vols}"
            ))
        };
        // Two volumes named x: one duplicate. Three: a second duplicate, which is new.
        let v = eval("{}", "default", Operation::Update, &pod(3), Some(&pod(2)));
        assert_eq!(denied_rules(&v), [RuleId::VolumeNameUnique]);
        assert_eq!(v.findings.iter().filter(|f| f.preexisting).count(), 1);
        // A renamed volume is a different volume: its violation is new.
        let renamed = obj(&SEED.replace("temp-volume", "scratch"));
        let v = eval(
            "{}",
            "default",
            Operation::Update,
            &renamed,
            Some(&obj(SEED)),
        );
        assert_eq!(denied_rules(&v), [RuleId::EmptydirSizeLimitRequired]);
    }

    const RS_POD: &str = r#"
kind: Pod
metadata:
  name: web-5d8f-abcde
  ownerReferences:
  - {apiVersion: apps/v1, kind: ReplicaSet, name: web-5d8f, uid: u1, controller: true, blockOwnerDeletion: true}
spec:
  containers: [{name: c, volumeMounts: [{name: t, mountPath: /t}]}]
  volumes: [{name: t, emptyDir: {}}]
"#;

    fn eval_as(policy: &str, o: &Object, user: &str, groups: &[Cow<'static, str>]) -> Verdict {
        let p = Policy::parse(policy, "p.yaml").unwrap();
        let req = Request::create(&o.kind, "default", o);
        evaluate_as(
            &p,
            &req,
            Some(&Requester {
                username: user,
                groups,
            }),
        )
    }

    const RS_CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";

    #[test]
    fn controller_created_objects_are_warned_not_denied() {
        let pod = obj(RS_POD);
        let v = eval_as("{}", &pod, RS_CONTROLLER, &[]);
        assert!(v.allowed, "{:?}", v.findings);
        assert_eq!(v.origin, Origin::Controller);
        let f = &v.findings[0];
        assert_eq!(
            (f.action, f.downgraded),
            (Action::Warn, Some(Origin::Controller))
        );
        assert!(
            f.to_string().ends_with(" (created by its controller)"),
            "{f}"
        );
        assert_eq!(v.downgraded().count(), 1);
        // The manager's own identity (without --use-service-account-credentials) too.
        assert!(eval_as("{}", &pod, "system:kube-controller-manager", &[]).allowed);
        // Warnings stay warnings, and nothing is downgraded that would not deny.
        let v = eval_as("mode: audit", &pod, RS_CONTROLLER, &[]);
        assert_eq!(v.findings[0].action, Action::Audit);
        assert_eq!(v.downgraded().count(), 0);
    }

    #[test]
    fn controller_objects_enforce_and_other_identities_are_judged() {
        let pod = obj(RS_POD);
        // enforce: judged like any object.
        let v = eval_as("controllerObjects: enforce", &pod, RS_CONTROLLER, &[]);
        assert!(!v.allowed);
        assert_eq!(v.findings[0].downgraded, None);
        // A user with the same ownerReference: denied, the reference bypasses nothing.
        let v = eval_as("{}", &pod, "kubernetes-admin", &[]);
        assert!(!v.allowed);
        assert_eq!(v.origin, Origin::User);
        // A trusted controller creating an object without a controller ownerReference.
        let orphan = obj(&RS_POD.replace("controller: true", "controller: false"));
        assert!(!eval_as("{}", &orphan, RS_CONTROLLER, &[]).allowed);
        // An extended list: Argo Rollouts; the default identities are then not trusted.
        let argo = "trustedControllers: [\"system:serviceaccount:argo-rollouts:argo-rollouts\"]";
        assert!(
            eval_as(
                argo,
                &pod,
                "system:serviceaccount:argo-rollouts:argo-rollouts",
                &[]
            )
            .allowed
        );
        assert!(!eval_as(argo, &pod, RS_CONTROLLER, &[]).allowed);
        // Offline (no requester): a user's object.
        assert!(!eval("{}", "default", Operation::Create, &pod, None).allowed);
    }

    /// `rules::fit` keeps room for the UPDATE suffix; the origin suffixes fit in it, so a
    /// downgraded warning stays under the apiserver's 256 characters too.
    #[test]
    fn origin_suffixes_fit_the_reserved_room() {
        for o in [Origin::Controller, Origin::Mirror] {
            assert!(o.suffix().len() <= rules::PREEXISTING_SUFFIX.len(), "{o:?}");
        }
    }

    #[test]
    fn mirror_pods_from_their_node_are_never_denied() {
        let mirror = obj(&SEED.replace(
            "metadata: {name: seed}",
            "metadata: {name: seed-node1, annotations: {kubernetes.io/config.mirror: abc123}}",
        ));
        let nodes = ["system:nodes".into(), "system:authenticated".into()];
        for policy in ["{}", "controllerObjects: enforce"] {
            let v = eval_as(policy, &mirror, "system:node:node1", &nodes);
            assert!(v.allowed, "{policy}: {:?}", v.findings);
            assert_eq!(v.origin, Origin::Mirror);
            assert!(
                v.findings[0]
                    .to_string()
                    .ends_with(" (mirror of a static Pod)")
            );
        }
        // The annotation from a user, or a node name without the nodes group: judged.
        assert!(!eval_as("{}", &mirror, "kubernetes-admin", &nodes).allowed);
        assert!(!eval_as("{}", &mirror, "system:node:node1", &[]).allowed);
        // A node creating a Pod without the annotation (NodeRestriction forbids it anyway).
        assert!(!eval_as("{}", &obj(SEED), "system:node:node1", &nodes).allowed);
    }

    #[test]
    fn update_without_old_object_is_judged_like_create() {
        assert!(!eval("{}", "default", Operation::Update, &obj(SEED), None).allowed);
    }

    #[test]
    fn delete_and_other_kinds_are_not_applicable() {
        let v = eval("{}", "default", Operation::Delete, &obj(SEED), None);
        assert_eq!(v.skipped, Some(Skipped::NotApplicable));
        let svc = obj("kind: Service\nspec: {volumes: [{name: x, emptyDir: {}}]}");
        let v = eval("{}", "default", Operation::Create, &svc, None);
        assert!(v.allowed && v.skipped == Some(Skipped::NotApplicable));
    }

    #[test]
    fn namespace_overrides_apply() {
        let p = "rules:\n  emptydir-size-limit-max: {maxDisk: 1Gi}\nnamespaceOverrides:\n  - namespaces: [\"batch-*\"]\n    rules:\n      emptydir-size-limit-max: {maxDisk: 50Gi}\n";
        let big = obj(&SEED.replace("emptyDir: {}", "emptyDir: {sizeLimit: 20Gi}"));
        assert!(!eval(p, "web", Operation::Create, &big, None).allowed);
        assert!(eval(p, "batch-1", Operation::Create, &big, None).allowed);
    }

    #[test]
    fn findings_sorted_naturally() {
        let mut vols = String::new();
        for i in 0..12 {
            vols.push_str(&format!("  - {{name: v{i}, emptyDir: {{}}}}\n"));
        }
        let pod = obj(&format!(
            "kind: Pod\nspec:\n  containers: [{{name: c}}]\n  volumes:\n{vols}"
        ));
        let v = eval("{}", "default", Operation::Create, &pod, None);
        let required: Vec<_> = v
            .findings
            .iter()
            .filter(|f| f.rule == RuleId::EmptydirSizeLimitRequired)
            .map(|f| f.path.clone())
            .collect();
        let want: Vec<_> = (0..12)
            .map(|i| format!("spec.volumes[{i}].emptyDir"))
            .collect();
        assert_eq!(required, want);
    }

    #[test]
    fn natural_order() {
        assert_eq!(natural_cmp("a[2]", "a[10]"), Ordering::Less);
        assert_eq!(natural_cmp("a[10]", "a[10]"), Ordering::Equal);
        assert_eq!(natural_cmp("a[010]", "a[9]"), Ordering::Greater);
        assert_eq!(natural_cmp("b", "a"), Ordering::Greater);
    }
}
