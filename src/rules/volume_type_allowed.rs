//! `volume-type-allowed`: volume sources come from an allowed list.

use super::{PodCtx, RuleId, Violation, q};
use crate::policy::{RuleConfig, RuleSet};

pub(super) fn check(ctx: &PodCtx<'_>, cfg: &RuleConfig, _: &RuleSet, out: &mut Vec<Violation>) {
    for (i, v) in ctx.volumes().iter().enumerate() {
        let Some(source) = v.source.as_deref() else {
            continue;
        };
        if !cfg.allowed.iter().any(|a| a == source) {
            let mut allowed = cfg.allowed.join(", ");
            if allowed.len() > 90 {
                allowed.truncate(allowed[..90].rfind(',').unwrap_or(90));
                allowed.push_str(", …");
            }
            out.push(Violation {
                rule: RuleId::VolumeTypeAllowed,
                path: format!("{}.{source}", ctx.volume_path(i)),
                message: format!(
                    "volume {} has type {source}, which is not allowed; use one of: {allowed}",
                    q(&v.name)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::rules::RuleId::VolumeTypeAllowed as R;
    use crate::rules::testutil::{paths, run, run_with};

    const POD: &str = "kind: Pod\nspec:\n  volumes:\n  - {name: a, emptyDir: {}}\n  - {name: h, hostPath: {path: /var/log}}\n  - {name: p, persistentVolumeClaim: {claimName: x}}\n";

    #[test]
    fn default_list_rejects_host_path() {
        assert_eq!(paths(&run(R, POD)), ["spec.volumes[1].hostPath"]);
    }

    #[test]
    fn configured_list() {
        let v = run_with(
            R,
            POD,
            "rules:\n  volume-type-allowed: {action: deny, allowed: [emptyDir, hostPath]}\n",
        );
        assert_eq!(paths(&v), ["spec.volumes[2].persistentVolumeClaim"]);
        assert!(v[0].message.contains("emptyDir, hostPath"), "{}", v[0]);
    }
}
