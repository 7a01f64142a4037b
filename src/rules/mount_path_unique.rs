//! `mount-path-unique`: within one container, no two mounts (or a mount and a device)
//! resolve to the same path.

use std::collections::HashMap;

use super::{PodCtx, RuleId, Violation, q};
use crate::paths;
use crate::policy::{RuleConfig, RuleSet};

pub(super) fn check(ctx: &PodCtx<'_>, _: &RuleConfig, _: &RuleSet, out: &mut Vec<Violation>) {
    for c in &ctx.containers {
        // normalised path -> (what first claimed it)
        let mut seen: HashMap<&str, String> = HashMap::with_capacity(c.mount_paths.len());
        for (j, p) in c.mount_paths.iter().enumerate() {
            let m = &c.c.volume_mounts[j];
            if let Some(first) = seen.get(p.as_str()) {
                out.push(Violation {
                    rule: RuleId::MountPathUnique,
                    path: c.mount_path(ctx.prefix, j),
                    message: format!(
                        "container {} mounts {} at {}, already used by {first}; use distinct paths",
                        q(&c.c.name),
                        q(&m.name),
                        q(p)
                    ),
                });
            } else {
                seen.insert(p, format!("volumeMounts[{j}] ({})", q(&m.name)));
            }
        }
        let devices: Vec<String> =
            c.c.volume_devices
                .iter()
                .map(|d| paths::normalize(&d.device_path))
                .collect();
        for (j, p) in devices.iter().enumerate() {
            let d = &c.c.volume_devices[j];
            if let Some(first) = seen.get(p.as_str()) {
                out.push(Violation {
                    rule: RuleId::MountPathUnique,
                    path: c.device_path(ctx.prefix, j),
                    message: format!(
                        "container {} uses {} as device {}, already used by {first}; use distinct paths",
                        q(&c.c.name),
                        q(&d.name),
                        q(p)
                    ),
                });
            } else {
                seen.insert(p, format!("volumeDevices[{j}] ({})", q(&d.name)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::RuleId::MountPathUnique as R;
    use crate::rules::testutil::{paths, run};
    use rstest::rstest;

    fn pod(mounts: &str) -> String {
        format!(
            "kind: Pod\nspec:\n  volumes: [{{name: a, emptyDir: {{}}}}, {{name: b, emptyDir: {{}}}}]\n  containers:\n  - name: c\n{mounts}"
        )
    }

    #[rstest]
    #[case::distinct("    volumeMounts: [{name: a, mountPath: /a}, {name: b, mountPath: /b}]\n", &[])]
    #[case::identical("    volumeMounts: [{name: a, mountPath: /x}, {name: b, mountPath: /x}]\n", &["spec.containers[0].volumeMounts[1]"])]
    #[case::trailing_slash("    volumeMounts: [{name: a, mountPath: /x}, {name: b, mountPath: /x/}]\n", &["spec.containers[0].volumeMounts[1]"])]
    #[case::relative("    volumeMounts: [{name: a, mountPath: /x}, {name: b, mountPath: x}]\n", &["spec.containers[0].volumeMounts[1]"])]
    #[case::dot_and_repeated("    volumeMounts: [{name: a, mountPath: /x/y}, {name: b, mountPath: //x/./y//}]\n", &["spec.containers[0].volumeMounts[1]"])]
    #[case::device_on_mount("    volumeMounts: [{name: a, mountPath: /dev/xvda}]\n    volumeDevices: [{name: b, devicePath: /dev/xvda}]\n", &["spec.containers[0].volumeDevices[0]"])]
    #[case::nested_is_not_duplicate("    volumeMounts: [{name: a, mountPath: /x}, {name: b, mountPath: /x/y}]\n", &[])]
    fn cases(#[case] mounts: &str, #[case] want: &[&str]) {
        assert_eq!(paths(&run(R, &pod(mounts))), want);
    }

    #[test]
    fn same_path_in_two_containers_is_fine() {
        let obj = "kind: Pod\nspec:\n  volumes: [{name: a, emptyDir: {}}]\n  containers:\n  - {name: c1, volumeMounts: [{name: a, mountPath: /x}]}\n  - {name: c2, volumeMounts: [{name: a, mountPath: /x}]}\n";
        assert!(run(R, obj).is_empty());
    }
}
