//! `mount-volume-exists`: every volumeMount and volumeDevice names a declared volume.

use super::{Action, NoOptions, RuleMeta, PodCtx, RuleId, Violation, quoted};

pub const META: RuleMeta = RuleMeta {
    name: "mount-volume-exists",
    default_action: Action::Deny,
    summary: "a volumeMount or volumeDevice names no volume of the Pod (nor a StatefulSet claim template)",
    explanation: "Every volumeMount and volumeDevice must name a volume declared in spec.volumes (or, for a \
         StatefulSet, a volumeClaimTemplate). The apiserver rejects a Pod that breaks this, but a \
         workload template is only checked when its Pods are created, so the mistake surfaces as a \
         ReplicaSet that silently cannot create Pods.",
    options: &[],
    apiserver: "a mount or device naming no volume (exact name)",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    let known = |name: &str| ctx.volume(name).is_some() || ctx.is_claim_template(name);
    for c in &ctx.containers {
        for (j, m) in c.c.volume_mounts.iter().enumerate() {
            if !known(&m.name) {
                out.push(Violation {
                    rule: RuleId::MountVolumeExists,
                    path: c.mount_field(ctx.prefix, j),
                    message: format!(
                        "container {} mounts {}, which is not a volume of the Pod; add the volume or fix the name",
                        quoted(&c.c.name),
                        quoted(&m.name)
                    ),
                });
            }
        }
        for (j, d) in c.c.volume_devices.iter().enumerate() {
            if !known(&d.name) {
                out.push(Violation {
                    rule: RuleId::MountVolumeExists,
                    path: c.device_field(ctx.prefix, j),
                    message: format!(
                        "container {} uses device {}, which is not a volume of the Pod; add the volume or fix the name",
                        quoted(&c.c.name),
                        quoted(&d.name)
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::MountVolumeExists as R;
    use crate::engine::rules::testutil::{paths, run};
    use rstest::rstest;

    #[rstest]
    #[case::all_declared(r#"
kind: Pod
spec:
  volumes: [{name: a, emptyDir: {}}]
  containers: [{name: c, volumeMounts: [{name: a, mountPath: /a}]}]
"#, &[])]
    #[case::missing_volume(r#"
kind: Pod
spec:
  volumes: [{name: a, emptyDir: {}}]
  containers: [{name: c, volumeMounts: [{name: a, mountPath: /a}, {name: b, mountPath: /b}]}]
"#, &["spec.containers[0].volumeMounts[1]"])]
    #[case::init_and_ephemeral(r#"
kind: Pod
spec:
  containers: [{name: c}]
  initContainers: [{name: i, volumeMounts: [{name: x, mountPath: /x}]}]
  ephemeralContainers: [{name: e, volumeMounts: [{name: y, mountPath: /y}]}]
"#, &["spec.initContainers[0].volumeMounts[0]", "spec.ephemeralContainers[0].volumeMounts[0]"])]
    #[case::missing_device(r#"
kind: Pod
spec:
  containers: [{name: c, volumeDevices: [{name: blk, devicePath: /dev/xvda}]}]
"#, &["spec.containers[0].volumeDevices[0]"])]
    #[case::claim_template_counts(r#"
kind: StatefulSet
spec:
  volumeClaimTemplates: [{metadata: {name: data}}]
  template:
    spec:
      containers: [{name: c, volumeMounts: [{name: data, mountPath: /data}, {name: nope, mountPath: /n}]}]
"#, &["spec.template.spec.containers[0].volumeMounts[1]"])]
    fn cases(#[case] obj: &str, #[case] want: &[&str]) {
        assert_eq!(paths(&run(R, obj)), want);
    }

    #[test]
    fn message_names_container_and_volume() {
        let v = run(
            R,
            "kind: Pod\nspec:\n  containers: [{name: web, volumeMounts: [{name: cache, mountPath: /c}]}]\n",
        );
        assert!(
            v[0].message.contains("\"web\"") && v[0].message.contains("\"cache\""),
            "{}",
            v[0]
        );
    }
}
