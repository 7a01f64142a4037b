//! The subset of Kubernetes objects the rules read, decoded without building a DOM.
//!
//! These are deliberately *views*: every field the rules need, nothing else. Unknown fields
//! (`managedFields`, `status`, probes, env, ...) are skipped by serde without allocating, which
//! is what keeps a 6 KB AdmissionReview cheap to decode. The same types are used by the webhook
//! and by `volguard check`, so both see exactly the same object.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The annotation that lists rules to skip (honoured only if the policy allows it).
pub const EXEMPT_ANNOTATION: &str = "volguard.io/exempt";

/// The volume source keys of `core/v1` `VolumeSource`.
pub const VOLUME_SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "gitRepo",
    "glusterfs",
    "hostPath",
    "image",
    "iscsi",
    "nfs",
    "persistentVolumeClaim",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "quobyte",
    "rbd",
    "scaleIO",
    "secret",
    "storageos",
    "vsphereVolume",
];

/// Any Kubernetes object: a Pod, a Pod-template carrier, or something we ignore.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Object {
    #[serde(default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: Option<Spec>,
    /// `PodTemplate.template`.
    #[serde(default)]
    pub template: Option<Box<PodTemplateSpec>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub generate_name: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    /// Only the `volguard.io/exempt` annotation is kept; the others are skipped.
    #[serde(default)]
    pub annotations: ExemptAnnotation,
}

/// The value of the `volguard.io/exempt` annotation, if present.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExemptAnnotation(pub Option<String>);

impl<'de> Deserialize<'de> for ExemptAnnotation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ExemptAnnotation;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ExemptAnnotation(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(ExemptAnnotation(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut found = None;
                while let Some(key) = map.next_key::<KeyStr<'de>>()? {
                    if key.0 == EXEMPT_ANNOTATION {
                        found = map.next_value::<Option<String>>()?;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(ExemptAnnotation(found))
            }
        }
        d.deserialize_any(V)
    }
}

/// A map key borrowed when the input allows it, owned when it has escapes.
struct KeyStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for KeyStr<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = KeyStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(KeyStr(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(KeyStr(v.to_owned().into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(KeyStr(v.into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// The union of a PodSpec and the specs of the workloads that carry one.
///
/// One type serves both levels so the object can be decoded before its kind is known
/// (`kind` may come after `spec` in a hand-written manifest).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    // PodSpec
    #[serde(default, deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub containers: Vec<Container>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub init_containers: Vec<Container>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub ephemeral_containers: Vec<Container>,
    /// Pod-level resources (`PodLevelResources`).
    #[serde(default)]
    pub resources: Option<Resources>,
    /// `spec.os` (`name: windows` gives the Pod Windows path semantics).
    #[serde(default)]
    pub os: Option<PodOs>,
    // Workloads
    #[serde(default)]
    pub template: Option<Box<PodTemplateSpec>>,
    #[serde(default)]
    pub job_template: Option<Box<JobTemplateSpec>>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub volume_claim_templates: Vec<ClaimTemplate>,
}

/// `spec.os`: the OS the Pod must run on (the kubelet refuses a Pod for another OS).
#[derive(Debug, Default, Deserialize)]
pub struct PodOs {
    #[serde(default)]
    pub name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: Option<Spec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplateSpec {
    #[serde(default)]
    pub metadata: Meta,
    #[serde(default)]
    pub spec: Option<Spec>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ClaimTemplate {
    #[serde(default)]
    pub metadata: Meta,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub volume_devices: Vec<VolumeDevice>,
    #[serde(default)]
    pub resources: Option<Resources>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mount_path: String,
    #[serde(default)]
    pub read_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeDevice {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub device_path: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub limits: Option<ResourceList>,
    #[serde(default)]
    pub requests: Option<ResourceList>,
}

/// The two resources the rules compare against; other keys are skipped.
#[derive(Debug, Default, Deserialize)]
pub struct ResourceList {
    #[serde(default)]
    pub memory: Option<RawQuantity>,
    #[serde(default, rename = "ephemeral-storage")]
    pub ephemeral_storage: Option<RawQuantity>,
}

/// A quantity as written in the object (a string, or a bare number in YAML/JSON).
/// Parsed lazily by the rules so an invalid one becomes a violation, not a decode error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawQuantity(pub String);

impl<'de> Deserialize<'de> for RawQuantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = RawQuantity;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quantity string or number")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawQuantity(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(RawQuantity(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawQuantity(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawQuantity(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawQuantity(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// How an emptyDir is backed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    Disk,
    Memory,
    HugePages,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDir {
    #[serde(default)]
    pub medium: Option<String>,
    #[serde(default)]
    pub size_limit: Option<RawQuantity>,
}

impl EmptyDir {
    pub fn medium(&self) -> Medium {
        match self.medium.as_deref() {
            Some("Memory") => Medium::Memory,
            Some(m) if m == "HugePages" || m.starts_with("HugePages-") => Medium::HugePages,
            _ => Medium::Disk,
        }
    }
}

/// A volume: its name, its source type (the camelCase key), and the source details the
/// rules need (emptyDir settings, a declared `readOnly`).
#[derive(Debug, Default)]
pub struct Volume {
    pub name: String,
    /// The source key, e.g. `emptyDir`, `hostPath`; `None` when the volume has no source.
    /// Known keys are static strings (no allocation per volume).
    pub source: Option<Cow<'static, str>>,
    pub empty_dir: Option<EmptyDir>,
    /// `readOnly: true` declared inside the source (PVC, CSI, NFS, ...).
    pub source_read_only: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadOnlyProbe {
    #[serde(default)]
    read_only: Option<bool>,
}

impl<'de> Deserialize<'de> for Volume {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Volume;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a volume object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut vol = Volume::default();
                while let Some(key) = map.next_key::<KeyStr<'de>>()? {
                    let key = key.0;
                    match key.as_ref() {
                        "name" => {
                            vol.name = map.next_value::<Option<String>>()?.unwrap_or_default()
                        }
                        "emptyDir" => {
                            let ed = map.next_value::<Option<EmptyDir>>()?;
                            if let Some(ed) = ed {
                                vol.empty_dir = Some(ed);
                                vol.source.get_or_insert(Cow::Borrowed("emptyDir"));
                            }
                        }
                        // Sources without a readOnly field, or whose content is not a map.
                        "configMap" | "secret" | "downwardAPI" | "projected" | "hostPath"
                        | "gitRepo" | "image" | "ephemeral" => {
                            if map.next_value::<Option<IgnoredAny>>()?.is_some() {
                                vol.source.get_or_insert_with(|| source_key(key));
                            }
                        }
                        _ => match map.next_value::<Option<ReadOnlyProbe>>() {
                            Ok(Some(p)) => {
                                vol.source_read_only |= p.read_only.unwrap_or(false);
                                vol.source.get_or_insert_with(|| source_key(key));
                            }
                            Ok(None) => {}
                            Err(e) => return Err(e),
                        },
                    }
                }
                Ok(vol)
            }
        }
        d.deserialize_map(V)
    }
}

/// A volume source key as a static string when it is a known one.
fn source_key(key: Cow<'_, str>) -> Cow<'static, str> {
    match VOLUME_SOURCES.iter().find(|k| **k == key) {
        Some(k) => Cow::Borrowed(k),
        None => Cow::Owned(key.into_owned()),
    }
}

/// `null` in a list position decodes as an empty list (the apiserver never sends it, but
/// hand-written YAML does: `volumes:` with nothing after it).
fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_volume_sources_and_read_only() {
        let v: Vec<Volume> = serde_json::from_str(
            r#"[{"name":"a","emptyDir":{"medium":"Memory","sizeLimit":"1Gi"}},
                {"name":"b","persistentVolumeClaim":{"claimName":"c","readOnly":true}},
                {"name":"c","configMap":{"name":"x"}},
                {"name":"d"}]"#,
        )
        .unwrap();
        assert_eq!(v[0].source.as_deref(), Some("emptyDir"));
        assert_eq!(v[0].empty_dir.as_ref().unwrap().medium(), Medium::Memory);
        assert_eq!(
            v[0].empty_dir.as_ref().unwrap().size_limit,
            Some(RawQuantity("1Gi".into()))
        );
        assert_eq!(v[1].source.as_deref(), Some("persistentVolumeClaim"));
        assert!(v[1].source_read_only);
        assert_eq!(v[2].source.as_deref(), Some("configMap"));
        assert!(!v[2].source_read_only);
        assert_eq!(v[3].source, None);
    }

    #[test]
    fn keeps_only_the_exempt_annotation() {
        let m: Meta = serde_json::from_str(
            r#"{"name":"p","annotations":{"a":"b","volguard.io/exempt":"volume-unused","c":"d"}}"#,
        )
        .unwrap();
        assert_eq!(m.annotations.0.as_deref(), Some("volume-unused"));
        let m: Meta = serde_json::from_str(r#"{"annotations":{"a":"b"}}"#).unwrap();
        assert_eq!(m.annotations.0, None);
    }

    #[test]
    fn numeric_quantities_are_accepted() {
        let e: EmptyDir = serde_json::from_str(r#"{"sizeLimit": 1000}"#).unwrap();
        assert_eq!(e.size_limit, Some(RawQuantity("1000".into())));
    }

    #[test]
    fn hugepages_media() {
        for (m, want) in [
            ("HugePages", Medium::HugePages),
            ("HugePages-2Mi", Medium::HugePages),
            ("Memory", Medium::Memory),
            ("", Medium::Disk),
        ] {
            let e = EmptyDir {
                medium: Some(m.into()),
                size_limit: None,
            };
            assert_eq!(e.medium(), want, "{m}");
        }
    }
}
