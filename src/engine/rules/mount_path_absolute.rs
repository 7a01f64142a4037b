//! `mount-path-absolute`: mountPaths are written absolute.

use super::{Action, NoOptions, RuleMeta, RuleSet, PodCtx, RuleId, Violation, q};

pub const META: RuleMeta = RuleMeta {
    name: "mount-path-absolute",
    default_action: Action::Warn,
    summary: "a mountPath that is not absolute (the kubelet prefixes `/`)",
    explanation: "The kubelet prefixes `/` to a relative mountPath, so `data` silently becomes `/data`. \
         Writing the absolute path says what actually happens.",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, _: &RuleSet, out: &mut Vec<Violation>) {
    for c in &ctx.containers {
        for (j, m) in c.c.volume_mounts.iter().enumerate() {
            if !m.mount_path.starts_with('/') {
                out.push(Violation {
                    rule: RuleId::MountPathAbsolute,
                    path: c.mount_field(ctx.prefix, j),
                    message: format!(
                        "container {} mounts {} at relative path {}, which the kubelet mounts at {}; write it absolute",
                        q(&c.c.name),
                        q(&m.name),
                        q(&m.mount_path),
                        q(&c.normalized_mount_paths[j])
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::MountPathAbsolute as R;
    use crate::engine::rules::testutil::{paths, run};
    use rstest::rstest;

    #[rstest]
    #[case::absolute("/data", false)]
    #[case::relative("data", true)]
    #[case::dot_relative("./data", true)]
    #[case::root("/", false)]
    fn cases(#[case] mount: &str, #[case] flagged: bool) {
        let obj = format!(
            "kind: Pod\nspec:\n  volumes: [{{name: a, emptyDir: {{}}}}]\n  containers: [{{name: c, volumeMounts: [{{name: a, mountPath: \"{mount}\"}}]}}]\n"
        );
        let v = run(R, &obj);
        let want: &[&str] = if flagged {
            &["spec.containers[0].volumeMounts[0]"]
        } else {
            &[]
        };
        assert_eq!(paths(&v), want);
    }

    #[test]
    fn message_shows_resolved_path() {
        let v = run(
            R,
            "kind: Pod\nspec:\n  containers: [{name: c, volumeMounts: [{name: a, mountPath: data}]}]\n",
        );
        assert!(v[0].message.contains("\"/data\""), "{}", v[0]);
    }
}
