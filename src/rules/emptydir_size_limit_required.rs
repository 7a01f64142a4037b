//! `emptydir-size-limit-required`: emptyDirs (of the configured media) set a sizeLimit.

use super::{PodCtx, RuleId, Violation, q};
use crate::model::Medium;
use crate::policy::{Action, MediaKind, RuleConfig, RuleSet};

pub(super) fn check(ctx: &PodCtx<'_>, cfg: &RuleConfig, rules: &RuleSet, out: &mut Vec<Violation>) {
    let max = rules.get(RuleId::EmptydirSizeLimitMax);
    for (i, v, e, medium) in ctx.empty_dirs() {
        let applies = match medium {
            Medium::Disk => cfg.media.contains(&MediaKind::Disk),
            Medium::Memory => cfg.media.contains(&MediaKind::Memory),
            Medium::HugePages => false,
        };
        if !applies || e.size_limit.is_some() {
            continue;
        }
        let (what, hint) = match medium {
            Medium::Memory => ("memory-backed emptyDir", max.max_memory),
            _ => ("emptyDir", max.max_disk),
        };
        let fix = if max.action == Action::Off {
            "set sizeLimit".to_owned()
        } else {
            format!("set sizeLimit (at most {hint})")
        };
        out.push(Violation {
            rule: RuleId::EmptydirSizeLimitRequired,
            path: format!("{}.emptyDir", ctx.volume_path(i)),
            message: format!("{what} {} has no sizeLimit; {fix}", q(&v.name)),
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::RuleId::EmptydirSizeLimitRequired as R;
    use crate::rules::testutil::{paths, run, run_with};
    use rstest::rstest;

    fn pod(empty_dir: &str) -> String {
        format!(
            "kind: Pod\nspec:\n  volumes: [{{name: v, emptyDir: {empty_dir}}}]\n  containers: [{{name: c}}]\n"
        )
    }

    #[rstest]
    #[case::disk_no_limit("{}", true)]
    #[case::disk_null("null", false)]
    #[case::disk_limit("{sizeLimit: 500Mi}", false)]
    #[case::memory_no_limit("{medium: Memory}", true)]
    #[case::memory_limit("{medium: Memory, sizeLimit: 64Mi}", false)]
    #[case::hugepages("{medium: HugePages}", false)]
    #[case::hugepages_sized("{medium: HugePages-2Mi}", false)]
    fn default_media(#[case] ed: &str, #[case] flagged: bool) {
        let want: &[&str] = if flagged {
            &["spec.volumes[0].emptyDir"]
        } else {
            &[]
        };
        assert_eq!(paths(&run(R, &pod(ed))), want, "{ed}");
    }

    #[test]
    fn media_option_limits_scope() {
        let policy = "rules:\n  emptydir-size-limit-required: {media: [memory]}\n";
        assert!(run_with(R, &pod("{}"), policy).is_empty());
        assert_eq!(run_with(R, &pod("{medium: Memory}"), policy).len(), 1);
    }

    #[test]
    fn message_matches_the_catalogue_example() {
        let v = run(
            R,
            "kind: Pod\nspec:\n  volumes: [{name: temp-volume, emptyDir: {}}]\n",
        );
        assert_eq!(
            v[0].to_string(),
            "[emptydir-size-limit-required] spec.volumes[0].emptyDir: emptyDir \"temp-volume\" has no sizeLimit; set sizeLimit (at most 10Gi)"
        );
        let v = run_with(
            R,
            &pod("{medium: Memory}"),
            "rules:\n  emptydir-size-limit-max: {action: 'off'}\n",
        );
        assert!(v[0].message.ends_with("; set sizeLimit"), "{}", v[0]);
    }
}
