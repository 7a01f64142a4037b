//! `emptydir-memory-within-limits`: memory-backed emptyDirs fit the Pod's memory limit.

use super::{Action, NoOptions, RuleMeta, RuleSet, LimitKind, PodCtx, RuleId, Violation, first_over, name_list, q};
use crate::engine::model::Medium;

pub const META: RuleMeta = RuleMeta {
    name: "emptydir-memory-within-limits",
    default_action: Action::Deny,
    summary: "memory-backed emptyDirs that do not fit the Pod's memory limit",
    explanation: "A `medium: Memory` emptyDir is tmpfs and its pages count against the Pod's memory limit. \
         The summed `sizeLimit`s must fit the Pod's memory limit (pod-level \
         `spec.resources.limits.memory`, else the sum of the regular containers' limits); a Pod \
         with a memory-backed emptyDir and no memory limit (any container without one) is \
         reported too.",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, _: &RuleSet, out: &mut Vec<Violation>) {
    let mut memory = ctx
        .empty_dirs()
        .filter(|(_, _, _, m)| *m == Medium::Memory)
        .peekable();
    let Some(&(first, first_vol, _, _)) = memory.peek() else {
        return;
    };
    match ctx.pod_limit(LimitKind::Memory) {
        Err(missing) => {
            let who = if missing.is_empty() {
                "the Pod has no containers with a memory limit".to_owned()
            } else {
                format!("no memory limit on container {}", name_list(missing))
            };
            out.push(Violation {
                rule: RuleId::EmptydirMemoryWithinLimits,
                path: format!("{}.emptyDir", ctx.volume_field(first)),
                message: format!(
                    "memory-backed emptyDir {} is unbounded by the Pod: {who}; set resources.limits.memory",
                    q(&first_vol.name)
                ),
            });
        }
        Ok(limit) => {
            if let Some((i, v, sum)) = first_over(ctx, memory, *limit) {
                out.push(Violation {
                    rule: RuleId::EmptydirMemoryWithinLimits,
                    path: format!("{}.emptyDir.sizeLimit", ctx.volume_field(i)),
                    message: format!(
                        "memory emptyDirs sum to {sum} (through {}), over the Pod's {limit} memory limit; \
                         lower sizeLimit or raise the limit",
                        q(&v.name)
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::EmptydirMemoryWithinLimits as R;
    use crate::engine::rules::testutil::{paths, run};
    use rstest::rstest;

    const VOLS: &str = "  volumes:\n  - {name: a, emptyDir: {medium: Memory, sizeLimit: 1Gi}}\n  - {name: b, emptyDir: {medium: Memory, sizeLimit: 1Gi}}\n  - {name: d, emptyDir: {sizeLimit: 100Gi}}\n";

    #[rstest]
    #[case::fits_sum_of_containers("  containers:\n  - {name: x, resources: {limits: {memory: 1Gi}}}\n  - {name: y, resources: {limits: {memory: 1Gi}}}\n", &[])]
    #[case::exceeds_sum("  containers:\n  - {name: x, resources: {limits: {memory: 1Gi}}}\n  - {name: y, resources: {limits: {memory: 512Mi}}}\n", &["spec.volumes[1].emptyDir.sizeLimit"])]
    #[case::container_without_limit("  containers:\n  - {name: x, resources: {limits: {memory: 8Gi}}}\n  - {name: y}\n", &["spec.volumes[0].emptyDir"])]
    #[case::pod_level_limit_wins("  resources: {limits: {memory: 2Gi}}\n  containers:\n  - {name: x}\n", &[])]
    #[case::pod_level_limit_too_small("  resources: {limits: {memory: 1Gi}}\n  containers:\n  - {name: x, resources: {limits: {memory: 8Gi}}}\n", &["spec.volumes[1].emptyDir.sizeLimit"])]
    #[case::init_containers_do_not_count("  containers:\n  - {name: x, resources: {limits: {memory: 1Gi}}}\n  initContainers:\n  - {name: i, resources: {limits: {memory: 8Gi}}}\n", &["spec.volumes[1].emptyDir.sizeLimit"])]
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
    fn missing_limit_names_the_container() {
        let obj = format!("kind: Pod\nspec:\n{VOLS}  containers: [{{name: web}}]\n");
        let v = run(R, &obj);
        assert!(
            v[0].message
                .contains("no memory limit on container \"web\""),
            "{}",
            v[0]
        );
    }
}
