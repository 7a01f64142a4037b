//! `emptydir-within-ephemeral-storage`: disk emptyDirs fit the Pod's ephemeral-storage limit.

use super::{LimitKind, PodCtx, RuleId, Violation, first_over, q};
use crate::model::Medium;
use crate::policy::{RuleConfig, RuleSet};

pub(super) fn check(ctx: &PodCtx<'_>, _: &RuleConfig, _: &RuleSet, out: &mut Vec<Violation>) {
    let mut disk = ctx
        .empty_dirs()
        .filter(|(_, _, _, m)| *m == Medium::Disk)
        .peekable();
    if disk.peek().is_none() {
        return;
    }
    // Without a limit the kubelet does not evict on this basis: nothing to compare.
    let Ok(limit) = ctx.pod_limit(LimitKind::EphemeralStorage) else {
        return;
    };
    if let Some((i, v, sum)) = first_over(ctx, disk, *limit) {
        out.push(Violation {
            rule: RuleId::EmptydirWithinEphemeralStorage,
            path: format!("{}.emptyDir.sizeLimit", ctx.volume_path(i)),
            message: format!(
                "disk emptyDirs sum to {sum} (through {}), over the Pod's {limit} ephemeral-storage limit, \
                 so it is evicted first; lower sizeLimit or raise the limit",
                q(&v.name)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::RuleId::EmptydirWithinEphemeralStorage as R;
    use crate::rules::testutil::{paths, run};
    use rstest::rstest;

    const VOLS: &str = "  volumes:\n  - {name: a, emptyDir: {sizeLimit: 2Gi}}\n  - {name: m, emptyDir: {medium: Memory, sizeLimit: 50Gi}}\n  - {name: b, emptyDir: {sizeLimit: 2Gi}}\n";

    #[rstest]
    #[case::fits("  containers:\n  - {name: x, resources: {limits: {ephemeral-storage: 2Gi}}}\n  - {name: y, resources: {limits: {ephemeral-storage: 2Gi}}}\n", &[])]
    #[case::exceeds("  containers:\n  - {name: x, resources: {limits: {ephemeral-storage: 3Gi}}}\n", &["spec.volumes[2].emptyDir.sizeLimit"])]
    #[case::one_container_unlimited("  containers:\n  - {name: x, resources: {limits: {ephemeral-storage: 1Gi}}}\n  - {name: y}\n", &[])]
    #[case::pod_level("  resources: {limits: {ephemeral-storage: 1Gi}}\n  containers:\n  - {name: x}\n", &["spec.volumes[0].emptyDir.sizeLimit"])]
    #[case::no_limits("  containers:\n  - {name: x}\n", &[])]
    fn cases(#[case] rest: &str, #[case] want: &[&str]) {
        let obj = format!("kind: Pod\nspec:\n{VOLS}{rest}");
        assert_eq!(paths(&run(R, &obj)), want);
    }
}
