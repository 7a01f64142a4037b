//! Where the Pod spec lives in each kind, and the field-path prefix that leads to it.

use crate::engine::model::{Meta, Object, Spec};

/// Kinds that carry a Pod spec; any other kind gets no violations.
pub const POD_KINDS: &[&str] = &[
    "Pod",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "ReplicationController",
    "Job",
    "CronJob",
    "PodTemplate",
];

/// The Pod spec inside an object.
pub struct PodView<'a> {
    /// Path of the PodSpec inside the object, with a trailing dot.
    pub prefix: &'static str,
    pub spec: &'a Spec<'a>,
    /// StatefulSet `volumeClaimTemplates` names.
    pub claim_templates: Vec<&'a str>,
    /// Metadata of the Pod template, for workloads (its annotations can exempt rules).
    pub template_meta: Option<&'a Meta<'a>>,
}

/// Finds the Pod spec of `obj`, read as `kind`. `None` for other kinds, or a workload
/// without a template spec.
pub fn pod_view<'a>(kind: &str, obj: &'a Object) -> Option<PodView<'a>> {
    let spec = obj.spec.as_ref();
    let view = |prefix, spec, template_meta| PodView {
        prefix,
        spec,
        claim_templates: Vec::new(),
        template_meta,
    };
    match kind {
        "Pod" => spec.map(|s| view("spec.", s, None)),
        "Deployment" | "DaemonSet" | "ReplicaSet" | "ReplicationController" | "Job" => {
            let t = spec?.template.as_deref()?;
            t.spec
                .as_ref()
                .map(|s| view("spec.template.spec.", s, Some(&t.metadata)))
        }
        "StatefulSet" => {
            let outer = spec?;
            let t = outer.template.as_deref()?;
            let mut v = view("spec.template.spec.", t.spec.as_ref()?, Some(&t.metadata));
            // In order, an unnamed one as "" (rules report them by index).
            v.claim_templates = outer
                .volume_claim_templates
                .iter()
                .map(|c| c.metadata.name.as_deref().unwrap_or_default())
                .collect();
            Some(v)
        }
        "CronJob" => {
            let job = spec?.job_template.as_deref()?.spec.as_ref()?;
            let t = job.template.as_deref()?;
            t.spec
                .as_ref()
                .map(|s| view("spec.jobTemplate.spec.template.spec.", s, Some(&t.metadata)))
        }
        "PodTemplate" => {
            let t = obj.template.as_deref()?;
            t.spec
                .as_ref()
                .map(|s| view("template.spec.", s, Some(&t.metadata)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::pod("kind: Pod\nspec: {containers: [{name: c}]}", "spec.")]
    #[case::deployment(
        "kind: Deployment\nspec: {template: {spec: {containers: [{name: c}]}}}",
        "spec.template.spec."
    )]
    #[case::daemonset(
        "kind: DaemonSet\nspec: {template: {spec: {containers: [{name: c}]}}}",
        "spec.template.spec."
    )]
    #[case::replicaset(
        "kind: ReplicaSet\nspec: {template: {spec: {containers: [{name: c}]}}}",
        "spec.template.spec."
    )]
    #[case::rc(
        "kind: ReplicationController\nspec: {template: {spec: {containers: [{name: c}]}}}",
        "spec.template.spec."
    )]
    #[case::job(
        "kind: Job\nspec: {template: {spec: {containers: [{name: c}]}}}",
        "spec.template.spec."
    )]
    #[case::statefulset(
        "kind: StatefulSet\nspec: {template: {spec: {containers: [{name: c}]}}}",
        "spec.template.spec."
    )]
    #[case::cronjob(
        "kind: CronJob\nspec: {jobTemplate: {spec: {template: {spec: {containers: [{name: c}]}}}}}",
        "spec.jobTemplate.spec.template.spec."
    )]
    #[case::podtemplate(
        "kind: PodTemplate\ntemplate: {spec: {containers: [{name: c}]}}",
        "template.spec."
    )]
    fn prefixes(#[case] yaml: &str, #[case] prefix: &str) {
        let obj: Object = serde_yaml_ng::from_str(yaml).unwrap();
        let v = pod_view(&obj.kind, &obj).unwrap();
        assert_eq!(v.prefix, prefix);
        assert_eq!(v.spec.containers[0].name, "c");
    }

    #[rstest]
    #[case::service("kind: Service\nspec: {ports: [{port: 80}]}")]
    #[case::configmap("kind: ConfigMap\ndata: {a: b}")]
    #[case::deployment_without_template("kind: Deployment\nspec: {replicas: 2}")]
    fn none(#[case] yaml: &str) {
        let obj: Object = serde_yaml_ng::from_str(yaml).unwrap();
        assert!(pod_view(&obj.kind, &obj).is_none());
    }

    #[test]
    fn statefulset_claim_templates() {
        let obj: Object = serde_yaml_ng::from_str(
            "kind: StatefulSet\nspec:\n  volumeClaimTemplates: [{metadata: {name: data}}, {metadata: {name: logs}}]\n  template: {spec: {containers: [{name: c}]}}",
        )
        .unwrap();
        assert_eq!(
            pod_view("StatefulSet", &obj).unwrap().claim_templates,
            ["data", "logs"]
        );
    }
}
