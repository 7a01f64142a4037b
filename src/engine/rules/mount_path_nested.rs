//! `mount-path-nested`: within one container, no mount strictly inside another.

use super::{Action, NoOptions, RuleMeta, RuleSet, PodCtx, RuleId, Violation, q};
use crate::engine::paths::is_strictly_inside;

pub const META: RuleMeta = RuleMeta {
    name: "mount-path-nested",
    default_action: Action::Warn,
    summary: "within one container, a mount strictly inside another (`/data` and `/data/cache`, not `/data` and `/database`)",
    explanation: "A mount at `/data/cache` inside a mount at `/data` shadows part of the outer volume and \
         depends on mount order; files written there do not land in the outer volume. `/data` and \
         `/database` are not nested.",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, _: &RuleSet, out: &mut Vec<Violation>) {
    for c in &ctx.containers {
        for (j, inner) in c.normalized_mount_paths.iter().enumerate() {
            // Report against the closest (longest) enclosing mount.
            let outer = c
                .normalized_mount_paths
                .iter()
                .enumerate()
                .filter(|(k, p)| *k != j && is_strictly_inside(inner, p))
                .max_by_key(|(_, p)| p.len());
            if let Some((k, outer)) = outer {
                out.push(Violation {
                    rule: RuleId::MountPathNested,
                    path: c.mount_field(ctx.prefix, j),
                    message: format!(
                        "container {} mounts {} at {}, inside the mount of {} at {}; move it out",
                        q(&c.c.name),
                        q(&c.c.volume_mounts[j].name),
                        q(inner),
                        q(&c.c.volume_mounts[k].name),
                        q(outer)
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::MountPathNested as R;
    use crate::engine::rules::testutil::{paths, run};
    use rstest::rstest;

    #[rstest]
    #[case::nested("/data", "/data/cache", &["spec.containers[0].volumeMounts[1]"])]
    #[case::nested_reverse_order("/data/cache", "/data", &["spec.containers[0].volumeMounts[0]"])]
    #[case::sibling_prefix("/data", "/database", &[])]
    #[case::same_path_is_not_nested("/data", "/data", &[])]
    #[case::normalised("/data/", "data//cache", &["spec.containers[0].volumeMounts[1]"])]
    #[case::under_root("/", "/x", &["spec.containers[0].volumeMounts[1]"])]
    fn cases(#[case] a: &str, #[case] b: &str, #[case] want: &[&str]) {
        let obj = format!(
            "kind: Pod\nspec:\n  volumes: [{{name: a, emptyDir: {{}}}}, {{name: b, emptyDir: {{}}}}]\n  containers: [{{name: c, volumeMounts: [{{name: a, mountPath: \"{a}\"}}, {{name: b, mountPath: \"{b}\"}}]}}]\n"
        );
        assert_eq!(paths(&run(R, &obj)), want);
    }

    #[test]
    fn different_containers_do_not_nest() {
        let obj = "kind: Pod\nspec:\n  containers:\n  - {name: c1, volumeMounts: [{name: a, mountPath: /data}]}\n  - {name: c2, volumeMounts: [{name: b, mountPath: /data/x}]}\n";
        assert!(run(R, obj).is_empty());
    }
}
