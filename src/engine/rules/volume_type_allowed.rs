//! `volume-type-allowed`: volume sources come from an allowed list.

use serde::{Deserialize, Serialize};

use crate::engine::model::VOLUME_SOURCES;
use super::{Action, OptionDoc, RuleMeta, PodCtx, RuleId, Violation, quoted};

pub const META: RuleMeta = RuleMeta {
    name: "volume-type-allowed",
    default_action: Action::Off,
    summary: "a volume type (source key, e.g. `hostPath`) outside the allowed list",
    explanation: "Restricts volume sources to an allowed list of source keys (e.g. to forbid `hostPath`). \
         The default list is the Pod Security Standards `restricted` set. Off by default.",
    options: &[OptionDoc {
        name: "allowed",
        schema: || serde_json::json!({"type": "array", "items": {"type": "string", "enum": VOLUME_SOURCES}}),
        help: "the volume source keys allowed; the default is the Pod Security Standards restricted set",
    }],
    apiserver: "",
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Options {
    pub allowed: Vec<VolumeSource>,
}

impl Default for Options {
    fn default() -> Self {
        // The Pod Security Standards "restricted" set.
        let allowed = [
            "configMap",
            "csi",
            "downwardAPI",
            "emptyDir",
            "ephemeral",
            "image",
            "persistentVolumeClaim",
            "projected",
            "secret",
        ];
        Options {
            allowed: allowed.iter().map(|a| VolumeSource(a.to_string())).collect(),
        }
    }
}

/// A volume source key (`emptyDir`, `hostPath`, ...), checked against the known ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct VolumeSource(pub String);

impl<'de> Deserialize<'de> for VolumeSource {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let key = String::deserialize(d)?;
        if VOLUME_SOURCES.contains(&key.as_str()) {
            Ok(VolumeSource(key))
        } else {
            Err(serde::de::Error::custom(format_args!(
                "unknown volume type {key:?} (known: {})",
                VOLUME_SOURCES.join(", ")
            )))
        }
    }
}

pub fn check(ctx: &PodCtx<'_>, opts: &Options, out: &mut Vec<Violation>) {
    for (i, v) in ctx.volumes().iter().enumerate() {
        let Some(source) = v.source.as_deref() else {
            continue;
        };
        if !opts.allowed.iter().any(|a| a.0 == source) {
            let names: Vec<&str> = opts.allowed.iter().map(|a| a.0.as_str()).collect();
            let allowed = names.join(", ");
            out.push(Violation {
                rule: RuleId::VolumeTypeAllowed,
                path: format!("{}.{source}", ctx.volume_field(i)),
                message: format!(
                    "volume {} has type {source}, which is not allowed; use one of: {allowed}",
                    quoted(&v.name)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::rules::RuleId::VolumeTypeAllowed as R;
    use crate::engine::rules::testutil::{paths, run, run_with};

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
