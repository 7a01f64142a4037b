//! `mount-path-absolute`: mountPaths are written absolute.

use crate::engine::paths::{PathStyle, display, is_absolute};

use super::{Action, NoOptions, RuleMeta, PodCtx, RuleId, Violation, quoted};

pub const META: RuleMeta = RuleMeta {
    name: "mount-path-absolute",
    default_action: Action::Warn,
    summary: "a mountPath that is not absolute (the kubelet prefixes `/`, or `c:\\` for Windows paths)",
    explanation: "The kubelet makes a relative mountPath absolute, so `data` silently becomes `/data` \
         (`c:\\data` in a Windows Pod). Writing the absolute path says what actually happens. In a \
         Windows Pod (`spec.os.name: windows`) and for any path with a drive letter or UNC prefix, \
         `C:\\data`, `c:/data`, `\\\\server\\share` and a leading `\\` or `/` are absolute.",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    for (c, j, m) in ctx.mounts() {
        let style = PathStyle::of(&m.mount_path, ctx.style);
        if !is_absolute(&m.mount_path, style) {
            let kubelet = match style {
                PathStyle::Linux => "the kubelet",
                PathStyle::Windows => "the Windows kubelet",
            };
            out.push(Violation {
                rule: RuleId::MountPathAbsolute,
                path: c.mount_field(ctx.prefix, j),
                message: format!(
                    "container {} mounts {} at relative path {}, which {kubelet} mounts at {}; write it absolute",
                    quoted(&c.c.name),
                    quoted(&m.name),
                    quoted(&m.mount_path),
                    quoted(&display(&c.normalized_mount_paths[j]))
                ),
            });
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

    // Windows: kubernetes/kubernetes pkg/kubelet/kubelet_pods.go:makeMounts leaves UNC and
    // utilfs.IsAbs paths alone (Windows IsAbs: filepath.IsAbs or a leading `\` or `/`) and
    // otherwise calls pkg/volume/util/util.go:MakeAbsolutePath (Windows: `c:\` + path); see
    // tests/data/kubelet/NOTES.md §7. `C:\data` and `C:/scratch` are the Kubernetes docs'
    // Windows examples.
    #[rstest]
    #[case::docs_backslash("", r"C:\data", None)]
    #[case::docs_slash("", "C:/scratch", None)]
    #[case::lower_drive("", "c:/data/", None)]
    #[case::unc("", r"\\server\share", None)]
    #[case::drive_relative("", "C:data", Some(r#""c:\\data""#))]
    #[case::windows_pod_relative("  os: {name: windows}\n", "data", Some(r#""c:\\data""#))]
    #[case::windows_pod_backslash_root("  os: {name: windows}\n", r"\data", None)]
    #[case::windows_pod_slash_root("  os: {name: windows}\n", "/data", None)]
    #[case::linux_pod_backslash_is_relative("  os: {name: linux}\n", r"\data", Some(r#""/\\data""#))]
    fn windows(#[case] os: &str, #[case] mount: &str, #[case] resolved: Option<&str>) {
        let obj = format!(
            "kind: Pod\nspec:\n{os}  containers: [{{name: c, volumeMounts: [{{name: a, mountPath: '{mount}'}}]}}]\n"
        );
        let v = run(R, &obj);
        match resolved {
            None => assert!(v.is_empty(), "{v:?}"),
            Some(r) => {
                assert_eq!(paths(&v), ["spec.containers[0].volumeMounts[0]"]);
                assert!(v[0].message.contains(r), "{}", v[0]);
                let kubelet = if os.contains("windows") || mount.contains(':') {
                    "Windows kubelet"
                } else {
                    "which the kubelet"
                };
                assert!(v[0].message.contains(kubelet), "{}", v[0]);
            }
        }
    }
}
