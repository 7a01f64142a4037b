//! `emptydir-size-limit-max`: sizeLimits are valid, positive and within the maxima.

use serde::{Deserialize, Serialize};

use crate::engine::quantity::{PositiveQuantity, Quantity};
use super::{Action, OptionDoc, quantity_schema, RuleMeta, PodCtx, RuleId, Violation, first_over, quoted};
use crate::engine::model::Medium;

pub const META: RuleMeta = RuleMeta {
    name: "emptydir-size-limit-max",
    default_action: Action::Deny,
    summary: "a `sizeLimit` above the maximum for its medium, negative, or not a quantity",
    explanation: "Caps each emptyDir's `sizeLimit` by medium (`maxDisk`, `maxMemory`) and optionally the \
         sum over the Pod (`maxTotal`). A `sizeLimit` that is negative or not a valid quantity is \
         also reported (the apiserver rejects both); a zero one is unlimited to the kubelet and \
         is `emptydir-size-limit-required`'s. Quantities compare exactly: `10240Mi` equals `10Gi`.",
    options: &[
        OptionDoc {
            name: "maxDisk",
            schema: quantity_schema,
            help: "largest sizeLimit of a disk-backed emptyDir",
        },
        OptionDoc {
            name: "maxMemory",
            schema: quantity_schema,
            help: "largest sizeLimit of a memory-backed (tmpfs) emptyDir",
        },
        OptionDoc {
            name: "maxTotal",
            schema: || serde_json::json!({"anyOf": [{"type": "null"}, quantity_schema()]}),
            help: "largest sum of the emptyDir sizeLimits of one Pod (unset: no total)",
        },
    ],
    apiserver: "only a negative sizeLimit (0 and any positive size pass)",
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Options {
    pub max_disk: PositiveQuantity,
    pub max_memory: PositiveQuantity,
    pub max_total: Option<PositiveQuantity>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_disk: PositiveQuantity::from_literal("10Gi"),
            max_memory: PositiveQuantity::from_literal("2Gi"),
            max_total: None,
        }
    }
}

pub fn check(ctx: &PodCtx<'_>, opts: &Options, out: &mut Vec<Violation>) {
    for (i, v, e, medium) in ctx.empty_dirs() {
        let Some(parsed) = ctx.size_limit(i) else {
            continue;
        };
        let raw = e
            .size_limit
            .as_ref()
            .map(|r| &*r.0)
            .unwrap_or_default();
        let path = format!("{}.emptyDir.sizeLimit", ctx.volume_field(i));
        let (max, what) = match medium {
            Medium::Disk => (*opts.max_disk, "disk-backed"),
            Medium::Memory => (*opts.max_memory, "memory-backed"),
            Medium::HugePages | Medium::Unknown => continue,
        };
        let message = match parsed {
            Err(_) => format!(
                "emptyDir {} has sizeLimit {}, which is not a valid quantity; write a size such as 500Mi or 1Gi",
                quoted(&v.name),
                quoted(raw)
            ),
            Ok(size) if *size < Quantity::ZERO => format!(
                "emptyDir {} has sizeLimit {}, which is negative; set a size above zero (at most {max})",
                quoted(&v.name),
                quoted(raw)
            ),
            Ok(size) if *size > max => format!(
                "emptyDir {} has sizeLimit {}, above the {max} maximum for {what} emptyDirs; lower it to at most {max}",
                quoted(&v.name),
                quoted(raw)
            ),
            Ok(_) => continue,
        };
        out.push(Violation {
            rule: RuleId::EmptydirSizeLimitMax,
            path,
            message,
        });
    }
    if let Some(total) = opts.max_total.as_deref().copied() {
        let sized = ctx
            .empty_dirs()
            .filter(|(_, _, _, m)| matches!(m, Medium::Disk | Medium::Memory));
        if let Some((i, v, sum)) = first_over(ctx, sized, total) {
            out.push(Violation {
                rule: RuleId::EmptydirSizeLimitMax,
                path: format!("{}.emptyDir.sizeLimit", ctx.volume_field(i)),
                message: format!(
                    "emptyDir sizeLimits add up to {sum} (through {}), above the {total} total allowed per Pod; lower them",
                    quoted(&v.name)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::EmptydirSizeLimitMax as R;
    use crate::engine::rules::testutil::{paths, run, run_with, empty_dir_pod, flagged_at};
    use rstest::rstest;


    #[rstest]
    #[case::at_max_binary("{sizeLimit: 10Gi}", false)]
    #[case::at_max_mebibytes("{sizeLimit: 10240Mi}", false)]
    #[case::decimal_below("{sizeLimit: 10G}", false)]
    #[case::exponent_above("{sizeLimit: 1.5e10}", true)]
    #[case::one_byte_above("{sizeLimit: \"10737418241\"}", true)]
    #[case::above("{sizeLimit: 11Gi}", true)]
    #[case::numeric("{sizeLimit: 1000}", false)]
    // Zero is unlimited to the kubelet: emptydir-size-limit-required reports it.
    #[case::zero("{sizeLimit: \"0\"}", false)]
    #[case::negative("{sizeLimit: -1Gi}", true)]
    #[case::invalid("{sizeLimit: lots}", true)]
    #[case::bad_suffix("{sizeLimit: 1GB}", true)]
    #[case::unset("{}", false)]
    #[case::memory_at_max("{medium: Memory, sizeLimit: 2Gi}", false)]
    #[case::memory_above("{medium: Memory, sizeLimit: 3Gi}", true)]
    #[case::hugepages_ignored("{medium: HugePages, sizeLimit: 100Gi}", false)]
    fn defaults(#[case] ed: &str, #[case] flagged: bool) {
        let want = flagged_at(flagged, "spec.volumes[0].emptyDir.sizeLimit");
        assert_eq!(paths(&run(R, &empty_dir_pod(ed))), want, "{ed}");
    }

    #[test]
    fn invalid_quantity_message_is_clear() {
        let v = run(R, &empty_dir_pod("{sizeLimit: lots}"));
        assert!(
            v[0].message
                .contains("\"lots\", which is not a valid quantity"),
            "{}",
            v[0]
        );
    }

    #[test]
    fn configured_maxima() {
        let policy = "rules:\n  emptydir-size-limit-max: {maxDisk: 50Gi}\n";
        assert!(run_with(R, &empty_dir_pod("{sizeLimit: 40Gi}"), policy).is_empty());
        assert_eq!(run_with(R, &empty_dir_pod("{sizeLimit: 60Gi}"), policy).len(), 1);
    }

    #[test]
    fn max_total_flags_the_volume_that_crosses_it() {
        let obj = "kind: Pod\nspec:\n  volumes:\n  - {name: a, emptyDir: {sizeLimit: 4Gi}}\n  - {name: b, emptyDir: {medium: Memory, sizeLimit: 1Gi}}\n  - {name: c, emptyDir: {sizeLimit: 1Gi}}\n  - {name: d, emptyDir: {sizeLimit: 1Gi}}\n";
        let v = run_with(
            R,
            obj,
            "rules:\n  emptydir-size-limit-max: {maxTotal: 6Gi}\n",
        );
        assert_eq!(paths(&v), ["spec.volumes[3].emptyDir.sizeLimit"]);
        assert!(
            v[0].message.contains("add up to 7Gi (through \"d\")"),
            "{}",
            v[0]
        );
        assert!(
            run_with(
                R,
                obj,
                "rules:\n  emptydir-size-limit-max: {maxTotal: 7Gi}\n"
            )
            .is_empty()
        );
    }
}
