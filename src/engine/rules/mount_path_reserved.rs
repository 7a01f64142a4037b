//! `mount-path-reserved`: no mount over a reserved system path.

use serde::{Deserialize, Serialize};

use crate::engine::paths::PathPattern;
use super::{Action, OptionDoc, RuleMeta, RuleSet, PodCtx, RuleId, Violation, q};

pub const META: RuleMeta = RuleMeta {
    name: "mount-path-reserved",
    default_action: Action::Deny,
    summary: "a mountPath that hits a reserved system path",
    explanation: "Mounting over `/etc`, `/proc`, `/sys`, `/usr` or `/` replaces what the image and the \
         runtime put there and breaks the container or weakens its isolation. Entries of `paths` \
         match exactly, or with a trailing `/**` the path and everything below it, so `/dev/shm` \
         and `/etc/app` stay allowed by default.",
    options: &[OptionDoc {
        name: "paths",
        schema: || serde_json::json!({"type": "array", "items": {"type": "string", "pattern": "^/"}}),
        help: "reserved paths: `/x` matches exactly /x, `/x/**` matches /x and everything below it",
    }],
    apiserver: "",
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Options {
    pub paths: Vec<PathPattern>,
}

impl Default for Options {
    fn default() -> Self {
        let paths = ["/", "/bin", "/dev", "/etc", "/lib", "/proc/**", "/sbin", "/sys/**", "/usr"];
        Options {
            paths: paths
                .iter()
                .map(|p| PathPattern::parse(p).expect("default reserved paths are valid"))
                .collect(),
        }
    }
}

pub fn check(ctx: &PodCtx<'_>, opts: &Options, _: &RuleSet, out: &mut Vec<Violation>) {
    for c in &ctx.containers {
        for (j, p) in c.normalized_mount_paths.iter().enumerate() {
            if let Some(pat) = opts.paths.iter().find(|pat| pat.matches(p)) {
                out.push(Violation {
                    rule: RuleId::MountPathReserved,
                    path: c.mount_field(ctx.prefix, j),
                    message: format!(
                        "container {} mounts {} at {}, a reserved path ({}); mount it elsewhere",
                        q(&c.c.name),
                        q(&c.c.volume_mounts[j].name),
                        q(p),
                        q(&pat.to_string())
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
}
