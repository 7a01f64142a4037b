//! `mount-path-reserved`: no mount over a reserved system path.

use serde::{Deserialize, Serialize};

use crate::engine::paths::{PathPattern, PathStyle, WindowsPathPattern, display};
use super::{Action, OptionDoc, RuleMeta, PodCtx, RuleId, Violation, quoted};

pub const META: RuleMeta = RuleMeta {
    name: "mount-path-reserved",
    default_action: Action::Deny,
    summary: "a mountPath that hits a reserved system path",
    explanation: "Mounting over `/etc`, `/proc`, `/sys`, `/usr` or `/` replaces what the image and the \
         runtime put there and breaks the container or weakens its isolation. Entries of `paths` \
         match exactly, or with a trailing `/**` the path and everything below it, so `/dev/shm` \
         and `/etc/app` stay allowed by default. `paths` applies to Linux paths only; Windows paths \
         (a Pod with `spec.os.name: windows`, or a drive-letter or UNC mountPath) are checked \
         against `windowsPaths` instead, case-insensitively with `\\` and `/` equal.",
    options: &[
        OptionDoc {
            name: "paths",
            schema: || serde_json::json!({"type": "array", "items": {"type": "string", "pattern": "^/"}}),
            help: "reserved Linux paths: `/x` matches exactly /x, `/x/**` matches /x and everything below it",
        },
        OptionDoc {
            name: "windowsPaths",
            schema: || {
                serde_json::json!({"type": "array", "items": {"type": "string", "pattern": "^([A-Za-z]:[\\\\/]|\\\\\\\\)"}})
            },
            help: "reserved Windows paths: `C:\\x` matches exactly C:\\x, `C:\\x\\**` matches C:\\x and everything below it (any case)",
        },
    ],
    apiserver: "",
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Options {
    pub paths: Vec<PathPattern>,
    pub windows_paths: Vec<WindowsPathPattern>,
}

impl Default for Options {
    fn default() -> Self {
        let paths = ["/", "/bin", "/dev", "/etc", "/lib", "/proc/**", "/sbin", "/sys/**", "/usr"];
        Options {
            paths: paths
                .iter()
                .map(|p| PathPattern::parse(p).expect("default reserved paths are valid"))
                .collect(),
            windows_paths: vec![WindowsPathPattern(
                PathPattern::parse_windows("C:\\Windows\\**").expect("valid Windows pattern"),
            )],
        }
    }
}

pub fn check(ctx: &PodCtx<'_>, opts: &Options, out: &mut Vec<Violation>) {
    for c in &ctx.containers {
        for (j, p) in c.normalized_mount_paths.iter().enumerate() {
            let hit = match PathStyle::of_normalized(p) {
                PathStyle::Linux => opts.paths.iter().find(|pat| pat.matches(p)),
                PathStyle::Windows => opts
                    .windows_paths
                    .iter()
                    .map(|w| &w.0)
                    .find(|pat| pat.matches(p)),
            };
            if let Some(pat) = hit {
                out.push(Violation {
                    rule: RuleId::MountPathReserved,
                    path: c.mount_field(ctx.prefix, j),
                    message: format!(
                        "container {} mounts {} at {}, a reserved path ({}); mount it elsewhere",
                        quoted(&c.c.name),
                        quoted(&c.c.volume_mounts[j].name),
                        quoted(&display(p)),
                        quoted(&pat.to_string())
                    ),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::MountPathReserved as R;
    use crate::engine::rules::testutil::{paths, run, run_with};
    use rstest::rstest;

    fn pod(path: &str) -> String {
        format!(
            "kind: Pod\nspec:\n  containers: [{{name: c, volumeMounts: [{{name: a, mountPath: \"{path}\"}}]}}]\n"
        )
    }

    #[rstest]
    #[case::etc("/etc", true)]
    #[case::etc_app_allowed("/etc/app", false)]
    #[case::proc("/proc", true)]
    #[case::proc_sub("/proc/sys", true)]
    #[case::sys_sub("/sys/fs/cgroup", true)]
    #[case::dev("/dev", true)]
    #[case::dev_shm_allowed("/dev/shm", false)]
    #[case::root("/", true)]
    #[case::root_via_dots("/data/..", true)]
    #[case::etc_trailing("/etc/", true)]
    #[case::etc_relative("etc", true)]
    #[case::escape_via_dotdot("/data/../proc/1", true)]
    #[case::data("/data", false)]
    #[case::usr_local_allowed("/usr/local/share", false)]
    fn default_paths(#[case] path: &str, #[case] flagged: bool) {
        let v = run(R, &pod(path));
        let want: &[&str] = if flagged {
            &["spec.containers[0].volumeMounts[0]"]
        } else {
            &[]
        };
        assert_eq!(paths(&v), want, "{path}");
    }

    #[test]
    fn configured_paths_replace_the_default() {
        let policy = "rules:\n  mount-path-reserved: {paths: [\"/opt/**\"]}\n";
        assert_eq!(run_with(R, &pod("/opt/x"), policy).len(), 1);
        assert!(run_with(R, &pod("/etc"), policy).is_empty());
    }

    // The Linux list applies to Linux paths only: a Windows path (drive letter, UNC, or any
    // path of a `spec.os.name: windows` Pod, which the kubelet refuses on Linux:
    // kubernetes/kubernetes pkg/kubelet/lifecycle/predicate.go:rejectPodAdmissionBasedOnOSField
    // rejects a Pod whose spec.os.name is not the node's OS) is checked against `windowsPaths`. Path forms: tests/data/kubelet/NOTES.md §7.
    #[rstest]
    #[case::windows_dir(r"", r"C:\Windows", true)]
    #[case::windows_child_any_case(r"", "c:/WINDOWS/System32", true)]
    #[case::docs_data(r"", r"C:\data", false)]
    #[case::drive_etc_is_not_linux_etc(r"", r"C:\etc", false)]
    #[case::windows_pod_etc("  os: {name: windows}\n", "/etc", false)]
    #[case::windows_pod_windows("  os: {name: windows}\n", r"\Windows\Temp", true)]
    #[case::linux_pod_etc("  os: {name: linux}\n", "/etc", true)]
    #[case::linux_pod_backslash_windows("", r"\Windows", false)]
    fn windows(#[case] os: &str, #[case] path: &str, #[case] flagged: bool) {
        let obj = format!(
            "kind: Pod\nspec:\n{os}  containers: [{{name: c, volumeMounts: [{{name: a, mountPath: '{path}'}}]}}]\n"
        );
        assert_eq!(run(R, &obj).len(), usize::from(flagged), "{path}");
    }

    #[test]
    fn a_windows_mount_does_not_switch_off_linux_checks() {
        let obj = "kind: Pod\nspec:\n  containers: [{name: c, volumeMounts: [{name: a, mountPath: 'C:\\data'}, {name: b, mountPath: /etc}]}]\n";
        assert_eq!(paths(&run(R, obj)), ["spec.containers[0].volumeMounts[1]"]);
    }

    #[test]
    fn configured_windows_paths_replace_the_default() {
        let policy = "rules:\n  mount-path-reserved: {windowsPaths: ['D:\\secrets\\**']}\n";
        let pod = |p: &str| {
            format!("kind: Pod\nspec:\n  containers: [{{name: c, volumeMounts: [{{name: a, mountPath: '{p}'}}]}}]\n")
        };
        assert_eq!(run_with(R, &pod(r"d:\Secrets\x"), policy).len(), 1);
        assert!(run_with(R, &pod(r"C:\Windows"), policy).is_empty());
        assert_eq!(run_with(R, &pod("/etc"), policy).len(), 1, "Linux list kept");
    }

    #[test]
    fn windows_paths_must_be_windows_absolute() {
        use crate::engine::policy::Policy;
        for bad in ["/etc", "Windows", "C:Windows"] {
            let policy = format!("rules:\n  mount-path-reserved: {{windowsPaths: ['{bad}']}}\n");
            assert!(Policy::parse(&policy, "p.yaml").is_err(), "{bad}");
        }
    }
}
