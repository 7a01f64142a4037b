//! `emptydir-size-limit-required`: emptyDirs (of the configured media) set a sizeLimit.

use serde::{Deserialize, Serialize};
use super::{Action, OptionDoc, PodCtx, RuleId, RuleMeta, RuleSet, Violation, quoted};
use crate::engine::model::Medium;
use crate::engine::quantity::Quantity;

pub const META: RuleMeta = RuleMeta {
    name: "emptydir-size-limit-required",
    default_action: Action::Deny,
    summary: "an emptyDir nothing bounds: no `sizeLimit` (or a zero one, unlimited to the kubelet) and no Pod limit for its medium, or only a Pod limit above the maximum",
    explanation: "An emptyDir without `sizeLimit` can fill the node's disk (or, memory-backed, its memory) \
         until the kubelet evicts Pods. A `sizeLimit` the apiserver reads as zero (`0`, `0Gi`, \
         `0.0`, ...) is no limit either: the eviction manager and tmpfs sizing only use a \
         positive one. With `podLimitsBound` (the default), a Pod limit the kubelet enforces \
         bounds it too, as Kubernetes does: a disk emptyDir by the Pod's ephemeral-storage \
         limit (the eviction manager evicts the Pod past it, `podEphemeralStorageLimitEviction`), \
         a memory one by the Pod cgroup's memory limit (the tmpfs is sized to it and its pages \
         count against it, `calculateEmptyDirMemorySize`); such a bound must then be within \
         `emptydir-size-limit-max`'s maximum for the medium. `media` selects which emptyDirs \
         need a bound: `disk`, `memory` or both. HugePages-backed emptyDirs are bounded by \
         hugepage limits and exempt.",
    options: &[
        OptionDoc {
            name: "media",
            schema: || serde_json::json!({"type": "array", "items": {"type": "string", "enum": ["disk", "memory"]}}),
            help: "which emptyDirs need a bound: disk-backed, memory-backed (tmpfs) or both",
        },
        OptionDoc {
            name: "podLimitsBound",
            schema: || serde_json::json!({"type": "boolean"}),
            help: "a Pod ephemeral-storage (disk) or memory (tmpfs) limit within the maximum counts as a bound; false requires a sizeLimit on every emptyDir",
        },
    ],
    apiserver: "",
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Options {
    pub media: Vec<MediaKind>,
    pub pod_limits_bound: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            media: vec![MediaKind::Disk, MediaKind::Memory],
            pod_limits_bound: true,
        }
    }
}

/// Which emptyDir media the rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Disk,
    Memory,
}

pub fn check(ctx: &PodCtx<'_>, opts: &Options, rules: &RuleSet, out: &mut Vec<Violation>) {
    let max_action = rules.get(RuleId::EmptydirSizeLimitMax).action;
    let max = rules.emptydir_size_limit_max();
    for (i, v, e, medium) in ctx.empty_dirs() {
        let applies = match medium {
            Medium::Disk => opts.media.contains(&MediaKind::Disk),
            Medium::Memory => opts.media.contains(&MediaKind::Memory),
            Medium::HugePages | Medium::Unknown => false,
        };
        if !applies {
            continue;
        }
        // kubelet emptyDirLimitEviction and calculateEmptyDirMemorySize ignore a sizeLimit
        // that is not positive; the apiserver rejects negative ones, so this is zero.
        // (Not a quantity: emptydir-size-limit-max's business.)
        let zero = match (&e.size_limit, ctx.size_limit(i)) {
            (None, _) => false,
            (Some(_), Some(Ok(q))) if !q.is_positive() && *q >= Quantity::ZERO => true,
            _ => continue,
        };
        let (what, hint) = match medium {
            Medium::Memory => ("memory-backed emptyDir", *max.max_memory),
            _ => ("emptyDir", *max.max_disk),
        };
        // The Pod limit the kubelet enforces for this medium, if it is a bound we accept.
        let pod_bound = match medium {
            Medium::Memory => ctx.memory_limit().map(|l| (l, "memory")),
            _ => ctx.ephemeral_storage_limit().map(|l| (l, "ephemeral-storage")),
        }
        .filter(|_| opts.pod_limits_bound);
        let over_max = match pod_bound {
            Some((limit, _)) if max_action == Action::Off || limit <= hint => continue,
            Some((limit, kind)) => Some((limit, kind)),
            None => None,
        };
        let fix = if max_action == Action::Off {
            "set sizeLimit".to_owned()
        } else {
            format!("set sizeLimit (at most {hint})")
        };
        let (path, message) = if zero {
            (
                format!("{}.emptyDir.sizeLimit", ctx.volume_field(i)),
                format!(
                    "{what} {} has sizeLimit {}: 0 means unlimited to the kubelet; {}",
                    quoted(&v.name),
                    quoted(e.size_limit.as_ref().map_or("", |r| &*r.0)),
                    fix.replacen("set sizeLimit", "set a positive sizeLimit", 1)
                ),
            )
        } else if let Some((limit, kind)) = over_max {
            (
                format!("{}.emptyDir", ctx.volume_field(i)),
                format!(
                    "{what} {} has no sizeLimit and only the Pod's {limit} {kind} limit bounds it, above the {hint} maximum; {fix}",
                    quoted(&v.name)
                ),
            )
        } else {
            let unbounded = match (opts.pod_limits_bound, medium) {
                (false, _) => "",
                (true, Medium::Memory) => " and the Pod has no memory limit",
                (true, _) => " and the Pod has no ephemeral-storage limit",
            };
            (
                format!("{}.emptyDir", ctx.volume_field(i)),
                format!("{what} {} has no sizeLimit{unbounded}; {fix}", quoted(&v.name)),
            )
        };
        out.push(Violation {
            rule: RuleId::EmptydirSizeLimitRequired,
            path,
            message,
        });
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::EmptydirSizeLimitRequired as R;
    use crate::engine::rules::testutil::{paths, run, run_with, empty_dir_pod, flagged_at};
    use rstest::rstest;


    #[rstest]
    #[case::disk_no_limit("{}", true)]
    // SetDefaults_Volume: a null emptyDir (no source at all) becomes `emptyDir: {}`.
    #[case::disk_null("null", true)]
    #[case::disk_limit("{sizeLimit: 500Mi}", false)]
    #[case::memory_no_limit("{medium: Memory}", true)]
    #[case::memory_limit("{medium: Memory, sizeLimit: 64Mi}", false)]
    #[case::hugepages("{medium: HugePages}", false)]
    #[case::hugepages_sized("{medium: HugePages-2Mi}", false)]
    #[case::unknown_medium_is_emptydir_medium_valid_business("{medium: memory}", false)]
    fn default_media(#[case] ed: &str, #[case] flagged: bool) {
        let want = flagged_at(flagged, "spec.volumes[0].emptyDir");
        assert_eq!(paths(&run(R, &empty_dir_pod(ed))), want, "{ed}");
    }

    // kubernetes/kubernetes pkg/kubelet/eviction/eviction_manager.go:emptyDirLimitEviction
    // (sizeLimit.Sign() == 1) and pkg/volume/emptydir/empty_dir.go:calculateEmptyDirMemorySize
    // (sizeLimit > 0): zero, in any spelling ParseQuantity reads as zero, is no limit.
    #[rstest]
    #[case::zero("{sizeLimit: \"0\"}", true)]
    #[case::zero_number("{sizeLimit: 0}", true)]
    #[case::zero_gi("{sizeLimit: 0Gi}", true)]
    #[case::zero_fraction("{sizeLimit: \"0.0\"}", true)]
    #[case::minus_zero("{sizeLimit: \"-0\"}", true)]
    #[case::zero_exponent("{sizeLimit: 0e3}", true)]
    #[case::memory_zero("{medium: Memory, sizeLimit: 0Mi}", true)]
    #[case::one_nano("{sizeLimit: 1n}", false)]
    #[case::negative_is_max_rule_business("{sizeLimit: -1}", false)]
    #[case::invalid_is_max_rule_business("{sizeLimit: lots}", false)]
    fn zero_size_limit(#[case] ed: &str, #[case] flagged: bool) {
        let v = run(R, &empty_dir_pod(ed));
        let want = flagged_at(flagged, "spec.volumes[0].emptyDir.sizeLimit");
        assert_eq!(paths(&v), want, "{ed}");
        if flagged {
            assert!(
                v[0].message.contains(": 0 means unlimited to the kubelet; set a positive sizeLimit"),
                "{}",
                v[0]
            );
        }
    }

    #[test]
    fn media_option_limits_scope() {
        let policy = "rules:\n  emptydir-size-limit-required: {media: [memory]}\n";
        assert!(run_with(R, &empty_dir_pod("{}"), policy).is_empty());
        assert_eq!(run_with(R, &empty_dir_pod("{medium: Memory}"), policy).len(), 1);
    }

    #[test]
    fn message_matches_the_catalogue_example() {
        let v = run(
            R,
            "kind: Pod\nspec:\n  volumes: [{name: temp-volume, emptyDir: {}}]\n",
        );
        assert_eq!(
            v[0].to_string(),
            "[emptydir-size-limit-required] spec.volumes[0].emptyDir: emptyDir \"temp-volume\" has no sizeLimit and the Pod has no ephemeral-storage limit; set sizeLimit (at most 10Gi)"
        );
        let v = run_with(
            R,
            &empty_dir_pod("{medium: Memory}"),
            "rules:\n  emptydir-size-limit-max: {action: 'off'}\n",
        );
        assert!(v[0].message.ends_with("; set sizeLimit"), "{}", v[0]);
    }

    fn limited(ed: &str, resources: &str) -> String {
        format!(
            "kind: Pod\nspec:\n  volumes: [{{name: v, emptyDir: {ed}}}]\n  containers: [{{name: c, resources: {{limits: {resources}}}}}]\n"
        )
    }

    // A Pod limit the kubelet enforces bounds an unsized emptyDir: kubernetes/kubernetes
    // pkg/kubelet/eviction/eviction_manager.go:podEphemeralStorageLimitEviction (disk: the Pod
    // is evicted past its ephemeral-storage limit, emptyDirs included) and
    // pkg/volume/emptydir/empty_dir.go:calculateEmptyDirMemorySize with
    // pkg/kubelet/cm/helpers_linux.go:ResourceConfigForPod (tmpfs sized to, and charged to,
    // the Pod cgroup's memory limit). Within the maximum it is accepted by default.
    #[rstest]
    #[case::disk_bounded_by_ephemeral_storage("{}", "{ephemeral-storage: 5Gi}", None)]
    #[case::disk_bound_at_the_max("{}", "{ephemeral-storage: 10Gi}", None)]
    #[case::disk_bound_above_the_max("{}", "{ephemeral-storage: 50Gi}", Some("only the Pod's 50Gi ephemeral-storage limit bounds it, above the 10Gi maximum"))]
    #[case::disk_memory_limit_is_no_disk_bound("{}", "{memory: 1Gi}", Some("and the Pod has no ephemeral-storage limit"))]
    #[case::tmpfs_bounded_by_memory("{medium: Memory}", "{memory: 1Gi}", None)]
    #[case::tmpfs_bound_above_the_max("{medium: Memory}", "{memory: 8Gi}", Some("only the Pod's 8Gi memory limit bounds it, above the 2Gi maximum"))]
    #[case::tmpfs_ephemeral_limit_is_no_memory_bound("{medium: Memory}", "{ephemeral-storage: 1Gi}", Some("and the Pod has no memory limit"))]
    #[case::zero_size_limit_bounded_by_the_pod("{sizeLimit: 0}", "{ephemeral-storage: 1Gi}", None)]
    fn pod_limits_bound(#[case] ed: &str, #[case] limits: &str, #[case] want: Option<&str>) {
        let v = run(R, &limited(ed, limits));
        match want {
            None => assert!(v.is_empty(), "{ed} {limits}: {v:?}"),
            Some(text) => {
                assert_eq!(v.len(), 1, "{ed} {limits}");
                assert!(v[0].message.contains(text), "{}", v[0]);
            }
        }
    }

    #[test]
    fn pod_limits_bound_can_be_switched_off_and_the_max_rule_off_accepts_any_bound() {
        let strict = "rules:\n  emptydir-size-limit-required: {podLimitsBound: false}\n";
        let v = run_with(R, &limited("{}", "{ephemeral-storage: 1Gi}"), strict);
        assert_eq!(paths(&v), ["spec.volumes[0].emptyDir"]);
        assert!(v[0].message.contains("has no sizeLimit; set sizeLimit"), "{}", v[0]);
        let no_max = "rules:\n  emptydir-size-limit-max: {action: 'off'}\n";
        assert!(run_with(R, &limited("{medium: Memory}", "{memory: 64Gi}"), no_max).is_empty());
    }
}
