//! `volume-unused`: every volume is mounted or used as a device by some container.

use std::collections::HashSet;

use super::{Action, NoOptions, RuleMeta, PodCtx, RuleId, Violation, quoted};

pub const META: RuleMeta = RuleMeta {
    name: "volume-unused",
    default_action: Action::Warn,
    summary: "a volume no container mounts or uses as a device",
    explanation: "A volume nobody mounts is usually a typo in a mount's name or a leftover; it still costs \
         the kubelet work (and, for a PVC, an attachment). A StatefulSet volumeClaimTemplate nobody \
         mounts still gets each replica a PVC and a disk (the controller's updateStorage adds every \
         claim template to the Pod's volumes).",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    let vols = ctx.volumes();
    // The names any container mounts or uses as a device: one hash set, O(mounts + volumes).
    // Every volume of a used name counts as used (duplicates are another rule's business).
    let used: HashSet<&str> = ctx
        .containers
        .iter()
        .flat_map(|c| {
            let names = c.c.volume_mounts.iter().map(|m| &*m.name);
            names.chain(c.c.volume_devices.iter().map(|d| &*d.name))
        })
        .collect();
    for (i, v) in vols.iter().enumerate() {
        if !used.contains(&*v.name) {
            out.push(Violation {
                rule: RuleId::VolumeUnused,
                path: ctx.volume_field(i),
                message: format!(
                    "volume {} is not mounted by any container; mount it or remove it",
                    quoted(&v.name)
                ),
            });
        }
    }
    // pkg/controller/statefulset/stateful_set_utils.go:updateStorage: every claim template
    // becomes a PVC volume of each Pod. One that replaced a template volume of its name was
    // judged above, as that volume.
    for (i, name) in ctx.claim_template_list.iter().enumerate() {
        if name.is_empty() || used.contains(name) || ctx.volume(name).is_some() {
            continue;
        }
        out.push(Violation {
            rule: RuleId::VolumeUnused,
            path: format!("spec.volumeClaimTemplates[{i}]"),
            message: format!(
                "volumeClaimTemplate {} is not mounted by any container, yet each replica gets a PVC \
                 and a disk for it; mount it or remove it",
                quoted(name)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::VolumeUnused as R;
    use crate::engine::rules::testutil::{paths, run};
    use rstest::rstest;

    #[rstest]
    #[case::all_used("kind: Pod\nspec:\n  volumes: [{name: a, emptyDir: {}}]\n  containers: [{name: c, volumeMounts: [{name: a, mountPath: /a}]}]\n", &[])]
    #[case::unused("kind: Pod\nspec:\n  volumes: [{name: a, emptyDir: {}}, {name: b, emptyDir: {}}]\n  containers: [{name: c, volumeMounts: [{name: a, mountPath: /a}]}]\n", &["spec.volumes[1]"])]
    #[case::used_by_init("kind: Pod\nspec:\n  volumes: [{name: a, emptyDir: {}}]\n  containers: [{name: c}]\n  initContainers: [{name: i, volumeMounts: [{name: a, mountPath: /a}]}]\n", &[])]
    #[case::used_by_ephemeral("kind: Pod\nspec:\n  volumes: [{name: a, emptyDir: {}}]\n  containers: [{name: c}]\n  ephemeralContainers: [{name: e, volumeMounts: [{name: a, mountPath: /a}]}]\n", &[])]
    #[case::used_as_device("kind: Pod\nspec:\n  volumes: [{name: blk, persistentVolumeClaim: {claimName: x}}]\n  containers: [{name: c, volumeDevices: [{name: blk, devicePath: /dev/xvda}]}]\n", &[])]
    #[case::no_containers("kind: Pod\nspec:\n  volumes: [{name: a, emptyDir: {}}]\n", &["spec.volumes[0]"])]
    // pkg/controller/statefulset/stateful_set_utils.go:updateStorage adds every
    // volumeClaimTemplate to each Pod's volumes (replacing a template volume of its name).
    #[case::claim_template_mounted("kind: StatefulSet\nspec:\n  volumeClaimTemplates: [{metadata: {name: data}}]\n  template: {spec: {containers: [{name: c, volumeMounts: [{name: data, mountPath: /d}]}]}}\n", &[])]
    #[case::claim_template_as_device("kind: StatefulSet\nspec:\n  volumeClaimTemplates: [{metadata: {name: blk}}]\n  template: {spec: {containers: [{name: c, volumeDevices: [{name: blk, devicePath: /dev/xvdb}]}]}}\n", &[])]
    #[case::claim_template_unmounted("kind: StatefulSet\nspec:\n  volumeClaimTemplates: [{metadata: {name: data}}, {metadata: {name: logs}}]\n  template: {spec: {containers: [{name: c, volumeMounts: [{name: data, mountPath: /d}]}]}}\n", &["spec.volumeClaimTemplates[1]"])]
    #[case::claim_template_used_by_init("kind: StatefulSet\nspec:\n  volumeClaimTemplates: [{metadata: {name: data}}]\n  template: {spec: {containers: [{name: c}], initContainers: [{name: i, volumeMounts: [{name: data, mountPath: /d}]}]}}\n", &[])]
    // The template volume it replaces is reported once, as that volume.
    #[case::claim_template_replacing_an_unmounted_volume("kind: StatefulSet\nspec:\n  volumeClaimTemplates: [{metadata: {name: data}}]\n  template: {spec: {volumes: [{name: data, emptyDir: {}}], containers: [{name: c}]}}\n", &["spec.template.spec.volumes[0]"])]
    fn cases(#[case] obj: &str, #[case] want: &[&str]) {
        assert_eq!(paths(&run(R, obj)), want);
    }
}
