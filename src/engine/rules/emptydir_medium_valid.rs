//! `emptydir-medium-valid`: an emptyDir's `medium` is one the kubelet can mount.

use super::{Action, NoOptions, PodCtx, RuleId, RuleMeta, Violation, quoted};
use crate::engine::model::Medium;

pub const META: RuleMeta = RuleMeta {
    name: "emptydir-medium-valid",
    default_action: Action::Deny,
    summary: "an emptyDir `medium` other than \"\", `Memory`, `HugePages` or `HugePages-<size>`",
    explanation: "The apiserver accepts any `medium`, but the kubelet's emptyDir `SetUpAt` knows only \"\" \
         (disk), `Memory` (tmpfs), `HugePages` and `HugePages-<size>` (hugetlbfs), case-sensitively; \
         anything else (`memory`, `tmpfs`, ...) fails the mount with \"unknown storage medium\" and \
         the Pod never starts.",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    for (i, v, e, medium) in ctx.empty_dirs() {
        if medium != Medium::Unknown {
            continue;
        }
        let raw = e.medium.as_deref().unwrap_or_default();
        let hint = if raw.eq_ignore_ascii_case("memory") {
            "write Memory"
        } else if raw.to_ascii_lowercase().starts_with("hugepages") {
            "write HugePages or HugePages-<size>"
        } else {
            "use \"\" (disk), Memory or HugePages"
        };
        out.push(Violation {
            rule: RuleId::EmptydirMediumValid,
            path: format!("{}.emptyDir.medium", ctx.volume_field(i)),
            message: format!(
                "emptyDir {} has medium {}, unknown to the kubelet: the mount fails; {hint}",
                quoted(&v.name),
                quoted(raw)
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::EmptydirMediumValid as R;
    use crate::engine::rules::testutil::{paths, run, empty_dir_pod, flagged_at};
    use rstest::rstest;


    // kubernetes/kubernetes pkg/volume/emptydir/empty_dir.go:emptyDir.SetUpAt and
    // pkg/apis/core/v1/helper/helpers.go:IsHugePageMedium (see tests/data/kubelet/NOTES.md §2).
    #[rstest]
    #[case::unset("{}", false)]
    #[case::empty("{medium: \"\"}", false)]
    #[case::memory("{medium: Memory}", false)]
    #[case::hugepages("{medium: HugePages}", false)]
    #[case::hugepages_sized("{medium: HugePages-2Mi}", false)]
    #[case::hugepages_1gi("{medium: HugePages-1Gi}", false)]
    #[case::lowercase_memory("{medium: memory}", true)]
    #[case::uppercase_memory("{medium: MEMORY}", true)]
    #[case::lowercase_hugepages("{medium: hugepages}", true)]
    #[case::tmpfs("{medium: tmpfs}", true)]
    #[case::disk_spelled_out("{medium: Disk}", true)]
    #[case::trailing_space("{medium: \"Memory \"}", true)]
    fn media(#[case] ed: &str, #[case] flagged: bool) {
        let want = flagged_at(flagged, "spec.volumes[0].emptyDir.medium");
        assert_eq!(paths(&run(R, &empty_dir_pod(ed))), want, "{ed}");
    }

    #[test]
    fn message_suggests_the_spelling() {
        let v = run(R, &empty_dir_pod("{medium: memory}"));
        assert_eq!(
            v[0].message,
            "emptyDir \"v\" has medium \"memory\", unknown to the kubelet: the mount fails; write Memory"
        );
    }
}
