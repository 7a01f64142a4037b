//! `volume-name-unique`: no two volumes share a name.

use super::{Action, NoOptions, RuleMeta, PodCtx, RuleId, Violation, quoted};

pub const META: RuleMeta = RuleMeta {
    name: "volume-name-unique",
    default_action: Action::Deny,
    summary: "two volumes share a name",
    explanation: "Volume names must be unique within a Pod; mounts refer to volumes by name, so a duplicate \
         makes it ambiguous which source a container gets.",
    options: &[],
    apiserver: "the same (exact names)",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    for (i, v) in ctx.volumes().iter().enumerate() {
        if let Some((first, _)) = ctx.volume(&v.name)
            && first != i
        {
            out.push(Violation {
                rule: RuleId::VolumeNameUnique,
                path: ctx.volume_field(i),
                message: format!(
                    "volume name {} is already used by volumes[{first}]; give each volume a unique name",
                    quoted(&v.name)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::VolumeNameUnique as R;
    use crate::engine::rules::testutil::{paths, run};
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
