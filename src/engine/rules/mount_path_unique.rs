//! `mount-path-unique`: within one container, no two mounts (or a mount and a device)
//! resolve to the same path.

use super::{Action, NoOptions, RuleMeta, RuleSet, PodCtx, RuleId, Violation, q};
use crate::engine::paths;

pub const META: RuleMeta = RuleMeta {
    name: "mount-path-unique",
    default_action: Action::Deny,
    summary: "two mounts of one container resolve to the same path once normalised (relative made absolute, `.`/`..`, repeated and trailing `/`), or a device path equals a mount path",
    explanation: "Within one container, two volumeMounts (or a mount and a volumeDevice) that resolve to the \
         same path after normalisation (relative made absolute, `.`, `..`, repeated and trailing `/` \
         removed) hide one another: only one of them is visible to the process.",
    options: &[],
    apiserver: "only exact duplicate strings (`/data` and `/data/` pass), and a devicePath equal to a mountPath",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, _: &RuleSet, out: &mut Vec<Violation>) {
    // (normalised path, "volumeMounts" | "volumeDevices", index, volume name) already seen in
    // this container; a linear scan beats hashing for the handful of mounts a container has.
    for c in &ctx.containers {
        let mut seen: Vec<(&str, &'static str, usize, &str)> = Vec::new();
        let devices: Vec<_> =
            c.c.volume_devices
                .iter()
                .map(|d| paths::normalize(&d.device_path))
                .collect();
        let mounts = c
            .normalized_mount_paths
            .iter()
            .zip(&c.c.volume_mounts)
            .map(|(p, m)| (p, "volumeMounts", m.name.as_str()));
        let devs = devices
            .iter()
            .zip(&c.c.volume_devices)
            .map(|(p, d)| (p, "volumeDevices", d.name.as_str()));
        let mut index = [0usize, 0usize];
        for (p, field, name) in mounts.chain(devs) {
            let slot = usize::from(field == "volumeDevices");
            let j = index[slot];
            index[slot] += 1;
            if let Some((_, first_field, first_j, first_name)) =
                seen.iter().find(|s| s.0 == p.as_ref())
            {
                let (path, verb) = if slot == 0 {
                    (c.mount_field(ctx.prefix, j), "mounts")
                } else {
                    (c.device_field(ctx.prefix, j), "uses as device")
                };
                out.push(Violation {
                    rule: RuleId::MountPathUnique,
                    path,
                    message: format!(
                        "container {} {verb} {} at {}, already used by {first_field}[{first_j}] ({}); use distinct paths",
                        q(&c.c.name),
                        q(name),
                        q(p),
                        q(first_name)
                    ),
                });
            } else {
                seen.push((p.as_ref(), field, j, name));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::MountPathUnique as R;
    use crate::engine::rules::testutil::{paths, run};
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
