//! `emptydir-ephemeral-storage-declared`: containers mounting a disk emptyDir declare
//! ephemeral-storage requests and limits.

use super::{Action, NoOptions, RuleMeta, ContainerKind, PodCtx, RuleId, Violation, quoted};
use crate::engine::model::{Medium, Resources};

fn declares(r: &Option<Resources>) -> (bool, bool) {
    let Some(r) = r else { return (false, false) };
    let req = r
        .requests
        .as_ref()
        .is_some_and(|l| l.ephemeral_storage.is_some());
    let lim = r
        .limits
        .as_ref()
        .is_some_and(|l| l.ephemeral_storage.is_some());
    (req, lim)
}

pub const META: RuleMeta = RuleMeta {
    name: "emptydir-ephemeral-storage-declared",
    default_action: Action::Off,
    summary: "a container mounting a disk emptyDir without ephemeral-storage requests and limits",
    explanation: "Without ephemeral-storage requests the scheduler cannot place the Pod where the disk \
         exists, and without limits the kubelet cannot attribute usage. Each regular and init \
         container mounting a disk emptyDir is checked on its own: pod-level `spec.resources` \
         does not support ephemeral-storage. A limit alone is a request too (the apiserver \
         defaults requests to limits in every Pod, `SetDefaults_Pod`). Off by default.",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    // ephemeral-storage is not a pod-level resource (`IsSupportedPodLevelResource`):
    // `spec.resources` cannot declare it for the containers.
    for c in &ctx.containers {
        // Ephemeral containers cannot set resources.
        if c.kind == ContainerKind::Ephemeral {
            continue;
        }
        let disk_dir = c.c.volume_mounts.iter().find_map(|m| {
            ctx.volume(&m.name)
                .filter(|(_, v)| {
                    v.empty_dir
                        .as_ref()
                        .is_some_and(|e| e.medium() == Medium::Disk)
                })
                .map(|(_, v)| v)
        });
        let Some(vol) = disk_dir else { continue };
        let missing = match declares(&c.c.resources) {
            (true, true) => continue,
            (false, false) => "requests and limits",
            (false, true) => "requests",
            (true, false) => "limits",
        };
        out.push(Violation {
            rule: RuleId::EmptydirEphemeralStorageDeclared,
            path: c.field(ctx.prefix),
            message: format!(
                "container {} mounts disk-backed emptyDir {} without ephemeral-storage {missing}; \
                 set resources.{{requests,limits}}.ephemeral-storage",
                quoted(&c.c.name),
                quoted(&vol.name)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::EmptydirEphemeralStorageDeclared as R;
    use crate::engine::rules::testutil::{paths, run};
    use rstest::rstest;

    const VOLS: &str = "  volumes:\n  - {name: d, emptyDir: {sizeLimit: 1Gi}}\n  - {name: m, emptyDir: {medium: Memory, sizeLimit: 1Gi}}\n";

    #[rstest]
    #[case::declared("  containers:\n  - {name: x, volumeMounts: [{name: d, mountPath: /d}], resources: {requests: {ephemeral-storage: 1Gi}, limits: {ephemeral-storage: 2Gi}}}\n", &[])]
    #[case::missing_both("  containers:\n  - {name: x, volumeMounts: [{name: d, mountPath: /d}]}\n", &["spec.containers[0]"])]
    // pkg/apis/core/v1/defaults.go:SetDefaults_Pod: a limit alone is also the request.
    #[case::limit_only_is_requested_too("  containers:\n  - {name: x, volumeMounts: [{name: d, mountPath: /d}], resources: {limits: {ephemeral-storage: 2Gi}}}\n", &[])]
    #[case::missing_limit("  containers:\n  - {name: x, volumeMounts: [{name: d, mountPath: /d}], resources: {requests: {ephemeral-storage: 1Gi}}}\n", &["spec.containers[0]"])]
    #[case::memory_only("  containers:\n  - {name: x, volumeMounts: [{name: m, mountPath: /m}]}\n", &[])]
    #[case::init_container("  containers:\n  - {name: x}\n  initContainers:\n  - {name: i, volumeMounts: [{name: d, mountPath: /d}]}\n", &["spec.initContainers[0]"])]
    #[case::ephemeral_skipped("  containers:\n  - {name: x}\n  ephemeralContainers:\n  - {name: e, volumeMounts: [{name: d, mountPath: /d}]}\n", &[])]
    // component-helpers resource/helpers.go:IsSupportedPodLevelResource: not ephemeral-storage.
    #[case::pod_level_does_not_count("  resources: {requests: {ephemeral-storage: 1Gi}, limits: {ephemeral-storage: 2Gi}}\n  containers:\n  - {name: x, volumeMounts: [{name: d, mountPath: /d}]}\n", &["spec.containers[0]"])]
    fn cases(#[case] rest: &str, #[case] want: &[&str]) {
        let obj = format!("kind: Pod\nspec:\n{VOLS}{rest}");
        assert_eq!(paths(&run(R, &obj)), want);
    }
}
