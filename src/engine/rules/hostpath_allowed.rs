//! `hostpath-allowed`: hostPath volumes stay under allowed path prefixes, read-only where
//! the prefix says so.

use serde::{Deserialize, Serialize};

use super::{Action, OptionDoc, PodCtx, RuleId, RuleMeta, Violation, quoted};
use crate::engine::paths;

pub const META: RuleMeta = RuleMeta {
    name: "hostpath-allowed",
    default_action: Action::Off,
    summary: "a hostPath volume outside the allowed path prefixes, or mounted writable where its prefix is read-only",
    explanation: "A hostPath volume exposes the node's filesystem to the container. `allowedPaths` lists \
         the node paths a Pod may use (`pathPrefix`, matched at a path-segment boundary after \
         normalisation, so `/var/log` allows `/var/log` and `/var/log/app` but not `/var/logs` or \
         `/var/log/../../etc`) and whether they must be mounted read-only. As with the \
         PodSecurityPolicy field it follows, a path under several prefixes may be mounted writable \
         if any of them allows it. With the default empty list, no hostPath is allowed. Off by \
         default.",
    options: &[OptionDoc {
        name: "allowedPaths",
        schema: || {
            serde_json::json!({
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["pathPrefix"],
                    "properties": {
                        "pathPrefix": {"type": "string", "pattern": "^/"},
                        "readOnly": {"type": "boolean"}
                    }
                }
            })
        },
        help: "node path prefixes hostPath volumes may use, each `{pathPrefix, readOnly}`",
    }],
    apiserver: "",
};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Options {
    pub allowed_paths: Vec<AllowedPath>,
}

/// One allowed node path prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedPath {
    pub path_prefix: String,
    pub read_only: bool,
}

impl<'de> Deserialize<'de> for AllowedPath {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct Raw {
            path_prefix: String,
            #[serde(default)]
            read_only: bool,
        }
        let raw = Raw::deserialize(d)?;
        if !raw.path_prefix.starts_with('/') {
            return Err(serde::de::Error::custom(format_args!(
                "pathPrefix {:?} is not an absolute path",
                raw.path_prefix
            )));
        }
        Ok(AllowedPath {
            path_prefix: paths::normalize(&raw.path_prefix).into_owned(),
            read_only: raw.read_only,
        })
    }
}

/// Whether `path` may be used, and whether only read-only: allowed if under any prefix;
/// read-only required only if every matching prefix requires it. Follows PodSecurityPolicy's
/// `AllowsHostVolumePath` (kubernetes `pkg/security/podsecuritypolicy/util/util.go`), on
/// normalised paths.
fn allows<'a>(opts: &'a Options, path: &str) -> Option<(bool, &'a AllowedPath)> {
    let mut found: Option<&AllowedPath> = None;
    for a in &opts.allowed_paths {
        if path == a.path_prefix || paths::is_strictly_inside(path, &a.path_prefix) {
            if !a.read_only {
                return Some((false, a));
            }
            found.get_or_insert(a);
        }
    }
    found.map(|a| (true, a))
}

pub fn check(ctx: &PodCtx<'_>, opts: &Options, out: &mut Vec<Violation>) {
    let prefixes = || {
        let s: Vec<&str> = opts
            .allowed_paths
            .iter()
            .map(|a| a.path_prefix.as_str())
            .collect();
        if s.is_empty() {
            return "none".to_owned();
        }
        s.join(", ")
    };
    // Read-only requirement per volume index, for the mount pass below.
    let mut read_only: Vec<Option<&AllowedPath>> = vec![None; ctx.volumes().len()];
    for (i, v) in ctx.volumes().iter().enumerate() {
        let Some(raw) = v.host_path.as_deref() else {
            continue;
        };
        let path = paths::normalize(raw);
        match allows(opts, &path) {
            Some((true, a)) => read_only[i] = Some(a),
            Some((false, _)) => {}
            None => out.push(Violation {
                rule: RuleId::HostpathAllowed,
                path: format!("{}.hostPath.path", ctx.volume_field(i)),
                message: format!(
                    "hostPath volume {} uses {}, outside the allowed paths ({}); use an allowed path or another volume type",
                    quoted(&v.name),
                    quoted(&path),
                    prefixes()
                ),
            }),
        }
    }
    for (c, j, m) in ctx.mounts() {
        let Some((i, v)) = ctx.volume(&m.name) else {
            continue;
        };
        if let Some(a) = read_only[i]
            && m.read_only != Some(true)
        {
            out.push(Violation {
                rule: RuleId::HostpathAllowed,
                path: c.mount_field(ctx.prefix, j),
                message: format!(
                    "container {} mounts hostPath volume {} writable, but {} is allowed read-only; set readOnly: true",
                    quoted(&c.c.name),
                    quoted(&v.name),
                    quoted(&a.path_prefix)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::HostpathAllowed as R;
    use crate::engine::rules::testutil::{paths, run, run_with};
    use rstest::rstest;

    const POLICY: &str = "rules:\n  hostpath-allowed:\n    action: deny\n    allowedPaths:\n    - {pathPrefix: /var/log, readOnly: true}\n    - {pathPrefix: /data/}\n";

    fn pod(host: &str, read_only: &str) -> String {
        format!(
            "kind: Pod\nspec:\n  volumes: [{{name: h, hostPath: {{path: {host:?}}}}}]\n  containers: [{{name: c, volumeMounts: [{{name: h, mountPath: /h{read_only}}}]}}]\n"
        )
    }

    // Prefix boundaries as PodSecurityPolicy's hasPathPrefix (kubernetes
    // pkg/security/podsecuritypolicy/util/util.go), plus normalisation (`..`, `//`).
    #[rstest]
    #[case::exact_prefix_read_only("/var/log", ", readOnly: true", &[])]
    #[case::below_prefix_read_only("/var/log/app", ", readOnly: true", &[])]
    #[case::trailing_slash("/var/log/", ", readOnly: true", &[])]
    #[case::sibling_is_not_inside("/var/logs", ", readOnly: true", &["spec.volumes[0].hostPath.path"])]
    #[case::dotdot_escapes("/var/log/../../etc", ", readOnly: true", &["spec.volumes[0].hostPath.path"])]
    #[case::dotdot_stays_inside("/var/log/x/../y", ", readOnly: true", &[])]
    #[case::repeated_slashes("//var//log//app", ", readOnly: true", &[])]
    #[case::writable_where_read_only("/var/log/app", "", &["spec.containers[0].volumeMounts[0]"])]
    #[case::read_only_false_is_writable("/var/log/app", ", readOnly: false", &["spec.containers[0].volumeMounts[0]"])]
    #[case::writable_prefix("/data/db", "", &[])]
    #[case::prefix_with_trailing_slash_matches_itself("/data", "", &[])]
    #[case::outside_everything("/etc", ", readOnly: true", &["spec.volumes[0].hostPath.path"])]
    #[case::root("/", ", readOnly: true", &["spec.volumes[0].hostPath.path"])]
    fn cases(#[case] host: &str, #[case] ro: &str, #[case] want: &[&str]) {
        assert_eq!(paths(&run_with(R, &pod(host, ro), POLICY)), want, "{host}");
    }

    #[test]
    fn any_writable_match_allows_writing() {
        let policy = "rules:\n  hostpath-allowed:\n    allowedPaths:\n    - {pathPrefix: /var, readOnly: true}\n    - {pathPrefix: /var/lib/app}\n";
        assert!(run_with(R, &pod("/var/lib/app/x", ""), policy).is_empty());
        assert_eq!(run_with(R, &pod("/var/lib/other", ""), policy).len(), 1);
    }

    #[test]
    fn default_allows_no_host_path_and_ignores_other_volumes() {
        let v = run(R, &pod("/var/log", ", readOnly: true"));
        assert_eq!(paths(&v), ["spec.volumes[0].hostPath.path"]);
        assert!(v[0].message.contains("allowed paths (none)"), "{}", v[0]);
        let other = "kind: Pod\nspec:\n  volumes: [{name: e, emptyDir: {sizeLimit: 1Gi}}]\n  containers: [{name: c, volumeMounts: [{name: e, mountPath: /e}]}]\n";
        assert!(run(R, other).is_empty());
    }

    #[test]
    fn every_writable_mount_is_reported_in_workloads() {
        let dep = "kind: DaemonSet\nspec:\n  template:\n    spec:\n      volumes: [{name: logs, hostPath: {path: /var/log}}]\n      initContainers: [{name: i, volumeMounts: [{name: logs, mountPath: /l}]}]\n      containers: [{name: c, volumeMounts: [{name: logs, mountPath: /l, readOnly: true}]}, {name: d, volumeMounts: [{name: logs, mountPath: /l}]}]\n";
        assert_eq!(
            paths(&run_with(R, dep, POLICY)),
            [
                "spec.template.spec.containers[1].volumeMounts[0]",
                "spec.template.spec.initContainers[0].volumeMounts[0]"
            ]
        );
    }

    #[test]
    fn relative_prefix_is_a_policy_error() {
        let e = crate::engine::Policy::parse(
            "rules:\n  hostpath-allowed: {allowedPaths: [{pathPrefix: var/log}]}\n",
            "p.yaml",
        )
        .unwrap_err();
        assert_eq!(e.path, "rules.hostpath-allowed.allowedPaths[0]", "{e}");
        assert!(e.message.contains("not an absolute path"), "{e}");
    }
}
