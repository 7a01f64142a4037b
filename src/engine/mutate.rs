//! Fix instead of deny (opt-in): the policy's `defaults` as an RFC 6902 JSON patch.
//!
//! The only change ever made is `add`ing `emptyDir.sizeLimit` to an emptyDir of the Pod spec
//! (a Pod's, or a workload's Pod template) that has none: `defaults.emptyDir.diskSizeLimit`
//! for `medium: ""`, `defaults.emptyDir.memorySizeLimit` for `medium: Memory`. HugePages and
//! unknown media, sized emptyDirs (a zero `sizeLimit` included: it was written) and every
//! other field are left alone. A patched object has a `sizeLimit` wherever one was added, so
//! a second run adds nothing (idempotent by construction; the apiserver may call a mutating
//! webhook again under `reinvocationPolicy: IfNeeded`).
//!
//! Not patched:
//! - a Pod UPDATE (and every subresource: the caller decides): a Pod's volumes are immutable
//!   (`ValidatePodUpdate`), so the patched object would be rejected;
//! - exempt namespaces, and objects exempt from `emptydir-size-limit-required` (or `*`) by
//!   the `volguard.io/exempt` annotation when the policy allows it;
//! - objects created by a trusted controller (with a controller ownerReference) and mirror
//!   Pods: see [`Skip::Controller`] and [`Skip::Mirror`].

use std::fmt;

use crate::engine::model::{Medium, Volume};
use crate::engine::policy::Policy;
use crate::engine::rules::RuleId;
use crate::engine::verdict::{self, Operation, Origin, Request, Requester};
use crate::engine::workload;

/// One `add` operation of the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addition {
    /// JSON Pointer (RFC 6901) of the member added, e.g.
    /// `/spec/template/spec/volumes/0/emptyDir/sizeLimit`.
    pub pointer: String,
    /// The value added: a quantity string, or `{"sizeLimit": q}` for a volume the apiserver
    /// would default to `emptyDir: {}` but the manifest leaves without a source.
    pub value: serde_json::Value,
    /// Field path in volguard's notation, e.g. `spec.volumes[0].emptyDir.sizeLimit`.
    pub path: String,
    /// The volume's name.
    pub volume: String,
    /// The quantity set, canonical (`1Gi`).
    pub size: String,
    /// The policy key the value comes from (`defaults.emptyDir.diskSizeLimit`).
    pub source: &'static str,
}

impl fmt::Display for Addition {
    /// The warning returned with the patch.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[mutate] {}: set to {} for emptyDir {:?} (policy {})",
            self.path, self.size, self.volume, self.source
        )
    }
}

/// Why an object was not considered for patching at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The policy sets no `defaults`.
    NoDefaults,
    /// Not a kind with a Pod spec, a DELETE or CONNECT, or a subresource.
    NotApplicable,
    /// A Pod UPDATE: the Pod spec's volumes are immutable.
    PodUpdate,
    /// `exemptNamespaces`.
    ExemptNamespace,
    /// `volguard.io/exempt` names `emptydir-size-limit-required` or `*` (and the policy
    /// allows the annotation).
    ExemptAnnotation,
    /// Created by a trusted controller from a workload (a ReplicaSet of a Deployment, a Pod
    /// of a ReplicaSet, a Job of a CronJob, ...). The workload's template is where the
    /// default belongs, and it was patched when the workload was written. Patching the copy
    /// would make it differ from its template: the Deployment controller finds its current
    /// ReplicaSet by comparing templates (`pkg/controller/deployment/util/deployment_util.go`
    /// `FindNewReplicaSet` / `EqualIgnoreHash`), would no longer recognise a patched one and
    /// would create another, and another. What a controller creates from an unpatched
    /// (older) template is judged by `/validate` as `controllerObjects` says.
    Controller,
    /// The mirror of a static Pod: the kubelet runs the manifest on its disk, so a patch
    /// would only make the API copy lie about what runs.
    Mirror,
}

impl Skip {
    /// The `result` label of `volguard_mutations_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Skip::NoDefaults => "no_defaults",
            Skip::NotApplicable => "skipped",
            Skip::PodUpdate => "pod_update",
            Skip::ExemptNamespace => "exempt_namespace",
            Skip::ExemptAnnotation => "exempt_annotation",
            Skip::Controller => "controller",
            Skip::Mirror => "mirror",
        }
    }
}

/// What `/mutate` does with one object.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Mutation {
    /// The `add` operations, in volume order; empty: no patch.
    pub additions: Vec<Addition>,
    pub skipped: Option<Skip>,
}

impl Mutation {
    /// Not considered (a subresource, an object-less request).
    pub fn not_applicable() -> Self {
        Mutation::skip(Skip::NotApplicable)
    }

    fn skip(why: Skip) -> Self {
        Mutation {
            additions: Vec::new(),
            skipped: Some(why),
        }
    }

    /// `patched`, `unchanged`, or why it was skipped (the metric's `result` label).
    pub fn result(&self) -> &'static str {
        match self.skipped {
            Some(s) => s.as_str(),
            None if self.additions.is_empty() => "unchanged",
            None => "patched",
        }
    }

    /// The RFC 6902 patch document (a JSON array of `add` operations), or `None` when there
    /// is nothing to add.
    pub fn patch_json(&self) -> Option<Vec<u8>> {
        if self.additions.is_empty() {
            return None;
        }
        let ops: Vec<serde_json::Value> = self
            .additions
            .iter()
            .map(|a| serde_json::json!({"op": "add", "path": a.pointer, "value": a.value}))
            .collect();
        Some(serde_json::to_vec(&ops).expect("a JSON patch serialises"))
    }

    /// One warning per addition.
    pub fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.additions.iter().map(|a| a.to_string())
    }
}

/// A JSON Pointer (RFC 6901) from reference tokens: `~` is written `~0` and `/` is `~1`.
pub fn json_pointer<'a>(tokens: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for t in tokens {
        out.push('/');
        for c in t.chars() {
            match c {
                '~' => out.push_str("~0"),
                '/' => out.push_str("~1"),
                c => out.push(c),
            }
        }
    }
    out
}

/// The additions the policy's `defaults` make to `req.object`, sent by `requester` (`None`: a
/// manifest, treated as a user's). Pure and deterministic.
pub fn mutate(policy: &Policy, req: &Request<'_>, requester: Option<&Requester<'_>>) -> Mutation {
    let defaults = &policy.defaults.empty_dir;
    if policy.defaults.is_empty() {
        return Mutation::skip(Skip::NoDefaults);
    }
    if !matches!(req.operation, Operation::Create | Operation::Update) {
        return Mutation::skip(Skip::NotApplicable);
    }
    let Some(view) = workload::pod_view(req.kind, req.object) else {
        return Mutation::skip(Skip::NotApplicable);
    };
    if req.kind == "Pod" && req.operation == Operation::Update {
        return Mutation::skip(Skip::PodUpdate);
    }
    if policy.is_exempt_namespace(req.namespace) {
        return Mutation::skip(Skip::ExemptNamespace);
    }
    if policy.allow_exemption_annotation
        && verdict::exempted_rules(&req.object.metadata, view.template_meta)
            .iter()
            .any(|r| *r == "*" || *r == RuleId::EmptydirSizeLimitRequired.name())
    {
        return Mutation::skip(Skip::ExemptAnnotation);
    }
    match verdict::origin(policy, req, requester) {
        Origin::Controller => return Mutation::skip(Skip::Controller),
        Origin::Mirror => return Mutation::skip(Skip::Mirror),
        Origin::User => {}
    }

    let base: Vec<&str> = view.prefix.split('.').filter(|s| !s.is_empty()).collect();
    let mut additions = Vec::new();
    for (i, v) in view.spec.volumes.iter().enumerate() {
        let Some(e) = candidate(v) else { continue };
        let (size, source) = match e {
            Medium::Disk => (defaults.disk_size_limit, "defaults.emptyDir.diskSizeLimit"),
            Medium::Memory => (
                defaults.memory_size_limit,
                "defaults.emptyDir.memorySizeLimit",
            ),
            Medium::HugePages | Medium::Unknown => continue,
        };
        let Some(size) = size else { continue };
        let size = size.to_string();
        let index = i.to_string();
        let volume = base
            .iter()
            .copied()
            .chain(["volumes", index.as_str()])
            .collect::<Vec<_>>();
        let (pointer, value) = if v.empty_dir_defaulted {
            // Only a manifest gets here (the apiserver sends `emptyDir: {}`): add the whole
            // member, as `SetDefaults_Volume` would have, with the limit in it.
            (
                json_pointer(volume.iter().copied().chain(["emptyDir"])),
                serde_json::json!({ "sizeLimit": size }),
            )
        } else {
            (
                json_pointer(volume.iter().copied().chain(["emptyDir", "sizeLimit"])),
                serde_json::Value::String(size.clone()),
            )
        };
        additions.push(Addition {
            pointer,
            value,
            path: format!("{}volumes[{i}].emptyDir.sizeLimit", view.prefix),
            volume: v.name.to_string(),
            size,
            source,
        });
    }
    Mutation {
        additions,
        skipped: None,
    }
}

/// The medium of an emptyDir volume without `sizeLimit` (a StatefulSet volume shadowed by a
/// volumeClaimTemplate is a PVC by then: the model has no emptyDir for it).
fn candidate(v: &Volume) -> Option<Medium> {
    let e = v.empty_dir.as_ref()?;
    if v.claim_template || v.source.as_deref() != Some("emptyDir") || e.size_limit.is_some() {
        return None;
    }
    Some(e.medium())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::model::Object;
    use rstest::rstest;
    use serde::Deserialize;
    use serde_json::{Value, json};

    const POLICY: &str = "defaults:\n  emptyDir: {diskSizeLimit: 1024Mi, memorySizeLimit: 256Mi}\nallowExemptionAnnotation: true\n";

    /// RFC 6902 §4.1 `add` into an object member (what these patches use), applied to a DOM.
    fn apply(doc: &mut Value, patch: &[u8]) {
        let ops: Vec<Value> = serde_json::from_slice(patch).unwrap();
        for op in ops {
            assert_eq!(op["op"], "add");
            let path = op["path"].as_str().unwrap();
            let (parent, last) = path.rsplit_once('/').unwrap();
            let target = doc
                .pointer_mut(parent)
                .unwrap_or_else(|| panic!("{parent} does not exist"));
            let key = last.replace("~1", "/").replace("~0", "~");
            target
                .as_object_mut()
                .unwrap_or_else(|| panic!("{parent} is not an object"))
                .insert(key, op["value"].clone());
        }
    }

    fn run(
        policy: &str,
        doc: &Value,
        ns: &str,
        op: Operation,
        requester: Option<&Requester<'_>>,
    ) -> Mutation {
        let policy = Policy::parse(policy, "p.yaml").unwrap();
        let obj = Object::deserialize(doc).unwrap();
        let kind = doc["kind"].as_str().unwrap();
        mutate(
            &policy,
            &Request {
                kind,
                namespace: ns,
                operation: op,
                object: &obj,
                old_object: None,
            },
            requester,
        )
    }

    fn pod_spec(volumes: Value) -> Value {
        json!({"containers": [{"name": "c", "image": "busybox"}], "volumes": volumes})
    }

    fn wrap(kind: &str, spec: Value) -> Value {
        let template = json!({"metadata": {"labels": {"app": "a"}}, "spec": spec});
        match kind {
            "Pod" => {
                json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})
            }
            "Deployment" => {
                json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                "spec": {"replicas": 2, "template": template}})
            }
            "CronJob" => {
                json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
                "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}})
            }
            "StatefulSet" => {
                json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
                "spec": {"template": template,
                         "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}})
            }
            "PodTemplate" => {
                json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template})
            }
            _ => unreachable!(),
        }
    }

    /// Each case: kind, volumes, and the expected volumes after the patch (`None`: no patch).
    /// What the apiserver sends has `emptyDir: {}` for a volume written without a source
    /// (`pkg/apis/core/v1/defaults.go:SetDefaults_Volume`), and a StatefulSet template volume
    /// named like a volumeClaimTemplate becomes that claim in every Pod
    /// (`pkg/controller/statefulset/stateful_set_utils.go:updateStorage`), so it is never
    /// patched.
    #[rstest]
    #[case::pod_disk("Pod",
        json!([{"name": "a", "emptyDir": {}}]),
        Some(json!([{"name": "a", "emptyDir": {"sizeLimit": "1Gi"}}])))]
    #[case::pod_memory_and_disk("Pod",
        json!([{"name": "m", "emptyDir": {"medium": "Memory"}}, {"name": "d", "emptyDir": {"medium": ""}}]),
        Some(json!([{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}},
                    {"name": "d", "emptyDir": {"medium": "", "sizeLimit": "1Gi"}}])))]
    #[case::already_sized("Pod",
        json!([{"name": "a", "emptyDir": {"sizeLimit": "5Gi"}}, {"name": "z", "emptyDir": {"sizeLimit": "0"}}]),
        None)]
    #[case::hugepages_and_unknown_media("Pod",
        json!([{"name": "h", "emptyDir": {"medium": "HugePages-2Mi"}}, {"name": "u", "emptyDir": {"medium": "memory"}}]),
        None)]
    #[case::other_sources("Pod",
        json!([{"name": "s", "secret": {"secretName": "x"}}, {"name": "c", "configMap": {"name": "x"}}]),
        None)]
    #[case::source_less_manifest_volume("Pod",
        json!([{"name": "a"}, {"name": "b", "emptyDir": null}]),
        Some(json!([{"name": "a", "emptyDir": {"sizeLimit": "1Gi"}}, {"name": "b", "emptyDir": {"sizeLimit": "1Gi"}}])))]
    #[case::null_size_limit("Pod",
        json!([{"name": "a", "emptyDir": {"sizeLimit": null}}]),
        Some(json!([{"name": "a", "emptyDir": {"sizeLimit": "1Gi"}}])))]
    #[case::deployment("Deployment",
        json!([{"name": "s", "secret": {"secretName": "x"}}, {"name": "a", "emptyDir": {}}]),
        Some(json!([{"name": "s", "secret": {"secretName": "x"}}, {"name": "a", "emptyDir": {"sizeLimit": "1Gi"}}])))]
    #[case::cronjob("CronJob",
        json!([{"name": "m", "emptyDir": {"medium": "Memory"}}]),
        Some(json!([{"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "256Mi"}}])))]
    #[case::statefulset_shadowed_volume("StatefulSet",
        json!([{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]),
        Some(json!([{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}])))]
    #[case::podtemplate("PodTemplate",
        json!([{"name": "a", "emptyDir": {}}]),
        Some(json!([{"name": "a", "emptyDir": {"sizeLimit": "1Gi"}}])))]
    fn patches(#[case] kind: &str, #[case] volumes: Value, #[case] want: Option<Value>) {
        let doc = wrap(kind, pod_spec(volumes.clone()));
        let m = run(POLICY, &doc, "default", Operation::Create, None);
        assert_eq!(m.skipped, None);
        match (m.patch_json(), want) {
            (None, None) => assert_eq!(m.result(), "unchanged"),
            (Some(patch), Some(want)) => {
                assert_eq!(m.result(), "patched");
                let mut patched = doc.clone();
                apply(&mut patched, &patch);
                let mut expected = doc.clone();
                *volumes_mut(&mut expected) = want;
                assert_eq!(patched, expected);
                // Idempotent: the patched object needs nothing more.
                let again = run(POLICY, &patched, "default", Operation::Create, None);
                assert_eq!(again.additions, [], "second run");
                // A workload UPDATE is patched the same way (templates are mutable).
                if kind != "Pod" {
                    let upd = run(POLICY, &doc, "default", Operation::Update, None);
                    assert_eq!(upd.additions, m.additions);
                }
            }
            (got, want) => panic!(
                "patch {:?}, want {want:?}",
                got.map(|p| String::from_utf8(p).unwrap())
            ),
        }
    }

    fn volumes_mut(doc: &mut Value) -> &mut Value {
        let p = match doc["kind"].as_str().unwrap() {
            "Pod" => "/spec/volumes",
            "CronJob" => "/spec/jobTemplate/spec/template/spec/volumes",
            "PodTemplate" => "/template/spec/volumes",
            _ => "/spec/template/spec/volumes",
        };
        doc.pointer_mut(p).unwrap()
    }

    #[test]
    fn pointers_paths_and_warnings() {
        let doc = wrap("CronJob", pod_spec(json!([{"name": "x", "emptyDir": {}}])));
        let m = run(POLICY, &doc, "default", Operation::Create, None);
        let a = &m.additions[0];
        assert_eq!(
            a.pointer,
            "/spec/jobTemplate/spec/template/spec/volumes/0/emptyDir/sizeLimit"
        );
        assert_eq!(
            a.path,
            "spec.jobTemplate.spec.template.spec.volumes[0].emptyDir.sizeLimit"
        );
        assert_eq!(
            m.warnings().collect::<Vec<_>>(),
            [
                "[mutate] spec.jobTemplate.spec.template.spec.volumes[0].emptyDir.sizeLimit: set to 1Gi for emptyDir \"x\" (policy defaults.emptyDir.diskSizeLimit)"
            ]
        );
        assert_eq!(
            String::from_utf8(m.patch_json().unwrap()).unwrap(),
            r#"[{"op":"add","path":"/spec/jobTemplate/spec/template/spec/volumes/0/emptyDir/sizeLimit","value":"1Gi"}]"#
        );
    }

    /// RFC 6901 §3: `~` is `~0`, `/` is `~1` (in that order, so `~1` stays two characters).
    #[test]
    fn json_pointer_escapes() {
        assert_eq!(json_pointer(["a", "b/c", "d~e", "~1"]), "/a/b~1c/d~0e/~01");
        assert_eq!(json_pointer(["spec", "volumes", "10"]), "/spec/volumes/10");
        assert_eq!(json_pointer([""]), "/");
        assert_eq!(json_pointer(std::iter::empty()), "");
    }

    #[test]
    fn only_the_media_with_a_default() {
        let doc = wrap(
            "Pod",
            pod_spec(
                json!([{"name": "m", "emptyDir": {"medium": "Memory"}}, {"name": "d", "emptyDir": {}}]),
            ),
        );
        let m = run(
            "defaults: {emptyDir: {memorySizeLimit: 64Mi}}\n",
            &doc,
            "default",
            Operation::Create,
            None,
        );
        assert_eq!(m.additions.len(), 1);
        assert_eq!(
            (m.additions[0].volume.as_str(), m.additions[0].size.as_str()),
            ("m", "64Mi")
        );
    }

    fn unsized_pod(annotations: Value, owner: bool) -> Value {
        let mut doc = wrap("Pod", pod_spec(json!([{"name": "a", "emptyDir": {}}])));
        doc["metadata"]["annotations"] = annotations;
        if owner {
            doc["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "name": "web-5d", "uid": "u", "controller": true}]);
        }
        doc
    }

    const RS_CONTROLLER: &str = "system:serviceaccount:kube-system:replicaset-controller";

    #[rstest]
    #[case::no_defaults("{}", unsized_pod(json!({}), false), "default", Operation::Create, None, Skip::NoDefaults)]
    #[case::exempt_namespace(POLICY, unsized_pod(json!({}), false), "kube-system", Operation::Create, None, Skip::ExemptNamespace)]
    #[case::exempt_annotation(POLICY, unsized_pod(json!({"volguard.io/exempt": "volume-unused, emptydir-size-limit-required"}), false),
        "default", Operation::Create, None, Skip::ExemptAnnotation)]
    #[case::exempt_everything(POLICY, unsized_pod(json!({"volguard.io/exempt": "*"}), false),
        "default", Operation::Create, None, Skip::ExemptAnnotation)]
    #[case::pod_update(POLICY, unsized_pod(json!({}), false), "default", Operation::Update, None, Skip::PodUpdate)]
    #[case::delete(POLICY, unsized_pod(json!({}), false), "default", Operation::Delete, None, Skip::NotApplicable)]
    #[case::not_a_pod_kind(POLICY, json!({"kind": "Service", "spec": {"ports": []}}), "default", Operation::Create, None, Skip::NotApplicable)]
    #[case::controller_created(POLICY, unsized_pod(json!({}), true), "default", Operation::Create, Some(RS_CONTROLLER), Skip::Controller)]
    #[case::controller_created_under_enforce(
        "controllerObjects: enforce\ndefaults: {emptyDir: {diskSizeLimit: 1Gi}}\n",
        unsized_pod(json!({}), true), "default", Operation::Create, Some(RS_CONTROLLER), Skip::Controller)]
    #[case::mirror_pod(POLICY, unsized_pod(json!({"kubernetes.io/config.mirror": "abc"}), false), "default", Operation::Create,
        Some("system:node:n1"), Skip::Mirror)]
    fn skips(
        #[case] policy: &str,
        #[case] doc: Value,
        #[case] ns: &str,
        #[case] op: Operation,
        #[case] user: Option<&str>,
        #[case] why: Skip,
    ) {
        let groups = vec![if user.is_some_and(|u| u.starts_with("system:node:")) {
            "system:nodes".into()
        } else {
            "system:authenticated".into()
        }];
        let requester = user.map(|u| Requester {
            username: u,
            groups: &groups,
        });
        let m = run(policy, &doc, ns, op, requester.as_ref());
        assert_eq!(m.skipped, Some(why));
        assert!(m.additions.is_empty() && m.patch_json().is_none());
    }

    /// The exemption annotation counts only when the policy allows it, only for the rule the
    /// default answers (or `*`), and the template's counts too; an ownerReference a user made
    /// up, or a controller that is not trusted, changes nothing.
    #[test]
    fn exemptions_that_do_not_apply() {
        let other_rule = unsized_pod(json!({"volguard.io/exempt": "volume-unused"}), false);
        assert_eq!(
            run(POLICY, &other_rule, "default", Operation::Create, None).result(),
            "patched"
        );
        let ignored = unsized_pod(json!({"volguard.io/exempt": "*"}), false);
        let strict = "defaults: {emptyDir: {diskSizeLimit: 1Gi}}\n";
        assert_eq!(
            run(strict, &ignored, "default", Operation::Create, None).result(),
            "patched"
        );
        let mut dep = wrap(
            "Deployment",
            pod_spec(json!([{"name": "a", "emptyDir": {}}])),
        );
        dep["spec"]["template"]["metadata"]["annotations"] = json!({"volguard.io/exempt": "*"});
        assert_eq!(
            run(POLICY, &dep, "default", Operation::Create, None).skipped,
            Some(Skip::ExemptAnnotation)
        );
        let groups = vec!["system:authenticated".into()];
        let alice = Requester {
            username: "alice",
            groups: &groups,
        };
        let owned = unsized_pod(json!({}), true);
        assert_eq!(
            run(POLICY, &owned, "default", Operation::Create, Some(&alice)).result(),
            "patched"
        );
        let mirror = unsized_pod(json!({"kubernetes.io/config.mirror": "x"}), false);
        assert_eq!(
            run(POLICY, &mirror, "default", Operation::Create, Some(&alice)).result(),
            "patched"
        );
    }

    /// Patching first and judging the patched object (what the apiserver does: mutating
    /// webhooks run before validating ones) leaves nothing for `emptydir-size-limit-required`.
    #[test]
    fn the_patched_object_passes_validation() {
        let doc = wrap(
            "Deployment",
            json!({"containers": [{"name": "c", "volumeMounts": [{"name": "a", "mountPath": "/a"}, {"name": "m", "mountPath": "/m"}],
                                   "resources": {"limits": {"memory": "1Gi"}}}],
                   "volumes": [{"name": "a", "emptyDir": {}}, {"name": "m", "emptyDir": {"medium": "Memory"}}]}),
        );
        let policy = Policy::parse(POLICY, "p").unwrap();
        let judge = |doc: &Value| {
            let obj = Object::deserialize(doc).unwrap();
            crate::engine::verdict::evaluate(
                &policy,
                &Request::create("Deployment", "default", &obj),
            )
        };
        assert!(!judge(&doc).allowed);
        let m = run(POLICY, &doc, "default", Operation::Create, None);
        let mut patched = doc.clone();
        apply(&mut patched, &m.patch_json().unwrap());
        let v = judge(&patched);
        assert!(v.allowed && v.findings.is_empty(), "{:?}", v.findings);
    }
}
