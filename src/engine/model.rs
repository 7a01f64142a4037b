//! The subset of Kubernetes objects the rules read, decoded without building a DOM.
//!
//! These are deliberately *views*: every field the rules need, nothing else. Unknown fields
//! (`managedFields`, `status`, probes, env, ...) are skipped by serde without allocating, which
//! is what keeps a 6 KB AdmissionReview cheap to decode. Strings are borrowed from the input
//! (`Cow::Borrowed`) unless they contain JSON escapes, so decoding a Pod allocates only its
//! lists. The same types are used by the webhook and by `volguard check`, so both see exactly
//! the same object. An owned source (a `serde_yaml_ng::Value`, a `serde_json::Value`) is
//! decoded by reference: `Object::deserialize(&value)`.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The annotation that lists rules to skip (honoured only if the policy allows it).
pub const EXEMPT_ANNOTATION: &str = "volguard.io/exempt";

/// The annotation the kubelet puts on the API copy of a static Pod
/// (`pkg/apis/core/annotation_key_constants.go:MirrorPodAnnotationKey`).
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

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
///
/// Decoding applies what Kubernetes does to the object before a Pod runs and that the rules
/// would otherwise misread (see [`Object::from`]): the apiserver's `SetDefaults_Volume`
/// (already applied to what the webhook receives, so idempotent there) and the StatefulSet
/// controller's `updateStorage`.
#[derive(Debug, Default)]
pub struct Object<'a> {
    pub api_version: Cow<'a, str>,
    pub kind: Cow<'a, str>,
    pub metadata: Meta<'a>,
    pub spec: Option<Spec<'a>>,
    /// `PodTemplate.template`.
    pub template: Option<Box<PodTemplateSpec<'a>>>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Object<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ObjectFields::deserialize(d).map(Object::from)
    }
}

/// The fields of [`Object`] as written.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectFields<'a> {
    #[serde(default, borrow)]
    api_version: Cow<'a, str>,
    #[serde(default, borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    metadata: Meta<'a>,
    #[serde(default, borrow)]
    spec: Option<Spec<'a>>,
    #[serde(default, borrow)]
    template: Option<Box<PodTemplateSpec<'a>>>,
}

impl<'a> From<ObjectFields<'a>> for Object<'a> {
    fn from(f: ObjectFields<'a>) -> Self {
        let mut obj = Object {
            api_version: f.api_version,
            kind: f.kind,
            metadata: f.metadata,
            spec: f.spec,
            template: f.template,
        };
        if let Some(spec) = obj.spec.as_mut() {
            spec.apply_update_storage();
        }
        // Every Pod spec the object carries: a Pod's, or the template of the Pods a
        // controller will create (the apiserver defaults those Pods when they are created).
        if let Some(spec) = obj.spec.as_mut() {
            spec.default_requests_from_limits();
            if let Some(t) = spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
                t.default_requests_from_limits();
            }
            let job = spec.job_template.as_mut().and_then(|j| j.spec.as_mut());
            if let Some(t) = job
                .and_then(|j| j.template.as_mut())
                .and_then(|t| t.spec.as_mut())
            {
                t.default_requests_from_limits();
            }
        }
        if let Some(t) = obj.template.as_mut().and_then(|t| t.spec.as_mut()) {
            t.default_requests_from_limits();
        }
        obj
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta<'a> {
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub generate_name: Option<Cow<'a, str>>,
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub namespace: Option<Cow<'a, str>>,
    /// Only the annotations volguard reads are kept; the others are skipped.
    #[serde(default, borrow)]
    pub annotations: Annotations<'a>,
    /// Only references with `controller: true` are kept (at most one is valid).
    #[serde(default, borrow, deserialize_with = "controller_refs")]
    pub owner_references: Vec<OwnerReference<'a>>,
}

impl<'a> Meta<'a> {
    /// The managing controller (`ownerReferences[].controller: true`), if any.
    pub fn controller(&self) -> Option<&OwnerReference<'a>> {
        self.owner_references.first()
    }
}

/// An `ownerReferences` entry, reduced to what logs and messages name.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
pub struct OwnerReference<'a> {
    #[serde(default, borrow)]
    pub kind: Cow<'a, str>,
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    #[serde(default)]
    pub controller: Option<bool>,
}

/// `ownerReferences` without the entries that are not the controller.
fn controller_refs<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Vec<OwnerReference<'a>>, D::Error> {
    let mut refs: Vec<OwnerReference<'a>> = null_as_default(d)?;
    refs.retain(|r| r.controller == Some(true));
    Ok(refs)
}

/// The annotations volguard reads: `volguard.io/exempt` and the mirror-Pod marker.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Annotations<'a> {
    /// The value of `volguard.io/exempt`, if present.
    pub exempt: Option<Cow<'a, str>>,
    /// `kubernetes.io/config.mirror` is present (any value).
    pub mirror: bool,
}

impl<'de: 'a, 'a> Deserialize<'de> for Annotations<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<Annotations<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Annotations<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of annotations")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Annotations::default())
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Annotations::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut found = Annotations::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    if key.0 == EXEMPT_ANNOTATION {
                        found.exempt = map.next_value::<Option<Str<'de>>>()?.map(|s| s.0);
                    } else {
                        found.mirror |= key.0 == MIRROR_ANNOTATION;
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(found)
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A string borrowed when the input allows it, owned when it has escapes (or the input is
/// not borrowable).
pub(crate) struct Str<'a>(pub(crate) Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Str(v.into()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Str(v.to_owned().into()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Str(v.into()))
            }
        }
        d.deserialize_str(V)
    }
}

/// An optional string, borrowed when possible (`#[serde(borrow)]` alone borrows only a bare
/// `Cow<str>`, not one inside an `Option`). `null` is `None`.
pub(crate) fn opt_str<'de: 'a, 'a, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(Option::<Str<'de>>::deserialize(d)?.map(|s| s.0))
}

/// The union of a PodSpec and the specs of the workloads that carry one.
///
/// One type serves both levels so the object can be decoded before its kind is known
/// (`kind` may come after `spec` in a hand-written manifest).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec<'a> {
    // PodSpec
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume<'a>>,
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub containers: Vec<Container<'a>>,
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub init_containers: Vec<Container<'a>>,
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub ephemeral_containers: Vec<Container<'a>>,
    /// Pod-level resources (`PodLevelResources`).
    #[serde(default, borrow)]
    pub resources: Option<Resources<'a>>,
    /// `spec.overhead` (set by the RuntimeClass admission plugin).
    #[serde(default, borrow)]
    pub overhead: Option<ResourceList<'a>>,
    /// `spec.os` (`name: windows` gives the Pod Windows path semantics).
    #[serde(default, borrow)]
    pub os: Option<PodOs<'a>>,
    // Workloads
    #[serde(default, borrow)]
    pub template: Option<Box<PodTemplateSpec<'a>>>,
    #[serde(default, borrow)]
    pub job_template: Option<Box<JobTemplateSpec<'a>>>,
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub volume_claim_templates: Vec<ClaimTemplate<'a>>,
}

impl Spec<'_> {
    /// `SetDefaults_Pod` (`pkg/apis/core/v1/defaults.go`): a container or init container
    /// request that is missing takes the value of its limit, key by key. The apiserver does it
    /// to every Pod (so to every Pod a workload's controller creates), not to templates.
    fn default_requests_from_limits(&mut self) {
        fn fill<'a>(req: &mut Option<RawQuantity<'a>>, lim: &Option<RawQuantity<'a>>) {
            if req.is_none() {
                req.clone_from(lim);
            }
        }
        for c in self.containers.iter_mut().chain(&mut self.init_containers) {
            if let Some(Resources {
                limits: Some(l),
                requests,
            }) = c.resources.as_mut()
            {
                let r = requests.get_or_insert_with(ResourceList::default);
                fill(&mut r.cpu, &l.cpu);
                fill(&mut r.memory, &l.memory);
                fill(&mut r.ephemeral_storage, &l.ephemeral_storage);
            }
        }
    }

    /// The StatefulSet controller's `updateStorage`
    /// (`pkg/controller/statefulset/stateful_set_utils.go`): every template volume whose name
    /// equals a volumeClaimTemplate's is replaced, in every Pod, by that claim's PVC volume.
    /// The volume keeps its position here so findings point at what the user wrote.
    fn apply_update_storage(&mut self) {
        if self.volume_claim_templates.is_empty() {
            return;
        }
        let Some(spec) = self.template.as_mut().and_then(|t| t.spec.as_mut()) else {
            return;
        };
        // A set, not a scan per volume: both lists can be long (bounded work per request).
        let claims: std::collections::HashSet<&str> = self
            .volume_claim_templates
            .iter()
            .filter_map(|c| c.metadata.name.as_deref())
            .collect();
        for v in &mut spec.volumes {
            if claims.contains(&*v.name) {
                v.source = Some(Cow::Borrowed("persistentVolumeClaim"));
                v.empty_dir = None;
                v.host_path = None;
                v.source_read_only = false;
                v.claim_template = true;
            }
        }
    }
}

/// `spec.os`: the OS the Pod must run on (the kubelet refuses a Pod for another OS).
#[derive(Debug, Default, Deserialize)]
pub struct PodOs<'a> {
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub name: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateSpec<'a> {
    #[serde(default, borrow)]
    pub metadata: Meta<'a>,
    #[serde(default, borrow)]
    pub spec: Option<Spec<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobTemplateSpec<'a> {
    #[serde(default, borrow)]
    pub metadata: Meta<'a>,
    #[serde(default, borrow)]
    pub spec: Option<Spec<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct ClaimTemplate<'a> {
    #[serde(default, borrow)]
    pub metadata: Meta<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container<'a> {
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub volume_mounts: Vec<VolumeMount<'a>>,
    #[serde(default, borrow, deserialize_with = "null_as_default")]
    pub volume_devices: Vec<VolumeDevice<'a>>,
    #[serde(default, borrow)]
    pub resources: Option<Resources<'a>>,
    /// `Always` on an init container makes it a sidecar (restartable init container).
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub restart_policy: Option<Cow<'a, str>>,
}

impl Container<'_> {
    /// A native sidecar: an init container with `restartPolicy: Always`.
    pub fn is_restartable(&self) -> bool {
        self.restart_policy.as_deref() == Some("Always")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount<'a> {
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    #[serde(default, borrow)]
    pub mount_path: Cow<'a, str>,
    #[serde(default)]
    pub read_only: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeDevice<'a> {
    #[serde(default, borrow)]
    pub name: Cow<'a, str>,
    #[serde(default, borrow)]
    pub device_path: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Resources<'a> {
    #[serde(default, borrow)]
    pub limits: Option<ResourceList<'a>>,
    #[serde(default, borrow)]
    pub requests: Option<ResourceList<'a>>,
}

/// The resources the engine computes with; other keys (hugepages-*, extended resources) are
/// skipped.
#[derive(Debug, Default, Deserialize)]
pub struct ResourceList<'a> {
    #[serde(default, borrow)]
    pub cpu: Option<RawQuantity<'a>>,
    #[serde(default, borrow)]
    pub memory: Option<RawQuantity<'a>>,
    #[serde(default, borrow, rename = "ephemeral-storage")]
    pub ephemeral_storage: Option<RawQuantity<'a>>,
}

/// A quantity as written in the object (a string, or a bare number in YAML/JSON).
/// Parsed lazily by the rules so an invalid one becomes a violation, not a decode error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawQuantity<'a>(pub Cow<'a, str>);

impl RawQuantity<'_> {
    /// apimachinery `Quantity.UnmarshalJSON` trims Unicode whitespace (`strings.TrimSpace`, as
    /// `str::trim`) off the JSON string's raw text before `ParseQuantity`. A control character
    /// or U+2028/U+2029 reaches it JSON-escaped (`\t`), so it is not trimmed and the value is
    /// rejected: keep those. Numbers are read as kubectl sends them (shortest `f64` digits).
    fn trim(v: &str) -> &str {
        // The usual quantity ("500Mi") starts and ends with an ASCII character that is not
        // whitespace and has no control character: nothing to trim, no char decoding.
        let plain = |b: &u8| b.is_ascii_graphic();
        if v.as_bytes().first().is_some_and(plain)
            && v.as_bytes().last().is_some_and(plain)
            && v.bytes().all(|b| b >= b' ' && b != 0x7f && b < 0x80)
        {
            return v;
        }
        if v.contains(|c: char| c < ' ' || c == '\u{2028}' || c == '\u{2029}') {
            v
        } else {
            v.trim()
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawQuantity<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<RawQuantity<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawQuantity<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a quantity string or number")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(RawQuantity(Cow::Borrowed(RawQuantity::trim(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawQuantity(Cow::Owned(RawQuantity::trim(v).to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                if RawQuantity::trim(&v).len() == v.len() {
                    Ok(RawQuantity(Cow::Owned(v)))
                } else {
                    self.visit_str(&v)
                }
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(RawQuantity(Cow::Owned(v.to_string())))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(RawQuantity(Cow::Owned(v.to_string())))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(RawQuantity(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// How an emptyDir is backed, as the kubelet's `emptyDir.SetUpAt` reads `medium`
/// (`pkg/volume/emptydir/empty_dir.go`; case-sensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Medium {
    /// `""` or no medium: a directory on the node's disk.
    Disk,
    /// `Memory`: tmpfs.
    Memory,
    /// `HugePages` or `HugePages-<size>` (`IsHugePageMedium`): hugetlbfs.
    HugePages,
    /// Anything else: the kubelet fails the mount ("unknown storage medium"); the apiserver
    /// does not validate it.
    Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmptyDir<'a> {
    #[serde(default, borrow, deserialize_with = "opt_str")]
    pub medium: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub size_limit: Option<RawQuantity<'a>>,
}

impl EmptyDir<'_> {
    pub fn medium(&self) -> Medium {
        match self.medium.as_deref() {
            None | Some("") => Medium::Disk,
            Some("Memory") => Medium::Memory,
            Some(m) if m == "HugePages" || m.starts_with("HugePages-") => Medium::HugePages,
            Some(_) => Medium::Unknown,
        }
    }
}

/// A volume: its name, its source type (the camelCase key), and the source details the
/// rules need (emptyDir settings, a declared `readOnly`).
#[derive(Debug, Default)]
pub struct Volume<'a> {
    pub name: Cow<'a, str>,
    /// The source key, e.g. `emptyDir`, `hostPath` (a volume without one is decoded as `emptyDir: {}`).
    /// Known keys are static strings (no allocation per volume).
    pub source: Option<Cow<'static, str>>,
    pub empty_dir: Option<EmptyDir<'a>>,
    /// `readOnly: true` declared inside the source (PVC, CSI, NFS, ...).
    pub source_read_only: bool,
    /// `hostPath.path`, for a hostPath volume.
    pub host_path: Option<Cow<'a, str>>,
    /// A StatefulSet template volume replaced by the same-named volumeClaimTemplate's PVC.
    pub claim_template: bool,
    /// The volume had no source (or `emptyDir: null`) and reads as `emptyDir: {}` only
    /// because of `SetDefaults_Volume`: the apiserver sends it with `emptyDir: {}`, a
    /// manifest does not (a JSON patch must then add the whole `emptyDir`).
    pub empty_dir_defaulted: bool,
}

#[derive(Deserialize)]
struct HostPathProbe<'a> {
    #[serde(default, borrow, deserialize_with = "opt_str")]
    path: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadOnlyProbe {
    #[serde(default)]
    read_only: Option<bool>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Volume<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<Volume<'a>>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Volume<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a volume object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut vol = Volume::default();
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    let key = key.0;
                    match key.as_ref() {
                        "name" => {
                            vol.name = map
                                .next_value::<Option<Str<'de>>>()?
                                .map(|s| s.0)
                                .unwrap_or_default()
                        }
                        "emptyDir" => {
                            let ed = map.next_value::<Option<EmptyDir<'de>>>()?;
                            if let Some(ed) = ed {
                                vol.empty_dir = Some(ed);
                                vol.source.get_or_insert(Cow::Borrowed("emptyDir"));
                            }
                        }
                        // Sources without a readOnly field, or whose content is not a map.
                        "hostPath" => {
                            if let Some(h) = map.next_value::<Option<HostPathProbe<'de>>>()? {
                                vol.host_path = Some(h.path.unwrap_or_default());
                                vol.source.get_or_insert(Cow::Borrowed("hostPath"));
                            }
                        }
                        "configMap" | "secret" | "downwardAPI" | "projected" | "gitRepo"
                        | "image" | "ephemeral" => {
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
                // `SetDefaults_Volume` (pkg/apis/core/v1/defaults.go): a volume whose every
                // source pointer is nil becomes `emptyDir: {}`.
                if vol.source.is_none() {
                    vol.source = Some(Cow::Borrowed("emptyDir"));
                    vol.empty_dir = Some(EmptyDir::default());
                    vol.empty_dir_defaulted = true;
                }
                Ok(vol)
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
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
        // SetDefaults_Volume: no source at all means `emptyDir: {}`.
        assert_eq!(v[3].source.as_deref(), Some("emptyDir"));
        assert_eq!(v[3].empty_dir.as_ref().unwrap().medium(), Medium::Disk);
    }

    /// `pkg/apis/core/v1/defaults.go:SetDefaults_Volume`: only when every source pointer is
    /// nil (a `null` source is nil too).
    #[test]
    fn source_less_volumes_default_to_empty_dir() {
        let v: Vec<Volume> = serde_json::from_str(
            r#"[{"name":"a"},{"name":"b","emptyDir":null},{"name":"c","secret":null},
                {"name":"d","secret":{"secretName":"s"}}]"#,
        )
        .unwrap();
        for vol in &v[..3] {
            assert_eq!(vol.source.as_deref(), Some("emptyDir"), "{}", vol.name);
            assert!(vol.empty_dir.is_some(), "{}", vol.name);
        }
        assert_eq!(v[3].source.as_deref(), Some("secret"));
        assert!(v[3].empty_dir.is_none());
    }

    /// `pkg/controller/statefulset/stateful_set_utils.go:updateStorage`.
    #[test]
    fn statefulset_claim_templates_replace_same_named_volumes() {
        let obj: Object = serde_yaml_ng::from_str(
            "kind: StatefulSet\nspec:\n  volumeClaimTemplates: [{metadata: {name: data}}]\n  template:\n    spec:\n      volumes:\n      - {name: data, emptyDir: {medium: Memory}}\n      - {name: tmp, emptyDir: {}}\n",
        )
        .unwrap();
        let vols = &obj.spec.unwrap().template.unwrap().spec.unwrap().volumes;
        assert_eq!(vols[0].source.as_deref(), Some("persistentVolumeClaim"));
        assert!(vols[0].empty_dir.is_none() && vols[0].claim_template);
        assert_eq!(vols[1].source.as_deref(), Some("emptyDir"));
        assert!(!vols[1].claim_template);
    }

    /// `pkg/apis/core/v1/defaults.go:SetDefaults_Pod`: requests default to limits, key by
    /// key, for containers and init containers.
    #[test]
    fn requests_default_to_limits() {
        let obj: Object = serde_yaml_ng::from_str(
            "kind: Pod\nspec:\n  initContainers: [{name: i, resources: {limits: {ephemeral-storage: 1Gi}}}]\n  containers:\n  - {name: a, resources: {limits: {memory: 1Gi, ephemeral-storage: 2Gi}, requests: {memory: 512Mi}}}\n  - {name: b}\n",
        )
        .unwrap();
        let spec = obj.spec.unwrap();
        fn req<'a>(c: &'a Container<'a>) -> &'a ResourceList<'a> {
            c.resources.as_ref().unwrap().requests.as_ref().unwrap()
        }
        let a = req(&spec.containers[0]);
        assert_eq!(a.memory, Some(RawQuantity("512Mi".into())));
        assert_eq!(a.ephemeral_storage, Some(RawQuantity("2Gi".into())));
        assert!(spec.containers[1].resources.is_none());
        let i = req(&spec.init_containers[0]);
        assert_eq!(i.ephemeral_storage, Some(RawQuantity("1Gi".into())));
    }

    #[test]
    fn sidecars_and_overhead() {
        let s: Spec = serde_yaml_ng::from_str(
            "initContainers: [{name: s, restartPolicy: Always}, {name: i}]\noverhead: {memory: 1Mi, cpu: 250m}\n",
        )
        .unwrap();
        assert!(s.init_containers[0].is_restartable());
        assert!(!s.init_containers[1].is_restartable());
        let o = s.overhead.unwrap();
        assert_eq!(o.memory, Some(RawQuantity("1Mi".into())));
        assert_eq!(o.cpu, Some(RawQuantity("250m".into())));
    }

    #[test]
    fn keeps_only_the_exempt_annotation() {
        let m: Meta = serde_json::from_str(
            r#"{"name":"p","annotations":{"a":"b","volguard.io/exempt":"volume-unused","c":"d"}}"#,
        )
        .unwrap();
        assert_eq!(m.annotations.exempt.as_deref(), Some("volume-unused"));
        assert!(!m.annotations.mirror);
        let m: Meta = serde_json::from_str(r#"{"annotations":{"a":"b"}}"#).unwrap();
        assert_eq!(m.annotations.exempt, None);
    }

    #[test]
    fn keeps_the_mirror_marker_and_the_controller_reference() {
        let m: Meta = serde_json::from_str(
            r#"{"annotations":{"kubernetes.io/config.mirror":"abc"},
                "ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"n1","uid":"u"},
                                   {"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-5d","uid":"u2","controller":true,"blockOwnerDeletion":true}]}"#,
        )
        .unwrap();
        assert!(m.annotations.mirror);
        let c = m.controller().unwrap();
        assert_eq!((&*c.kind, &*c.name), ("ReplicaSet", "web-5d"));
        let m: Meta = serde_json::from_str(
            r#"{"ownerReferences":[{"kind":"ReplicaSet","name":"x","controller":false}]}"#,
        )
        .unwrap();
        assert_eq!(m.controller(), None);
        let m: Meta = serde_json::from_str(r#"{"ownerReferences":null}"#).unwrap();
        assert_eq!(m.controller(), None);
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
            ("memory", Medium::Unknown),
            ("hugepages", Medium::Unknown),
            ("Tmpfs", Medium::Unknown),
        ] {
            let e = EmptyDir {
                medium: Some(m.into()),
                size_limit: None,
            };
            assert_eq!(e.medium(), want, "{m}");
        }
    }
}
