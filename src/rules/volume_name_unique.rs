//! `volume-name-unique`: no two volumes share a name.

use super::{PodCtx, RuleId, Violation, q};
use crate::policy::{RuleConfig, RuleSet};

pub(super) fn check(ctx: &PodCtx<'_>, _: &RuleConfig, _: &RuleSet, out: &mut Vec<Violation>) {
    for (i, v) in ctx.volumes().iter().enumerate() {
        if let Some((first, _)) = ctx.volume(&v.name)
            && first != i
        {
            out.push(Violation {
                rule: RuleId::VolumeNameUnique,
                path: ctx.volume_path(i),
                message: format!(
                    "volume name {} is already used by volumes[{first}]; give each volume a unique name",
                    q(&v.name)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::RuleId::VolumeNameUnique as R;
    use crate::rules::testutil::{paths, run};
    use rstest::rstest;

    #[rstest]
    #[case::unique("kind: Pod\nspec:\n  volumes: [{name: a, emptyDir: {}}, {name: b, emptyDir: {}}]\n", &[])]
    #[case::duplicate("kind: Pod\nspec:\n  volumes: [{name: a, emptyDir: {}}, {name: b, emptyDir: {}}, {name: a, secret: {secretName: s}}]\n", &["spec.volumes[2]"])]
    #[case::triple("kind: Pod\nspec:\n  volumes: [{name: a, emptyDir: {}}, {name: a, emptyDir: {}}, {name: a, emptyDir: {}}]\n", &["spec.volumes[1]", "spec.volumes[2]"])]
    #[case::in_cronjob("kind: CronJob\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          volumes: [{name: a, emptyDir: {}}, {name: a, emptyDir: {}}]\n", &["spec.jobTemplate.spec.template.spec.volumes[1]"])]
    fn cases(#[case] obj: &str, #[case] want: &[&str]) {
        assert_eq!(paths(&run(R, obj)), want);
    }
}
