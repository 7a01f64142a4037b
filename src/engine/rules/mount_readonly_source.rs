//! `mount-readonly-source`: a volume whose source declares `readOnly: true` is mounted
//! with `readOnly: true`.

use super::{Action, NoOptions, RuleMeta, PodCtx, RuleId, Violation, quoted};

pub const META: RuleMeta = RuleMeta {
    name: "mount-readonly-source",
    default_action: Action::Warn,
    summary: "a volume whose source declares `readOnly: true` (PVC, CSI, NFS, ...) mounted without `readOnly: true`",
    explanation: "A volume whose source declares `readOnly: true` (a PVC, CSI, NFS, iSCSI, ... source) is \
         mounted read-only whatever the mount says; a mount without `readOnly: true` promises a \
         writable directory the application will not get.",
    options: &[],
    apiserver: "",
};

pub type Options = NoOptions;

pub fn check(ctx: &PodCtx<'_>, _: &Options, out: &mut Vec<Violation>) {
    for (c, j, m) in ctx.mounts() {
        let Some((_, vol)) = ctx.volume(&m.name) else {
            continue;
        };
        if vol.source_read_only && m.read_only != Some(true) {
            let source = vol.source.as_deref().unwrap_or("source");
            out.push(Violation {
                rule: RuleId::MountReadonlySource,
                path: c.mount_field(ctx.prefix, j),
                message: format!(
                    "container {} mounts volume {} writable, but its {source} source is \
                     readOnly; set readOnly: true on the mount",
                    quoted(&c.c.name),
                    quoted(&m.name)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::MountReadonlySource as R;
    use crate::engine::rules::testutil::{paths, run};
    use rstest::rstest;

    #[rstest]
    #[case::pvc_ro_mount_rw("persistentVolumeClaim: {claimName: x, readOnly: true}", "", true)]
    #[case::pvc_ro_mount_false(
        "persistentVolumeClaim: {claimName: x, readOnly: true}",
        ", readOnly: false",
        true
    )]
    #[case::pvc_ro_mount_ro(
        "persistentVolumeClaim: {claimName: x, readOnly: true}",
        ", readOnly: true",
        false
    )]
    #[case::pvc_rw("persistentVolumeClaim: {claimName: x}", "", false)]
    #[case::csi_ro("csi: {driver: d, readOnly: true}", "", true)]
    #[case::nfs_ro("nfs: {server: s, path: /p, readOnly: true}", "", true)]
    #[case::configmap("configMap: {name: x}", "", false)]
    fn cases(#[case] source: &str, #[case] mount_extra: &str, #[case] flagged: bool) {
        let obj = format!(
            "kind: Pod\nspec:\n  volumes: [{{name: v, {source}}}]\n  containers: [{{name: c, volumeMounts: [{{name: v, mountPath: /v{mount_extra}}}]}}]\n"
        );
        let want: &[&str] = if flagged {
            &["spec.containers[0].volumeMounts[0]"]
        } else {
            &[]
        };
        assert_eq!(paths(&run(R, &obj)), want);
    }
}
