//! `emptydir-within-ephemeral-storage`: disk emptyDirs fit the Pod's ephemeral-storage limit.

use super::{Action, NoOptions, PodCtx, RuleId, RuleMeta, Violation, first_over, quoted};
use crate::engine::model::Medium;

pub const META: RuleMeta = RuleMeta {
    name: "emptydir-within-ephemeral-storage",
    default_action: Action::Warn,
    summary: "disk emptyDirs summing above the Pod's ephemeral-storage limit (evicted before full)",
    explanation: "Disk-backed emptyDirs count against the Pod's ephemeral-storage limit as the kubelet's \
         eviction manager computes it (`podEphemeralStorageLimitEviction`, `PodLimits`): the sum of \
         the limits that exist over containers and sidecars, max'ed with each init container plus \
         the sidecars before it, `spec.overhead` added. It exists as soon as one container sets \
         `ephemeral-storage` (pod-level `spec.resources` cannot). If the positive `sizeLimit`s add \
         up to more, the kubelet evicts the Pod before the volumes are full.",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    let mut disk = ctx
        .empty_dirs()
        .filter(|(_, _, _, m)| *m == Medium::Disk)
        .peekable();
    if disk.peek().is_none() {
        return;
    }
    // Without a limit the kubelet does not evict on this basis: nothing to compare.
    let Some(limit) = ctx.ephemeral_storage_limit() else {
        return;
    };
    if let Some((i, v, sum)) = first_over(ctx, disk, limit) {
        out.push(Violation {
            rule: RuleId::EmptydirWithinEphemeralStorage,
            path: format!("{}.emptyDir.sizeLimit", ctx.volume_field(i)),
            message: format!(
                "disk emptyDirs sum to {sum} (through {}), over the Pod's {limit} ephemeral-storage limit, \
                 so it is evicted first; lower sizeLimit or raise the limit",
                quoted(&v.name)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::EmptydirWithinEphemeralStorage as R;
    use crate::engine::rules::testutil::{paths, run};
    use rstest::rstest;

    const VOLS: &str = "  volumes:\n  - {name: a, emptyDir: {sizeLimit: 2Gi}}\n  - {name: m, emptyDir: {medium: Memory, sizeLimit: 50Gi}}\n  - {name: b, emptyDir: {sizeLimit: 2Gi}}\n";

    // kubernetes/kubernetes pkg/kubelet/eviction/eviction_manager.go:
    // podEphemeralStorageLimitEviction (component-helpers resource/helpers.go:PodLimits).
    #[rstest]
    #[case::fits("  containers:\n  - {name: x, resources: {limits: {ephemeral-storage: 2Gi}}}\n  - {name: y, resources: {limits: {ephemeral-storage: 2Gi}}}\n", &[])]
    #[case::exceeds("  containers:\n  - {name: x, resources: {limits: {ephemeral-storage: 3Gi}}}\n", &["spec.volumes[2].emptyDir.sizeLimit"])]
    #[case::one_container_unlimited_partial_limit("  containers:\n  - {name: x, resources: {limits: {ephemeral-storage: 3Gi}}}\n  - {name: y}\n", &["spec.volumes[2].emptyDir.sizeLimit"])]
    #[case::sidecar_counts("  initContainers:\n  - {name: s, restartPolicy: Always, resources: {limits: {ephemeral-storage: 1Gi}}}\n  containers:\n  - {name: x, resources: {limits: {ephemeral-storage: 3Gi}}}\n", &[])]
    #[case::pod_level_not_supported("  resources: {limits: {ephemeral-storage: 1Gi}}\n  containers:\n  - {name: x}\n", &[])]
    #[case::no_limits("  containers:\n  - {name: x}\n", &[])]
    fn cases(#[case] rest: &str, #[case] want: &[&str]) {
        let obj = format!("kind: Pod\nspec:\n{VOLS}{rest}");
        assert_eq!(paths(&run(R, &obj)), want);
    }
}
