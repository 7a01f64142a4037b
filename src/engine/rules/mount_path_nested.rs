//! `mount-path-nested`: within one container, no mount strictly inside another.

use super::{Action, NoOptions, RuleMeta, PodCtx, RuleId, Violation, quoted};
use crate::engine::paths::{display, is_strictly_inside, tree_cmp};

pub const META: RuleMeta = RuleMeta {
    name: "mount-path-nested",
    default_action: Action::Warn,
    summary: "within one container, a mount strictly inside another (`/data` and `/data/cache`, not `/data` and `/database`)",
    explanation: "A mount at `/data/cache` inside a mount at `/data` shadows that part of the outer volume: \
         files written under `/data/cache` land in the inner volume, not the outer one. This is often \
         intended (a configMap file inside a writable emptyDir), so the rule only warns, to make the \
         shadowing visible. `/data` and `/database` are not nested. Windows paths compare \
         case-insensitively with `\\` and `/` equal.",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    for c in &ctx.containers {
        let paths = &c.normalized_mount_paths;
        // Sort once (O(m log m)) in directory-tree pre-order: every path comes after the
        // paths that enclose it, so a stack of the enclosing chain finds each mount's closest
        // enclosing mount in one scan, instead of comparing every pair.
        let mut order: Vec<usize> = (0..paths.len()).collect();
        order.sort_by(|&a, &b| tree_cmp(&paths[a], &paths[b]).then(a.cmp(&b)));
        // The enclosing chain: (path, the last mount index with that path, its own closest
        // enclosing mount).
        let mut stack: Vec<(&str, usize, Option<usize>)> = Vec::new();
        let mut outer_of: Vec<Option<usize>> = vec![None; paths.len()];
        for &j in &order {
            let p = paths[j].as_ref();
            while let Some(&(top, _, _)) = stack.last() {
                if top == p || is_strictly_inside(p, top) {
                    break;
                }
                stack.pop();
            }
            match stack.last_mut() {
                // The same path again: same enclosing mount; a later index stands for it.
                Some((top, last, outer)) if *top == p => {
                    *last = j;
                    outer_of[j] = *outer;
                }
                Some(&mut (_, last, _)) => {
                    outer_of[j] = Some(last);
                    stack.push((p, j, Some(last)));
                }
                None => stack.push((p, j, None)),
            }
        }
        for (j, outer) in outer_of.iter().enumerate() {
            let Some(k) = *outer else { continue };
            out.push(Violation {
                rule: RuleId::MountPathNested,
                path: c.mount_field(ctx.prefix, j),
                message: format!(
                    "container {} mounts {} at {}, within its mount of {} at {}, which it shadows there; fine if intended",
                    quoted(&c.c.name),
                    quoted(&c.c.volume_mounts[j].name),
                    quoted(&display(&paths[j])),
                    quoted(&c.c.volume_mounts[k].name),
                    quoted(&display(&paths[k]))
                ),
            });
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

    // Windows paths (tests/data/kubelet/NOTES.md §7; kubernetes/kubernetes
    // pkg/volume/util/util.go:MakeAbsolutePath): case-insensitive, `\` and `/` equal.
    #[rstest]
    #[case::docs_forms("", r"C:\data", "c:/DATA/cache", &["spec.containers[0].volumeMounts[1]"])]
    #[case::drive_root("", r"C:\", r"C:\data", &["spec.containers[0].volumeMounts[1]"])]
    #[case::sibling_prefix("", r"C:\data", r"C:\database", &[])]
    #[case::other_drive("", r"C:\data", r"D:\data\x", &[])]
    #[case::windows_pod_root_relative("  os: {name: windows}\n", r"\data", r"C:\data\x", &["spec.containers[0].volumeMounts[1]"])]
    #[case::linux_root_and_unc("", "/", r"\\srv\share", &[])]
    fn windows(#[case] os: &str, #[case] a: &str, #[case] b: &str, #[case] want: &[&str]) {
        let obj = format!(
            "kind: Pod\nspec:\n{os}  containers: [{{name: c, volumeMounts: [{{name: a, mountPath: '{a}'}}, {{name: b, mountPath: '{b}'}}]}}]\n"
        );
        assert_eq!(paths(&run(R, &obj)), want);
    }

    /// Nesting is often intended (argo-cd mounts a configMap file inside its writable
    /// `/home/argocd` emptyDir): the message says what happens, not that it is wrong.
    #[test]
    fn message_explains_the_shadowing() {
        let obj = "kind: Pod\nspec:\n  containers: [{name: argocd, volumeMounts: [{name: home, mountPath: /home/argocd}, {name: cfg, mountPath: /home/argocd/x}]}]\n";
        let v = run(R, obj);
        assert_eq!(v.len(), 1);
        assert!(v[0].message.contains("fine if intended"), "{}", v[0]);
        assert!(v[0].message.contains("\"home\"") && v[0].message.contains("\"cfg\""), "{}", v[0]);
    }

    /// The sort-and-scan finds exactly what the former pairwise scan found: for each mount,
    /// the closest enclosing mount (the last of equal ones), on many generated containers.
    #[test]
    fn same_findings_as_pairwise_reference() {
        use crate::engine::paths::{is_strictly_inside, normalize};
        let pool = ["/", "/a", "/a/", "/a/b", "/a/b/c", "/ab", "/a-b", "a/b", "/a/./b/c/d", "/b"];
        let mut seed = 0x9e37_79b9_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as usize
        };
        for _ in 0..400 {
            let n = next() % 8;
            let mounts: Vec<&str> = (0..n).map(|_| pool[next() % pool.len()]).collect();
            let norm: Vec<String> = mounts.iter().map(|p| normalize(p).into_owned()).collect();
            let mut want = Vec::new();
            for (j, inner) in norm.iter().enumerate() {
                let outer = norm
                    .iter()
                    .enumerate()
                    .filter(|(k, p)| *k != j && is_strictly_inside(inner, p))
                    .max_by_key(|(_, p)| p.len());
                if let Some((k, _)) = outer {
                    want.push((format!("spec.containers[0].volumeMounts[{j}]"), format!("\"v{k}\"")));
                }
            }
            let m: Vec<String> = mounts
                .iter()
                .enumerate()
                .map(|(k, p)| format!("{{name: v{k}, mountPath: '{p}'}}"))
                .collect();
            let obj = format!(
                "kind: Pod\nspec:\n  containers:\n  - name: c\n    volumeMounts: [{}]\n",
                m.join(", ")
            );
            let got = run(R, &obj);
            assert_eq!(got.len(), want.len(), "{obj}");
            for (v, (path, outer)) in got.iter().zip(&want) {
                assert_eq!(&v.path, path, "{obj}");
                assert!(v.message.contains(&format!("its mount of {outer}")), "{obj}\n{v}");
            }
        }
    }
}
