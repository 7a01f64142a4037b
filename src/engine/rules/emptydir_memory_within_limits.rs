//! `emptydir-memory-within-limits`: memory-backed emptyDirs fit the Pod's memory limit.

use super::{Action, NoOptions, PodCtx, RuleId, RuleMeta, Violation, first_over, quoted};
use crate::engine::model::Medium;

pub const META: RuleMeta = RuleMeta {
    name: "emptydir-memory-within-limits",
    default_action: Action::Deny,
    summary: "memory-backed emptyDirs whose sizeLimits add up to more than the Pod's memory limit",
    explanation: "A `medium: Memory` emptyDir is tmpfs: its pages count against the Pod's memory cgroup, \
         and the kubelet sizes it to the smallest of its `sizeLimit`, that limit and node \
         allocatable (`calculateEmptyDirMemorySize`). If the positive `sizeLimit`s add up to more \
         than the limit, the volumes can never all be filled: the Pod is OOM-killed first. The \
         limit is the kubelet's (`ResourceConfigForPod`): pod-level `spec.resources.limits.memory`, \
         else, when every container has a non-zero one and so does every init container \
         counted with the sidecars started before it, the sum over containers and sidecars, \
         max'ed with each init container plus the sidecars before it; `spec.overhead` added. Without one, a sized tmpfs is bounded by its sizeLimit: no finding (an unsized \
         one is `emptydir-size-limit-required`'s).",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    let mut memory = ctx
        .empty_dirs()
        .filter(|(_, _, _, m)| *m == Medium::Memory)
        .peekable();
    if memory.peek().is_none() {
        return;
    }
    // No Pod memory limit: each tmpfs is bounded by its own sizeLimit (or, unsized, by node
    // allocatable, which emptydir-size-limit-required reports).
    // Over the limit on any supported kubelet minor that sets one: OOM-killed there.
    let Some(limit) = ctx.memory_limit_on_some_minor() else {
        return;
    };
    if let Some((i, v, sum)) = first_over(ctx, memory, limit) {
        out.push(Violation {
            rule: RuleId::EmptydirMemoryWithinLimits,
            path: format!("{}.emptyDir.sizeLimit", ctx.volume_field(i)),
            message: format!(
                "memory emptyDirs sum to {sum} (through {}), over the Pod's {limit} memory limit: \
                 OOM-killed before they fill; lower sizeLimit or raise the limit",
                quoted(&v.name)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::EmptydirMemoryWithinLimits as R;
    use crate::engine::rules::testutil::{paths, run};
    use rstest::rstest;

    const VOLS: &str = "  volumes:\n  - {name: a, emptyDir: {medium: Memory, sizeLimit: 1Gi}}\n  - {name: b, emptyDir: {medium: Memory, sizeLimit: 1Gi}}\n  - {name: d, emptyDir: {sizeLimit: 100Gi}}\n";

    // Limits per kubernetes/kubernetes pkg/kubelet/cm/helpers_linux.go:ResourceConfigForPod
    // and component-helpers resource/helpers.go:PodLimits.
    #[rstest]
    #[case::fits_sum_of_containers("  containers:\n  - {name: x, resources: {limits: {memory: 1Gi}}}\n  - {name: y, resources: {limits: {memory: 1Gi}}}\n", &[])]
    #[case::exceeds_sum("  containers:\n  - {name: x, resources: {limits: {memory: 1Gi}}}\n  - {name: y, resources: {limits: {memory: 512Mi}}}\n", &["spec.volumes[1].emptyDir.sizeLimit"])]
    #[case::container_without_limit_no_pod_limit("  containers:\n  - {name: x, resources: {limits: {memory: 8Gi}}}\n  - {name: y}\n", &[])]
    #[case::sidecar_counts("  initContainers:\n  - {name: s, restartPolicy: Always, resources: {limits: {memory: 1Gi}}}\n  containers:\n  - {name: x, resources: {limits: {memory: 1Gi}}}\n", &[])]
    #[case::overhead_counts("  overhead: {memory: 1Gi}\n  containers:\n  - {name: x, resources: {limits: {memory: 1Gi}}}\n", &[])]
    #[case::pod_level_limit_wins("  resources: {limits: {memory: 2Gi}}\n  containers:\n  - {name: x}\n", &[])]
    #[case::pod_level_limit_too_small("  resources: {limits: {memory: 1Gi}}\n  containers:\n  - {name: x, resources: {limits: {memory: 8Gi}}}\n", &["spec.volumes[1].emptyDir.sizeLimit"])]
    #[case::larger_init_container_raises_the_limit("  containers:\n  - {name: x, resources: {limits: {memory: 1Gi}}}\n  initContainers:\n  - {name: i, resources: {limits: {memory: 8Gi}}}\n", &[])]
    #[case::unlimited_init_container_no_pod_limit("  containers:\n  - {name: x, resources: {limits: {memory: 1Gi}}}\n  initContainers:\n  - {name: i}\n", &[])]
    #[case::exact_fit_in_other_units("  containers:\n  - {name: x, resources: {limits: {memory: 2048Mi}}}\n", &[])]
    fn cases(#[case] rest: &str, #[case] want: &[&str]) {
        let obj = format!("kind: Pod\nspec:\n{VOLS}{rest}");
        assert_eq!(paths(&run(R, &obj)), want);
    }

    #[test]
    fn no_memory_emptydir_no_finding() {
        let obj =
            "kind: Pod\nspec:\n  volumes: [{name: d, emptyDir: {}}]\n  containers: [{name: x}]\n";
        assert!(run(R, obj).is_empty());
    }

    #[test]
    fn message_says_what_is_compared_and_why() {
        let obj = format!(
            "kind: Pod\nspec:\n{VOLS}  containers: [{{name: web, resources: {{limits: {{memory: 1536Mi}}}}}}]\n"
        );
        let v = run(R, &obj);
        assert_eq!(
            v[0].message,
            "memory emptyDirs sum to 2Gi (through \"b\"), over the Pod's 1536Mi memory limit: \
             OOM-killed before they fill; lower sizeLimit or raise the limit"
        );
    }
}
