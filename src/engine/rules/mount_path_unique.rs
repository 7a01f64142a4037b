//! `mount-path-unique`: within one container, no two mounts (or a mount and a device)
//! resolve to the same path.

use super::{Action, NoOptions, RuleMeta, PodCtx, RuleId, Violation, quoted};
use crate::engine::paths;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

pub const META: RuleMeta = RuleMeta {
    name: "mount-path-unique",
    default_action: Action::Deny,
    summary: "two mounts of one container resolve to the same path once normalised (relative made absolute, `.`/`..`, repeated and trailing `/`), or a device path equals a mount path",
    explanation: "Within one container, two volumeMounts (or a mount and a volumeDevice) that resolve to the \
         same path after normalisation (relative made absolute, `.`, `..`, repeated and trailing `/` \
         removed) hide one another: only one of them is visible to the process. Windows paths (a Pod \
         with `spec.os.name: windows`, or a drive-letter or UNC path) compare case-insensitively with \
         `\\` and `/` equal, so `C:\\data` and `c:/data/` collide.",
    options: &[],
    apiserver: "only exact duplicate strings (`/data` and `/data/` pass), and a devicePath equal to a mountPath",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    // One hash lookup per mount and device: O(m) per container (a 3 MiB Pod can carry ~80k
    // mounts in one container, so no pairwise comparison).
    for c in &ctx.containers {
        // Normalised path -> first ("volumeMounts" | "volumeDevices", index, volume name).
        let mut seen: HashMap<&str, (&'static str, usize, &str)> = HashMap::with_capacity(
            c.normalized_mount_paths.len() + c.normalized_device_paths.len(),
        );
        let mounts = c
            .normalized_mount_paths
            .iter()
            .zip(&c.c.volume_mounts)
            .enumerate()
            .map(|(j, (p, m))| (p, "volumeMounts", j, &*m.name));
        let devs = c
            .normalized_device_paths
            .iter()
            .zip(&c.c.volume_devices)
            .enumerate()
            .map(|(j, (p, d))| (p, "volumeDevices", j, &*d.name));
        for (p, field, j, name) in mounts.chain(devs) {
            match seen.entry(p.as_ref()) {
                Entry::Vacant(e) => {
                    e.insert((field, j, name));
                }
                Entry::Occupied(e) => {
                    let (first_field, first_j, first_name) = *e.get();
                    let (path, verb) = if field == "volumeMounts" {
                        (c.mount_field(ctx.prefix, j), "mounts")
                    } else {
                        (c.device_field(ctx.prefix, j), "uses as device")
                    };
                    out.push(Violation {
                        rule: RuleId::MountPathUnique,
                        path,
                        message: format!(
                            "container {} {verb} {} at {}, already used by {first_field}[{first_j}] ({}); use distinct paths",
                            quoted(&c.c.name),
                            quoted(name),
                            quoted(&paths::display(p)),
                            quoted(first_name)
                        ),
                    });
                }
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

    // The apiserver's own duplicate check is exact-string (kubernetes/kubernetes
    // pkg/apis/core/validation/validation.go:ValidateVolumeMounts, `mountpoints.Has`); the
    // kubelet resolves paths (pkg/volume/util/util.go:MakeAbsolutePath; Windows paths:
    // tests/data/kubelet/NOTES.md §7) and Windows compares case-insensitively with `\` and `/`
    // equal, so these collide on the node.
    #[rstest]
    #[case::docs_forms("", r"C:\data", "c:/data/", true)]
    #[case::case_insensitive("", r"C:\Data", r"c:\DATA", true)]
    #[case::different_drives("", r"C:\data", r"D:\data", false)]
    #[case::windows_pod_root_relative("  os: {name: windows}\n", "/data", r"C:\data", true)]
    #[case::windows_pod_relative("  os: {name: windows}\n", "data", r"C:\data", true)]
    #[case::linux_is_case_sensitive("", "/Data", "/data", false)]
    #[case::linux_pod_slash_and_drive("", "/data", r"C:\data", false)]
    #[case::unc("", r"\\srv\share\x", r"\\SRV\share\x\", true)]
    fn windows(#[case] os: &str, #[case] a: &str, #[case] b: &str, #[case] dup: bool) {
        let obj = format!(
            "kind: Pod\nspec:\n{os}  containers:\n  - name: c\n    volumeMounts: [{{name: a, mountPath: '{a}'}}, {{name: b, mountPath: '{b}'}}]\n"
        );
        let v = run(R, &obj);
        let want: &[&str] = if dup {
            &["spec.containers[0].volumeMounts[1]"]
        } else {
            &[]
        };
        assert_eq!(paths(&v), want);
    }

    /// The hash-based check finds exactly what the former pairwise scan found (first
    /// occurrence wins, mounts before devices), on many small generated containers.
    #[test]
    fn same_findings_as_pairwise_reference() {
        use crate::engine::paths::normalize;
        let pool = ["/a", "/a/", "a", "/b", "//b", "/a/../b", "/c", "/c/./"];
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize
        };
        for _ in 0..300 {
            let (nm, nd) = (next() % 6, next() % 3);
            let mounts: Vec<&str> = (0..nm).map(|_| pool[next() % pool.len()]).collect();
            let devs: Vec<&str> = (0..nd).map(|_| pool[next() % pool.len()]).collect();
            let all: Vec<(String, bool, usize)> = mounts
                .iter()
                .enumerate()
                .map(|(j, p)| (normalize(p).into_owned(), false, j))
                .chain(devs.iter().enumerate().map(|(j, p)| (normalize(p).into_owned(), true, j)))
                .collect();
            let mut want = Vec::new();
            for (i, (p, dev, j)) in all.iter().enumerate() {
                if all[..i].iter().any(|(q, _, _)| q == p) {
                    let field = if *dev { "volumeDevices" } else { "volumeMounts" };
                    want.push(format!("spec.containers[0].{field}[{j}]"));
                }
            }
            let m: Vec<String> = mounts
                .iter()
                .map(|p| format!("{{name: a, mountPath: '{p}'}}"))
                .collect();
            let d: Vec<String> = devs
                .iter()
                .map(|p| format!("{{name: b, devicePath: '{p}'}}"))
                .collect();
            let obj = format!(
                "kind: Pod\nspec:\n  containers:\n  - name: c\n    volumeMounts: [{}]\n    volumeDevices: [{}]\n",
                m.join(", "),
                d.join(", ")
            );
            assert_eq!(paths(&run(R, &obj)), want, "{obj}");
        }
    }
}
